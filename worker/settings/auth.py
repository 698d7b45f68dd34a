"""who may call the API: this service's identity, plyr.fm's shared secret, and how
a caller's DID is resolved to verify its service-auth JWT."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from worker.settings.base import OptionalSecret, Section


class AuthSettings(Section):
    title = "Who may call the API"

    service_did: str = Field(
        default="did:web:recs.plyr.fm",
        description="this service's DID: the `aud` a service-auth JWT must carry.",
    )
    internal_api_token: OptionalSecret = Field(
        default=None,
        description="shared secret of plyr.fm's backend (X-Internal-Token). Unset: that "
        "way in is closed.",
    )
    plc_directory_url: str = Field(
        default="https://plc.directory",
        description="where did:plc documents are resolved, to verify service-auth JWTs.",
    )
    did_cache_seconds: Annotated[float, Field(ge=0, le=86400)] = Field(
        default=600.0, description="how long a resolved DID document (signing key) is reused."
    )
    did_resolve_timeout_seconds: Annotated[float, Field(gt=0, le=30)] = Field(
        default=3.0, description="time bound on one DID resolution."
    )
