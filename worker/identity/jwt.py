"""verifying an ATProto service-auth JWT: who the viewer is, proven by their DID key.

the viewer's PDS mints the token (`com.atproto.server.getServiceAuth`), signed
with the account's `#atproto` key, for one audience (our `SERVICE_DID`) and one
method (`lxm`). the atproto SDK parses the token (`parse_jwt`,
`decode_jwt_payload`) and checks the ECDSA signature against a `did:key`
(`verify_signature`); everything else is ours, because its `verify_jwt`
accepts a token with no `exp`, ignores `lxm` and the header's `alg`, and reads
the wall clock (ours is injected, so tests can hold time still).

the order is cheap first: size, shape, header, claims, and only then the one
step that may touch the network (the issuer's DID document).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from atproto_core.exceptions import AtProtocolError
from atproto_crypto.algs import ALGORITHM_TO_CLASS
from atproto_crypto.did import parse_did_key
from atproto_crypto.verify import verify_signature
from atproto_server.auth.jwt import decode_jwt_payload, parse_jwt

from worker.identity.did_resolver import DidResolutionError, SigningKeyResolver, is_supported_did

JwtReason = Literal[
    "oversized",
    "malformed",
    "bad_alg",
    "bad_typ",
    "bad_issuer",
    "bad_audience",
    "missing_exp",
    "expired",
    "exp_too_far",
    "bad_iat",
    "not_yet_valid",
    "missing_lxm",
    "bad_lxm",
    "unresolvable",
    "bad_signature",
]

MAX_TOKEN_BYTES = 8 * 1024  # real service tokens are ~600 bytes
# three base64url segments, no padding, nothing else (Python's base64 decoder
# would silently skip stray characters, so the alphabet is checked up front).
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
# only the two curves ATProto signs with; `none` and HMAC (HS256 with the
# public key as the secret: algorithm confusion) never reach a verifier.
ALLOWED_ALGS = frozenset({"ES256K", "ES256"})
# token types that are something else than a service token (the reference
# verifier in @atproto/xrpc-server refuses the same ones).
REFUSED_TYPS = frozenset({"at+jwt", "refresh+jwt", "dpop+jwt"})
SIGNATURE_BYTES = 64  # compact r || s, 32 bytes each
# a PDS grants service tokens for at most an hour; a token valid for longer is
# not one a PDS minted, and would be a long-lived password if it leaked.
MAX_LIFETIME_SECONDS = 3600
CLOCK_LEEWAY_SECONDS = 10  # skew between the viewer's PDS and us
SERVICE_FRAGMENT_RE = re.compile(r"^[a-zA-Z0-9._~-]{1,64}$")


class JwtRejected(Exception):
    """the token proves nothing; `reason` says why in one word (counted, never shown raw)."""

    def __init__(self, reason: JwtReason) -> None:
        super().__init__(reason)
        self.reason: JwtReason = reason


@dataclass(frozen=True)
class ServiceAuthPolicy:
    """what a token must say to be accepted here."""

    service_did: str
    lxm: str
    max_token_bytes: int = MAX_TOKEN_BYTES
    max_lifetime_seconds: int = MAX_LIFETIME_SECONDS
    leeway_seconds: int = CLOCK_LEEWAY_SECONDS


async def verify_service_jwt(
    token: str,
    *,
    policy: ServiceAuthPolicy,
    resolver: SigningKeyResolver,
    clock: Callable[[], float],
) -> str:
    """the DID that signed `token` for us and this method, or `JwtRejected`."""
    if len(token) > policy.max_token_bytes:
        raise JwtRejected("oversized")
    if not TOKEN_RE.fullmatch(token):
        raise JwtRejected("malformed")
    try:
        payload_bytes, signing_input, header, signature = parse_jwt(token)
        payload = decode_jwt_payload(payload_bytes)
    except (AtProtocolError, ValueError) as error:
        raise JwtRejected("malformed") from error

    alg = _check_header(header)
    viewer_did = _check_claims(payload, policy, now=clock())
    if len(signature) != SIGNATURE_BYTES:
        raise JwtRejected("bad_signature")

    try:
        signing_key = await resolver.signing_key(viewer_did)
        if _signed_by(signing_key, alg, signing_input, signature):
            return viewer_did
        # the key may have been rotated since we cached it: ask once more, past the cache.
        fresh_key = await resolver.signing_key(viewer_did, force_refresh=True)
    except DidResolutionError as error:
        raise JwtRejected("unresolvable") from error
    if fresh_key != signing_key and _signed_by(fresh_key, alg, signing_input, signature):
        return viewer_did
    raise JwtRejected("bad_signature")


def _check_header(header: dict[str, Any]) -> str:
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGS:
        raise JwtRejected("bad_alg")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() in REFUSED_TYPS):
        raise JwtRejected("bad_typ")
    return alg


def _check_claims(payload: Any, policy: ServiceAuthPolicy, *, now: float) -> str:
    """the claims a token must carry, checked before any network call; returns the viewer DID."""
    viewer_did = _issuer_did(payload.iss)
    if not isinstance(payload.aud, str) or payload.aud != policy.service_did:
        raise JwtRejected("bad_audience")

    leeway = policy.leeway_seconds
    if payload.exp is None:
        raise JwtRejected("missing_exp")
    if payload.exp <= now - leeway:
        raise JwtRejected("expired")
    if payload.exp > now + policy.max_lifetime_seconds + leeway:
        raise JwtRejected("exp_too_far")
    if payload.iat is not None and payload.iat > now + leeway:
        raise JwtRejected("bad_iat")
    if payload.nbf is not None and payload.nbf > now + leeway:
        raise JwtRejected("not_yet_valid")

    # `lxm` is not a declared field of the SDK's payload model; it is kept as an extra.
    lxm = getattr(payload, "lxm", None)
    if lxm is None:
        raise JwtRejected("missing_lxm")
    if lxm != policy.lxm:
        raise JwtRejected("bad_lxm")
    return viewer_did


def _issuer_did(iss: object) -> str:
    """the account DID of `iss`, which may be `did` or `did#service`.

    a service fragment names a service run by that DID; the token is still
    signed with the DID's `#atproto` key, and the viewer is the DID itself.
    """
    if not isinstance(iss, str):
        raise JwtRejected("bad_issuer")
    did, separator, fragment = iss.partition("#")
    if separator and not SERVICE_FRAGMENT_RE.fullmatch(fragment):
        raise JwtRejected("bad_issuer")
    if not is_supported_did(did):
        raise JwtRejected("bad_issuer")
    return did


def _signed_by(did_key: str, alg: str, signing_input: bytes, signature: bytes) -> bool:
    """whether `did_key` made `signature`, with the curve the header names.

    a high-S signature is turned into its low-S twin first: the SDK refuses
    high-S (malleability matters for repo commits), but a JWT is never
    deduplicated by its signature, and the reference verifier accepts both.
    """
    try:
        key_alg = parse_did_key(did_key).jwt_alg
    except (AtProtocolError, ValueError):
        return False
    if key_alg != alg:
        return False
    try:
        return bool(verify_signature(did_key, signing_input, _low_s(alg, signature)))
    except (AtProtocolError, ValueError):
        return False


def _low_s(alg: str, signature: bytes) -> bytes:
    curve_order: int = ALGORITHM_TO_CLASS[alg]().curve_order
    r, s = signature[:32], int.from_bytes(signature[32:], "big")
    if s > curve_order // 2:
        s = curve_order - s
    return r + s.to_bytes(32, "big")
