"""who is asking: the viewer's DID, from one of the two ways into the API.

1. `Authorization: Bearer <jwt>` — an ATProto service-auth JWT signed by the
   viewer's own DID key (see `worker.identity.jwt`).
2. plyr.fm's backend — `X-Internal-Token: <INTERNAL_API_TOKEN>` (compared in
   constant time) and `X-Viewer-Did: <did>`, the user the backend vouches for.
   With no token configured this way is closed.

every credential presented must be valid: a wrong internal token is a 401 even
next to a good JWT (so guessing the secret is never free). when both are valid
the JWT names the viewer, and an `X-Viewer-Did` that disagrees with it is a
401, because one of the two callers is confused and we cannot tell which.

this module only says who the viewer is. whether they own the playlist (403)
is the endpoint's question; every refusal here is a 401 (`AuthError`).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal

from worker.identity.did_resolver import CachedDidResolver, SigningKeyResolver, is_supported_did
from worker.identity.jwt import (
    MAX_TOKEN_BYTES,
    JwtReason,
    JwtRejected,
    ServiceAuthPolicy,
    verify_service_jwt,
)
from worker.identity.resolution_budget import ClientBudget, GatedResolver

if TYPE_CHECKING:
    from worker.settings import AuthSettings

logger = logging.getLogger(__name__)

GET_PLAYLIST_RECOMMENDATIONS = "fm.plyr.getPlaylistRecommendations"

AUTHORIZATION = "authorization"
INTERNAL_TOKEN = "x-internal-token"
VIEWER_DID = "x-viewer-did"
MAX_INTERNAL_TOKEN_BYTES = 1024

HeaderReason = Literal[
    "missing",
    "bad_scheme",
    "duplicate_header",
    "internal_token",
    "missing_viewer_did",
    "bad_viewer_did",
    "conflicting_viewer",
]
AuthReason = HeaderReason | JwtReason


class AuthError(Exception):
    """no valid credentials: the API answers 401 with `reason` (a short, fixed word)."""

    status_code = 401

    def __init__(self, reason: AuthReason) -> None:
        super().__init__(reason)
        self.reason: AuthReason = reason


class Authenticator:
    """turns request headers into the viewer's DID, or raises `AuthError`.

    `counts` holds "accepted:jwt", "accepted:internal" and "rejected:<reason>",
    for /metrics.
    """

    def __init__(
        self,
        *,
        service_did: str,
        internal_api_token: str | None,
        resolver: SigningKeyResolver,
        lxm: str = GET_PLAYLIST_RECOMMENDATIONS,
        clock: Callable[[], float] = time.time,
        max_token_bytes: int = MAX_TOKEN_BYTES,
    ) -> None:
        self.policy = ServiceAuthPolicy(
            service_did=service_did, lxm=lxm, max_token_bytes=max_token_bytes
        )
        # an empty string configured by mistake must not open the door to an empty header.
        self._internal_token = internal_api_token.encode() if internal_api_token else None
        self.resolver = resolver
        self._clock = clock
        self.counts: Counter[str] = Counter()
        # new identity lookups per client, before any resolution (resolution_budget)
        self.budget = ClientBudget()

    @classmethod
    def from_settings(
        cls, settings: AuthSettings, *, resolver: SigningKeyResolver | None = None
    ) -> Authenticator:
        """the production authenticator; close its resolver with `aclose` on shutdown."""
        token = settings.internal_api_token
        return cls(
            service_did=settings.service_did,
            internal_api_token=token.get_secret_value() if token is not None else None,
            resolver=resolver or CachedDidResolver.from_settings(settings),
        )

    async def aclose(self) -> None:
        if isinstance(self.resolver, CachedDidResolver):
            await self.resolver.aclose()

    async def authenticate(self, headers: Mapping[str, str], client: str | None = None) -> str:
        """the viewer's DID; `AuthError` (401) when the headers prove nobody. `client`
        (the peer's address) is charged for the identity lookups its token causes."""
        try:
            viewer_did, way = await self._viewer(headers, client)
        except AuthError as error:
            self.counts[f"rejected:{error.reason}"] += 1
            logger.debug("refused credentials: %s", error.reason)
            raise
        self.counts[f"accepted:{way}"] += 1
        return viewer_did

    async def _viewer(self, headers: Mapping[str, str], client: str | None) -> tuple[str, str]:
        authorization = _single_header(headers, AUTHORIZATION)
        internal_token = _single_header(headers, INTERNAL_TOKEN)
        claimed_viewer = _single_header(headers, VIEWER_DID)

        vouched_viewer = None
        if internal_token is not None:
            self._check_internal_token(internal_token)
            vouched_viewer = _viewer_did(claimed_viewer)

        if authorization is not None:
            viewer_did = await self._jwt_viewer(authorization, client)
            if claimed_viewer is not None and claimed_viewer != viewer_did:
                raise AuthError("conflicting_viewer")
            return viewer_did, "jwt"
        if vouched_viewer is not None:
            return vouched_viewer, "internal"
        raise AuthError("missing")

    def _check_internal_token(self, presented: str) -> None:
        if self._internal_token is None or len(presented) > MAX_INTERNAL_TOKEN_BYTES:
            raise AuthError("internal_token")
        # RFC 9110 (5.5): whitespace around a field value is not part of it, and a
        # proxy may leave it there; inside the value every byte must match.
        presented = presented.strip(" \t")
        # bytes, not str: compare_digest refuses non-ASCII str, and a header may carry any.
        if not hmac.compare_digest(presented.encode(), self._internal_token):
            raise AuthError("internal_token")

    async def _jwt_viewer(self, authorization: str, client: str | None) -> str:
        scheme, _, token = authorization.strip().partition(" ")
        # the scheme is case-insensitive (RFC 9110, section 11.1).
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("bad_scheme")
        resolver = self.resolver
        if client is not None:
            resolver = GatedResolver(resolver, self.budget, client)
        try:
            return await verify_service_jwt(
                token.strip(), policy=self.policy, resolver=resolver, clock=self._clock
            )
        except JwtRejected as rejected:
            raise AuthError(rejected.reason) from rejected


def _single_header(headers: Mapping[str, str], name: str) -> str | None:
    """the one value of header `name` (any case), None if absent; two values are a 401.

    Starlette's `Headers.items()` yields every raw pair, so a repeated header
    shows up here; a plain dict is looked up case-insensitively too.
    """
    values = [value for key, value in headers.items() if key.lower() == name]
    if len(values) > 1:
        raise AuthError("duplicate_header")
    return values[0] if values else None


def _viewer_did(claimed: str | None) -> str:
    if claimed is None:
        raise AuthError("missing_viewer_did")
    if not is_supported_did(claimed):
        raise AuthError("bad_viewer_did")
    return claimed
