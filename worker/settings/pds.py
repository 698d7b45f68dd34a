"""requests to the owners' PDSes (the reconcile loop's reads of list records)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from worker.settings.base import Section


class PdsSettings(Section):
    title = "Owners' PDSes"

    pds_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        default=5.0,
        description="time bound on one request to an owner's PDS by the reconcile loop "
        "(getRecord or one listRecords page); a PDS that fails is skipped for the rest of "
        "the pass (and remembered with a backoff by a client that outlives the pass: "
        "worker/identity/pds_backoff.py).",
    )
    pds_max_in_flight_per_host: Annotated[int, Field(ge=1, le=64)] = Field(
        default=4,
        description="requests the reconcile loop keeps in flight to one PDS host.",
    )
    pds_max_in_flight: Annotated[int, Field(ge=1, le=512)] = Field(
        default=32,
        description="requests the reconcile loop keeps in flight to all PDS hosts together.",
    )
    pds_allow_private: bool = Field(
        default=False,
        description="let PDS requests use plain http and loopback or private addresses. only "
        "for a PDS this deployment runs itself (tests, benchmarks on loopback); never in "
        "production, where a PDS URL comes from anyone's DID document.",
    )
