"""hostile requests against the API through its HTTP entry point.

schemathesis generates requests from the OpenAPI document the API serves
(`/openapi.json`, worker.api.schema), valid and invalid, and holds every answer
to it: no 5xx, statuses, content types, bodies and headers as documented.
then the credentials nobody should get past (forged, expired, replayed for
another audience or method, algorithm-confused, oversized, another user's DID)
and injection in `playlist_id` and the headers: all refused with 401/403/404/422,
never a track, never a 5xx. test_auth.py covers the verifier itself and
test_api.py the ordinary refusals; this file covers what reaches the app as a
request.

the app is the real one (`create_app` over `open_services`, a real redis-server,
the sample catalogue, a local PLC directory and PDS). schemathesis calls ASGI apps
from an event loop of its own, so `WorldApp` builds the world inside the app's
lifespan, in that loop, where its connections live.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson
import pytest
import redis.asyncio as aioredis
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans
from starlette.types import Receive, Scope, Send

from bench.loopback.servers import RedisServer
from tests.support.api_world import (
    BOBS_ID,
    EMPTY_ID,
    INTERNAL_TOKEN,
    PRIVATE_ID,
    PUBLIC_ID,
    ROUTE,
    SERVICE_DID,
    Api,
    World,
    bearer,
    built_world,
    internal,
    redis_lookups,
    running_api,
)
from tests.support.did_server import Identity, b64url, b64url_json
from tests.support.world import sample_store
from worker.identity.auth import GET_PLAYLIST_RECOMMENDATIONS

pytestmark = pytest.mark.integration

SEED = 20_260_115
KNOWN_IDS = [PUBLIC_ID, PRIVATE_ID, EMPTY_ID, BOBS_ID]


class WorldApp:
    """the API over a world built in its own lifespan (see the module doc)."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.world: World | None = None
        self.api: Api | None = None
        self._stack = AsyncExitStack()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        assert self.api is not None, "the lifespan has not started"
        await self.api.app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        redis = aioredis.Redis.from_url(self.redis_url)
        self._stack.push_async_callback(redis.aclose)
        await redis.flushall()
        self.world = await self._stack.enter_async_context(built_world())
        self.api = await self._stack.enter_async_context(
            running_api(self.world, redis, store=sample_store())
        )
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await self._stack.aclose()
        await send({"type": "lifespan.shutdown.complete"})


@pytest.fixture(scope="module")
def world_app(redis_server: RedisServer) -> Iterator[WorldApp]:
    app = WorldApp(redis_server.url)
    yield app
    shutdown_lifespans()  # the world's servers and connections close in their own loop


@pytest.fixture(scope="module")
def api_schema(world_app: WorldApp) -> Any:
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            # unknown query parameters are ignored, as HTTP APIs usually do: sending
            # one is not invalid data the API must refuse.
            "generation": {"allow-extra-parameters": False, "allow-x00": True},
        }
    )
    return schemathesis.openapi.from_asgi("/openapi.json", world_app, config=config)


def fuzz(strategy: st.SearchStrategy[Any], examples: int) -> Any:
    """a hypothesis runner with a fixed seed and a bounded number of examples: the
    same requests on every run, and a bounded runtime."""

    def run(test: Any) -> Any:
        return seed(SEED)(
            settings(
                max_examples=examples,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )(given(strategy)(test))
        )

    return run


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_answer_conforms_to_the_document(api_schema: Any, mode: GenerationMode) -> None:
    """anonymous requests, every operation, valid and invalid parameters."""

    @fuzz(api_schema.as_strategy(generation_mode=mode), examples=120)
    def check(case: schemathesis.Case) -> None:
        response = case.call_and_validate()
        assert response.status_code < 500

    check()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_past_the_door_every_answer_conforms_too(
    api_schema: Any, world_app: WorldApp, mode: GenerationMode
) -> None:
    """the same with alice's internal credentials, and now and then one of the world's
    real playlists (hers, or bob's) instead of a generated id: the catalogue lookups,
    the cache and inline computes are reached."""
    assert world_app.world is not None
    headers = {"X-Internal-Token": INTERNAL_TOKEN, "X-Viewer-Did": world_app.world.alice.did}
    operation = api_schema["/playlists/{playlist_id}/recommendations"]["GET"]
    cases = st.tuples(
        operation.as_strategy(generation_mode=mode), st.sampled_from([None, *KNOWN_IDS])
    )

    @fuzz(cases, examples=150)
    def check(drawn: tuple[schemathesis.Case, str | None]) -> None:
        case, known = drawn
        # schemathesis fills the security schemes with junk; a junk bearer token
        # would be refused before anything else, so only the generated headers
        # that ours do not replace stay.
        case.headers = {
            name: value
            for name, value in (case.headers or {}).items()
            if name.lower() != "authorization"
        }
        if known is not None and mode is GenerationMode.POSITIVE:
            # (a negative case keeps its generated id: it may be the invalid part.)
            case.path_parameters = {**(case.path_parameters or {}), "playlist_id": known}
        response = case.call_and_validate(headers=headers)
        assert response.status_code < 500

    check()


# --- credentials nobody should get past, through the HTTP entry point -----------------------
#
# test_auth.py proves the verifier refuses these one by one; here each travels as a
# request, with a real world behind the door: refused with a 401 and its reason,
# before any playlist is read, and never with a track in the body.


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with built_world() as built:
        yield built


@pytest.fixture
async def api(world: World, redis_client: aioredis.Redis) -> AsyncIterator[Api]:
    async with running_api(world, redis_client, store=sample_store()) as running:
        yield running


def forge(header: dict[str, Any], claims: dict[str, Any], signature: bytes) -> str:
    return f"{b64url_json(header)}.{b64url_json(claims)}.{b64url(signature)}"


def signed(identity: Identity, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """a token signed by `identity`'s real key, whatever the header says."""
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    return f"{signing_input}.{b64url(identity.sign(signing_input.encode()))}"


def claims_of(identity: Identity, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": identity.did,
        "aud": SERVICE_DID,
        "exp": now + 60,
        "iat": now,
        "lxm": GET_PLAYLIST_RECOMMENDATIONS,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def hostile_tokens(world: World) -> dict[str, tuple[str, str]]:
    """name -> (token, the reason it must be refused with)."""
    alice = world.alice
    claims = claims_of(alice)
    es256k = {"typ": "JWT", "alg": "ES256K"}
    hmac_input = f"{b64url_json({'typ': 'JWT', 'alg': 'HS256'})}.{b64url_json(claims)}"
    did_key = f"did:key:{alice.public_key_multibase}"
    mallory = Identity.generate("k256", did=alice.did)  # alice's DID, another key
    mallory_p256 = Identity.generate("p256", did=alice.did)
    return {
        "alg none, unsigned": (
            f"{b64url_json({'alg': 'none'})}.{b64url_json(claims)}.",
            "malformed",
        ),
        "alg none, any signature": (forge({"alg": "none"}, claims, b"\x00" * 64), "bad_alg"),
        "alg None": (forge({"alg": "None"}, claims, b"\x00" * 64), "bad_alg"),
        "alg NONE": (forge({"alg": "NONE"}, claims, b"\x00" * 64), "bad_alg"),
        "alg lower case": (signed(alice, {"alg": "es256k"}, claims), "bad_alg"),
        "alg as a list": (signed(alice, {"alg": ["ES256K"]}, claims), "bad_alg"),
        "no alg": (signed(alice, {"typ": "JWT"}, claims), "bad_alg"),
        "HS256 keyed with the public multikey": (
            f"{hmac_input}.{b64url(_hmac(alice.public_key_multibase, hmac_input))}",
            "bad_alg",
        ),
        "HS256 keyed with the did:key": (
            f"{hmac_input}.{b64url(_hmac(did_key, hmac_input))}",
            "bad_alg",
        ),
        "ES256 header on alice's K-256 key": (
            signed(alice, {"typ": "JWT", "alg": "ES256"}, claims),
            "bad_signature",
        ),
        "ES256 header, signed by a P-256 key in alice's name": (
            signed(mallory_p256, {"typ": "JWT", "alg": "ES256"}, claims),
            "bad_signature",
        ),
        "an embedded jwk of the signer's own key": (
            signed(mallory, {**es256k, "jwk": {"kty": "EC", "crv": "secp256k1"}}, claims),
            "bad_signature",
        ),
        "a jku/kid pointing elsewhere": (
            signed(mallory, {**es256k, "jku": "https://evil.example/k", "kid": "x"}, claims),
            "bad_signature",
        ),
        "a refresh token": (signed(alice, {**es256k, "typ": "refresh+jwt"}, claims), "bad_typ"),
        "a DPoP proof": (signed(alice, {**es256k, "typ": "dpop+jwt"}, claims), "bad_typ"),
        "replayed for another audience": (
            signed(alice, es256k, claims_of(alice, aud="did:web:api.bsky.app")),
            "bad_audience",
        ),
        "our audience inside a list": (
            signed(alice, es256k, claims_of(alice, aud=[SERVICE_DID, "did:web:x.example"])),
            "bad_audience",
        ),
        "our audience with a service fragment": (
            signed(alice, es256k, claims_of(alice, aud=f"{SERVICE_DID}#plyr_recs")),
            "bad_audience",
        ),
        "replayed for a feed generator's method": (
            signed(alice, es256k, claims_of(alice, lxm="app.bsky.feed.getFeedSkeleton")),
            "bad_lxm",
        ),
        "expired a minute ago": (
            signed(alice, es256k, claims_of(alice, exp=int(time.time()) - 60)),
            "expired",
        ),
        "exp as a string": (
            signed(alice, es256k, claims_of(alice, exp=str(int(time.time()) + 60))),
            "malformed",
        ),
        "exp true": (signed(alice, es256k, claims_of(alice, exp=True)), "malformed"),
        "exp past 64 bits": (signed(alice, es256k, claims_of(alice, exp=2**70)), "exp_too_far"),
        "not valid before next week": (
            signed(alice, es256k, claims_of(alice, nbf=int(time.time()) + 7 * 86_400)),
            "not_yet_valid",
        ),
        "issuer in upper case": (
            signed(alice, es256k, claims_of(alice, iss=alice.did.upper())),
            "bad_issuer",
        ),
        "issuer with a newline": (
            signed(alice, es256k, claims_of(alice, iss=alice.did + "\n")),
            "bad_issuer",
        ),
        "a forged signature in alice's name": (signed(mallory, es256k, claims), "bad_signature"),
        "a signature from another message": (
            f"{b64url_json(es256k)}.{b64url_json(claims)}."
            + signed(alice, es256k, claims_of(alice, jti="other")).rsplit(".", 1)[1],
            "bad_signature",
        ),
        "oversized": (
            signed(alice, es256k, claims_of(alice, padding="x" * 9000)),
            "oversized",
        ),
        "base64 padding": (signed(alice, es256k, claims) + "==", "malformed"),
    }


def _hmac(key: str, message: str) -> bytes:
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()


async def test_hostile_tokens_are_refused_at_the_door(api: Api, world: World) -> None:
    looked_up = await redis_lookups(api.redis)
    for name, (token, reason) in hostile_tokens(world).items():
        response = await api.get(PUBLIC_ID, {"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
        assert response.json() == {"detail": reason}, name
        assert response.headers["www-authenticate"] == "Bearer"
    # refused before the cache was even asked about the playlist.
    assert await redis_lookups(api.redis) == looked_up
    # and the one honest token in the same world gets in: the door is not just shut.
    assert (await api.get(PUBLIC_ID, bearer(world.alice))).status_code == 200


# --- someone else's DID ----------------------------------------------------------------------


async def test_nobody_gets_alices_recommendations_in_her_name(api: Api, world: World) -> None:
    alice, bob = world.alice, world.bob
    pretenders: dict[str, tuple[dict[str, str], int]] = {
        "bob's token": (bearer(bob), 403),
        "bob's token, claiming to be alice": ({**bearer(bob), "X-Viewer-Did": alice.did}, 401),
        "alice's DID in upper case": (internal(alice.did.upper()), 401),
        "alice's DID with a fragment": (internal(alice.did + "#atproto"), 401),
        "alice's DID with a path": (internal(alice.did + "/x"), 401),
        "alice's DID, percent-encoded": (internal(alice.did.replace(":", "%3A")), 401),
        "alice's DID without the internal token": ({"X-Viewer-Did": alice.did}, 401),
        "alice's DID with a wrong internal token": (internal(alice.did, token="guess"), 401),
        "alice's DID with the token's prefix": (internal(alice.did, INTERNAL_TOKEN[:-1]), 401),
        "alice's DID with an empty token": (internal(alice.did, token=""), 401),
        "a did:key of alice's key": (internal(f"did:key:{alice.public_key_multibase}"), 401),
        "bob vouched for": (internal(bob.did), 403),
    }
    for name, (headers, status) in pretenders.items():
        response = await api.get(PUBLIC_ID, headers)
        assert response.status_code == status, name
        assert "tracks" not in response.json(), name
    assert (await api.get(PUBLIC_ID, internal(alice.did))).status_code == 200


# --- injection in the path, the query and the headers ------------------------------------------
#
# sent as raw ASGI requests, so the bytes reach the app exactly as written (an HTTP
# client would normalise or refuse some of them; a proxy in front might not).


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


async def raw_request(
    app: Any,
    raw_path: bytes,
    headers: list[tuple[bytes, bytes]],
    *,
    query: bytes = b"",
    method: str = "GET",
) -> RawResponse:
    """one request straight into the ASGI app: the path percent-decoded as servers do
    (latin-1 for bytes that are not UTF-8), the raw bytes alongside."""
    decoded = unquote_to_bytes(raw_path)
    try:
        path = decoded.decode()
    except UnicodeDecodeError:
        path = decoded.decode("latin-1")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path,
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", b"api.test"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("api.test", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(message for message in sent if message["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return RawResponse(start["status"], list(start.get("headers", [])), body)


def alice_internal(world: World) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-internal-token", INTERNAL_TOKEN.encode()),
        (b"x-viewer-did", world.alice.did.encode()),
    ]


HOSTILE_PLAYLIST_IDS = [
    b"..",
    b"../health",
    b"..%2F..%2Fhealth",
    b"%2e%2e%2f%2e%2e%2fmetrics",
    b"%252e%252e%252f",  # encoded twice
    b"a%2Fb",
    b"a%5Cb",  # a backslash
    b"a%00b",
    b"%00",
    b"a%0D%0ASet-Cookie:%20session=x",
    b"a%0Ab",
    b"*",
    b"plyr:*",
    b"%2A",
    b"a:b",
    b"a?b",
    b"%3F",
    b"[a]",
    b"a%20OR%201=1--",
    b"'%3B%20DROP%20TABLE%20playlists%3B--",
    b"%7B%24ne%3A1%7D",
    b"%C3%A9",
    b"%E2%80%AE" + PUBLIC_ID.encode(),  # right-to-left override
    b"%EF%BC%A1" * 3,  # fullwidth A
    b"%FF%FE",  # not UTF-8
    b"%C0%AE%C0%AE",  # overlong UTF-8 dots
    PUBLIC_ID.encode() + b"%00",
    PUBLIC_ID.encode() + b"%0A",
    PUBLIC_ID.encode() + b"%20",
    b"x" * 65,
    b"x" * 100_000,
]


async def test_hostile_playlist_ids_are_refused_without_a_lookup(api: Api, world: World) -> None:
    looked_up = await redis_lookups(api.redis)
    for hostile in HOSTILE_PLAYLIST_IDS:
        raw_path = b"/playlists/" + hostile + b"/recommendations"
        response = await raw_request(api.app, raw_path, alice_internal(world))
        assert response.status in (404, 422), (hostile[:80], response)
        assert b"tracks" not in response.body, hostile[:80]
        # nothing of the id is reflected into a header (the 422 body quotes it, escaped).
        assert all(b"session" not in value for _, value in response.headers), hostile[:80]
        assert len(response.body) < 2048  # a long id is not echoed back whole
    assert await redis_lookups(api.redis) == looked_up


async def test_the_path_itself_cannot_be_bent_to_another_route(api: Api, world: World) -> None:
    for raw_path in (
        b"/playlists/" + PUBLIC_ID.encode() + b"/recommendations/../../../health",
        b"/playlists/" + PUBLIC_ID.encode() + b"/recommendations%2F..%2F..%2Fmetrics",
        b"//playlists/" + PUBLIC_ID.encode() + b"/recommendations",
        b"/playlists/" + PUBLIC_ID.encode() + b"/recommendations/",
        b"/playlists/" + PUBLIC_ID.encode() + b"//recommendations",
        b"/PLAYLISTS/" + PUBLIC_ID.encode() + b"/recommendations",
        b"/playlists/" + PUBLIC_ID.encode() + b"/recommendations%00",
        b"/playlists/" + PUBLIC_ID.encode() + b"/recommendations;x=1",
    ):
        response = await raw_request(api.app, raw_path, alice_internal(world))
        # redirect_slashes may answer a trailing slash with a redirect to the real route.
        assert response.status in (307, 404, 422), (raw_path, response)
        assert b"tracks" not in response.body, raw_path
        assert b"redis" not in response.body, raw_path  # not /health's body either


HOSTILE_LIMITS = [
    b"limit=",
    b"limit=0",
    b"limit=11",
    b"limit=-1",
    b"limit=%2B3",
    b"limit=3%20",
    b"limit=%203",
    b"limit=3.0",
    b"limit=3e0",
    b"limit=0x3",
    b"limit=%D9%A3",  # an Arabic-Indic digit three: int() would take it
    b"limit=%EF%BC%93",  # a fullwidth three
    b"limit=3%00",
    b"limit=99999999999999999999999",
    b"limit=%FF",
    b"limit=3&limit=99",
]


async def test_hostile_limits_are_422_and_never_more_than_ten_tracks(
    api: Api, world: World
) -> None:
    raw_path = ROUTE.format(PUBLIC_ID).encode()
    for query in HOSTILE_LIMITS:
        response = await raw_request(api.app, raw_path, alice_internal(world), query=query)
        assert response.status == 422, (query, response)
    # a repeated parameter is read once (the last), and still bounded.
    for query, tracks in ((b"limit=99&limit=3", 3), (b"limit=2&limit=x&limit=1", 1)):
        response = await raw_request(api.app, raw_path, alice_internal(world), query=query)
        if response.status == 200:
            assert len(orjson.loads(response.body)["tracks"]) == tracks
        else:
            assert response.status == 422, query
    # parameters nobody asked for are ignored, not reflected.
    ignored = await raw_request(
        api.app, raw_path, alice_internal(world), query=b"limit=2&debug=1&__proto__=x"
    )
    assert ignored.status == 200
    assert len(orjson.loads(ignored.body)["tracks"]) == 2


# the same tricks on "more": 0 is a valid offset, 21 is one too far
HOSTILE_OFFSETS = [
    query.replace(b"limit", b"offset").replace(b"=11", b"=21")
    for query in HOSTILE_LIMITS
    if query != b"limit=0"
]


async def test_hostile_offsets_are_422(api: Api, world: World) -> None:
    raw_path = ROUTE.format(PUBLIC_ID).encode()
    for query in HOSTILE_OFFSETS:
        response = await raw_request(api.app, raw_path, alice_internal(world), query=query)
        assert response.status == 422, (query, response)
        assert b"offset" in response.body, query


def _with(world: World, name: bytes, value: bytes) -> list[tuple[bytes, bytes]]:
    """alice's internal credentials with header `name` replaced by `value`."""
    return [*(pair for pair in alice_internal(world) if pair[0] != name), (name, value)]


async def test_hostile_header_values_are_refused(api: Api, world: World) -> None:
    alice = world.alice.did.encode()
    token = INTERNAL_TOKEN.encode()
    jwt = bearer(world.alice)["Authorization"].encode()
    cases: dict[str, tuple[list[tuple[bytes, bytes]], int]] = {
        "CRLF in the viewer": (_with(world, b"x-viewer-did", alice + b"\r\nx-a: b"), 401),
        "NUL in the viewer": (_with(world, b"x-viewer-did", alice + b"\x00"), 401),
        "latin-1 in the viewer": (_with(world, b"x-viewer-did", alice + b"\xe9"), 401),
        "not UTF-8 in the viewer": (_with(world, b"x-viewer-did", b"\xff\xfe" + alice), 401),
        "a huge viewer": (_with(world, b"x-viewer-did", b"did:web:" + b"a" * 100_000), 401),
        "CRLF in the token": (_with(world, b"x-internal-token", token + b"\r\n"), 401),
        "NUL after the token": (_with(world, b"x-internal-token", token + b"\x00"), 401),
        "the token, then latin-1": (_with(world, b"x-internal-token", token + b"\xe9"), 401),
        "a huge token": (_with(world, b"x-internal-token", b"t" * 1_000_000), 401),
        "the token twice": (
            [*alice_internal(world), (b"X-Internal-Token", token)],
            401,
        ),
        "the viewer twice": ([*alice_internal(world), (b"x-viewer-did", alice)], 401),
        "a huge bearer": ([(b"authorization", b"Bearer " + b"a" * 1_000_000)], 401),
        # whitespace round a genuine token is trimmed (no HTTP server delivers a CR or
        # LF in a value; one that did would still carry alice's own credential).
        "a genuine bearer with CRLF": ([(b"authorization", jwt + b"\r\n")], 200),
        "a bearer with CRLF and more": ([(b"authorization", jwt + b"\r\nx-a: b")], 401),
        "a bearer with a NUL": ([(b"authorization", jwt + b"\x00")], 401),
        "a bearer with a latin-1 dot": ([(b"authorization", jwt.replace(b".", b"\xb7", 1))], 401),
        "two bearers": ([(b"authorization", jwt), (b"Authorization", jwt)], 401),
        "a bearer and a comma": ([(b"authorization", jwt + b", " + jwt)], 401),
    }
    raw_path = ROUTE.format(PUBLIC_ID).encode()
    for name, (headers, status) in cases.items():
        response = await raw_request(api.app, raw_path, headers)
        assert response.status == status, (name, response)
        assert (b"tracks" in response.body) == (status == 200), name
        assert all(not key.startswith(b"x-a") for key, _ in response.headers), name
    # the honest versions of the same requests get in.
    ok = await raw_request(api.app, raw_path, alice_internal(world))
    assert ok.status == 200
    assert (await raw_request(api.app, raw_path, [(b"authorization", jwt)])).status == 200


async def test_other_methods_are_refused(api: Api, world: World) -> None:
    raw_path = ROUTE.format(PUBLIC_ID).encode()
    methods = ("HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "GETX")
    for method in methods:
        response = await raw_request(api.app, raw_path, alice_internal(world), method=method)
        assert response.status == 405, (method, response)
        assert (b"allow", b"GET") in response.headers
        assert b"tracks" not in response.body


PRIVATE_NAMES = [
    "did:web:metadata.google.internal",
    "did:web:plyr-db.internal",
    "did:web:plyr-recs.flycast",
    "did:web:printer.local",
    "did:web:router.home.arpa",
    "did:web:api.localhost",
    "did:web:API.LOCALHOST",
]


async def test_a_did_web_inside_a_private_network_is_never_resolved(api: Api, world: World) -> None:
    """a token naming did:web:<an internal name> would have the API fetch
    https://<that name>/.well-known/did.json for anyone who asks."""
    resolver = api.app.state.api.authenticator.resolver
    fetches = resolver.counts["fetch"]
    for did in PRIVATE_NAMES:
        forged = Identity.generate("k256", did=did)
        response = await api.get(PUBLIC_ID, bearer(forged))
        assert (response.status_code, response.json()) == (401, {"detail": "bad_issuer"}), did
        vouched = await api.get(PUBLIC_ID, internal(did))
        assert (vouched.status_code, vouched.json()) == (401, {"detail": "bad_viewer_did"}), did
    assert resolver.counts["fetch"] == fetches
