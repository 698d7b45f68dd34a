"""a local PLC directory and the identities it vouches for, to test service auth offline.

`PlcDirectory` answers `GET /{did}` with the DID document of each published
`Identity` (an `#atproto` Multikey verification method, as plc.directory
serves), 404 for anyone else. it counts requests per DID (to see the cache
work), can rotate an identity's key, and has fault hooks: stall (to see the
time bound), answer an error status or a 429, garbage, JSON nested too deep to parse,
or an oversized body.

`Identity` holds a real secp256k1 or P-256 key generated in the test and mints
service-auth JWTs the way a PDS does (compact low-S r||s signature, base64url
without padding); every claim and header field can be overridden or dropped to
build the bad tokens too.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from atproto_crypto.did import format_multikey
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from bench.loopback.http import LoopbackHttpServer

Curve = Literal["k256", "p256"]
Fault = Literal["stall", "error", "garbage", "deep", "oversized", "rate_limited"]

CURVES: dict[Curve, tuple[ec.EllipticCurve, str, int]] = {
    "k256": (
        ec.SECP256K1(),
        "ES256K",
        0xFFFFFFFF_FFFFFFFF_FFFFFFFF_FFFFFFFE_BAAEDCE6_AF48A03B_BFD25E8C_D0364141,
    ),
    "p256": (
        ec.SECP256R1(),
        "ES256",
        0xFFFFFFFF_00000000_FFFFFFFF_FFFFFFFF_BCE6FAAD_A7179E84_F3B9CAC2_FC632551,
    ),
}
_BASE32_SORTABLE = "abcdefghijklmnopqrstuvwxyz234567"


def random_plc_did() -> str:
    """a syntactically real did:plc (24 base32 characters), unique per call."""
    return "did:plc:" + "".join(secrets.choice(_BASE32_SORTABLE) for _ in range(24))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: Mapping[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


@dataclass
class Identity:
    """an account: a DID and the private half of its `#atproto` key."""

    did: str
    curve: Curve
    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, curve: Curve = "k256", did: str | None = None) -> Identity:
        key = ec.generate_private_key(CURVES[curve][0])
        return cls(did=did or random_plc_did(), curve=curve, private_key=key)

    @property
    def jwt_alg(self) -> str:
        return CURVES[self.curve][1]

    @property
    def public_key_multibase(self) -> str:
        point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return str(format_multikey(self.jwt_alg, point))

    def document(self) -> dict[str, Any]:
        """the DID document plc.directory would serve for this account."""
        return {
            "@context": [
                "https://www.w3.org/ns/did/v1",
                "https://w3id.org/security/multikey/v1",
            ],
            "id": self.did,
            "alsoKnownAs": [f"at://{self.did.rsplit(':', 1)[1]}.test"],
            "verificationMethod": [
                {
                    "id": f"{self.did}#atproto",
                    "type": "Multikey",
                    "controller": self.did,
                    "publicKeyMultibase": self.public_key_multibase,
                }
            ],
            "service": [
                {
                    "id": "#atproto_pds",
                    "type": "AtprotoPersonalDataServer",
                    "serviceEndpoint": "https://pds.invalid",
                }
            ],
        }

    def sign(self, data: bytes, *, high_s: bool = False) -> bytes:
        """the compact 64-byte r||s signature ATProto uses, low-S unless asked otherwise."""
        _, _, order = CURVES[self.curve]
        der = self.private_key.sign(data, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        low = min(s, order - s)
        s = order - low if high_s else low
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def service_jwt(
        self,
        *,
        aud: Any,
        now: float,
        lxm: str | None = "fm.plyr.getPlaylistRecommendations",
        lifetime: int = 60,
        header: Mapping[str, Any] | None = None,
        high_s: bool = False,
        **claims: Any,
    ) -> str:
        """a service-auth JWT as a PDS mints it; a claim passed as None is left out."""
        payload: dict[str, Any] = {
            "iat": int(now),
            "iss": self.did,
            "aud": aud,
            "exp": int(now) + lifetime,
            "lxm": lxm,
            "jti": secrets.token_hex(16),
        }
        payload.update(claims)
        payload = {name: value for name, value in payload.items() if value is not None}
        head = {"typ": "JWT", "alg": self.jwt_alg, **(header or {})}
        signing_input = f"{b64url_json(head)}.{b64url_json(payload)}"
        signature = self.sign(signing_input.encode(), high_s=high_s)
        return f"{signing_input}.{b64url(signature)}"


@dataclass
class PlcDirectory(LoopbackHttpServer):
    """plc.directory on 127.0.0.1 (port 0), in the caller's event loop or a thread."""

    port: int = 0
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)  # DID -> GETs seen
    fault: Fault | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    thread_name = "plc-directory"

    # --- identities ----------------------------------------------------------

    def publish(self, identity: Identity) -> Identity:
        with self._lock:
            self.documents[identity.did] = identity.document()
        return identity

    def rotate(self, identity: Identity, curve: Curve | None = None) -> Identity:
        """a new key for the same DID, published; the old identity's tokens stop verifying."""
        rotated = Identity.generate(curve or identity.curve, did=identity.did)
        return self.publish(rotated)

    def requests_for(self, did: str) -> int:
        with self._lock:
            return self.requests[did]

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/{did}", self._handle)

    # --- the one route ------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        did = request.match_info["did"]
        with self._lock:
            self.requests[did] += 1
            fault = self.fault
            document = self.documents.get(did)
        if fault == "stall":
            assert self.stopping is not None
            await self.stopping.wait()
            return web.Response(status=503)
        if fault == "error":
            return web.Response(status=502, text="bad gateway")
        if fault == "rate_limited":
            return web.Response(status=429, headers={"Retry-After": "30"}, text="slow down")
        if fault == "garbage":
            return web.Response(body=b"\x00not json{", content_type="application/json")
        if fault == "deep":
            return web.Response(body=b"[" * 60_000, content_type="application/json")
        if fault == "oversized":
            return web.Response(body=b" " * (1024 * 1024) + b"{}", content_type="application/json")
        if document is None:
            return web.json_response({"message": f"DID not registered: {did}"}, status=404)
        return web.json_response(document, content_type="application/did+ld+json")
