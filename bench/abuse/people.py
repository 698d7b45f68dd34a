"""legitimate JWT users of `python -m bench abuse`: accounts with real keys, their DID
documents served by the bench's directory, their service-auth tokens minted as a PDS
mints them (ES256K, compact low-S r||s). each arrives through "Fly's proxy": its own
address in `Fly-Client-IP` (the bench API trusts that header from loopback).

tests/support/did_server.py has the full-featured version for the tests (bad tokens
of every kind); this one only makes good ones, and the bench may not import tests.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final

from atproto_crypto.did import format_multikey
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

# the order of secp256k1's group, for the low-S form
_K256_ORDER: Final = 0xFFFFFFFF_FFFFFFFF_FFFFFFFF_FFFFFFFE_BAAEDCE6_AF48A03B_BFD25E8C_D0364141
_BASE32: Final = "abcdefghijklmnopqrstuvwxyz234567"
CLIENT_HEADER: Final = "fly-client-ip"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class Person:
    did: str
    key: ec.EllipticCurvePrivateKey
    address: str  # what Fly's proxy would name as the client

    @classmethod
    def new(cls, number: int, *, did: str | None = None) -> Person:
        """a new account (a random did:plc unless `did` is given), its own address."""
        did = did or "did:plc:" + "".join(secrets.choice(_BASE32) for _ in range(24))
        address = f"198.51.{number // 250 % 250}.{number % 250 + 1}"
        return cls(did, ec.generate_private_key(ec.SECP256K1()), address)

    def document(self) -> dict[str, Any]:
        point = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        method = {
            "id": f"{self.did}#atproto",
            "type": "Multikey",
            "controller": self.did,
            "publicKeyMultibase": str(format_multikey("ES256K", point)),
        }
        return {
            "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
            "id": self.did,
            "verificationMethod": [method],
        }

    def headers(self, audience: str) -> dict[str, str]:
        """a fresh token and the proxy's header naming this person's address."""
        now = int(time.time())
        claims = {
            "iss": self.did,
            "aud": audience,
            "iat": now,
            "exp": now + 60,
            "lxm": "fm.plyr.getPlaylistRecommendations",
            "jti": secrets.token_hex(8),
        }
        head = {"typ": "JWT", "alg": "ES256K"}
        signing_input = ".".join(_b64(json.dumps(part).encode()) for part in (head, claims))
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        s = min(s, _K256_ORDER - s)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return {
            "authorization": f"Bearer {signing_input}.{_b64(signature)}",
            CLIENT_HEADER: self.address,
        }
