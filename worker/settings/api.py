"""the API server: where it listens, who its clients are behind a proxy, and the
answers it computes ahead of a request."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from worker.settings.base import NetworkList, Section


class ApiSettings(Section):
    title = "The API"

    api_host: str = Field(default="127.0.0.1", description="address the API binds to.")
    api_port: Annotated[int, Field(ge=0, le=65535)] = Field(default=8000, description="API port.")
    api_client_ip_header: str | None = Field(
        default=None,
        description="the header a trusted proxy names the client's address in "
        "(`Fly-Client-IP` on Fly), for the per-client identity budget. believed only on "
        "connections from `api_trusted_proxies`; unset: the peer address is the client "
        "(issue 23: behind Fly's proxy that made every user one client).",
    )
    api_trusted_proxies: NetworkList = Field(
        default=(),
        description="addresses or CIDR networks of the proxies whose "
        "`api_client_ip_header` is believed, comma-separated. empty: none is, "
        "loopback included (X-Forwarded-For is never read).",
    )
    speculative_answers: Annotated[int, Field(ge=0, le=10)] = Field(
        default=3,
        description="after an answer is served to a playlist's owner, the API computes in "
        "the background the answers of the playlist plus each of this many tracks it "
        "showed (the versions '+' makes), so the refetch right after '+' is already "
        "computed; 0 turns it off.",
    )
