"""the API's two ways in, against a local PLC directory and keys made in the test.

every token here is signed for real (secp256k1 or P-256, generated per test)
and verified through the real resolver over HTTP on loopback; nothing about
the verification path is mocked. time is a test clock, so "expired" is exact.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr
from starlette.datastructures import Headers

from tests.support.did_server import Identity, PlcDirectory, b64url, b64url_json, random_plc_did
from worker.identity.auth import Authenticator, AuthError
from worker.identity.did_resolver import CachedDidResolver, DidResolutionError
from worker.settings import Settings

SERVICE_DID = "did:web:recs.plyr.test"
LXM = "fm.plyr.getPlaylistRecommendations"
INTERNAL_TOKEN = "s3cret-internal-token"
T0 = 1_760_000_000.0


class Clock:
    """a clock that moves only when told (unix seconds; the resolver shares it)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def plc() -> AsyncIterator[PlcDirectory]:
    async with PlcDirectory() as directory:
        yield directory


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def resolver(plc: PlcDirectory, clock: Clock) -> AsyncIterator[CachedDidResolver]:
    resolver = CachedDidResolver(
        plc_directory_url=plc.url,
        cache_seconds=600,
        timeout_seconds=0.5,
        refresh_floor_seconds=30,
        clock=clock,
    )
    yield resolver
    await resolver.aclose()


@pytest.fixture
def auth(resolver: CachedDidResolver, clock: Clock) -> Authenticator:
    return Authenticator(
        service_did=SERVICE_DID,
        internal_api_token=INTERNAL_TOKEN,
        resolver=resolver,
        clock=clock,
    )


@pytest.fixture
def alice(plc: PlcDirectory) -> Identity:
    return plc.publish(Identity.generate("k256"))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def refused(auth: Authenticator, headers: dict[str, str] | Headers) -> str:
    """the reason `auth` gives for refusing `headers` (fails the test if it accepts)."""
    with pytest.raises(AuthError) as caught:
        await auth.authenticate(headers)
    assert caught.value.status_code == 401
    return caught.value.reason


def forge(header: dict[str, object], payload: dict[str, object], signature: bytes) -> str:
    return f"{b64url_json(header)}.{b64url_json(payload)}.{b64url(signature)}"


# --- the JWT way in ---------------------------------------------------------------


async def test_a_valid_service_jwt_names_its_issuer(
    auth: Authenticator, alice: Identity, clock: Clock
) -> None:
    token = alice.service_jwt(aud=SERVICE_DID, now=clock())
    assert await auth.authenticate(bearer(token)) == alice.did
    assert auth.counts["accepted:jwt"] == 1


async def test_a_p256_key_works_too(auth: Authenticator, plc: PlcDirectory, clock: Clock) -> None:
    bob = plc.publish(Identity.generate("p256"))
    assert await auth.authenticate(bearer(bob.service_jwt(aud=SERVICE_DID, now=clock()))) == bob.did


async def test_header_names_and_scheme_are_case_insensitive(
    auth: Authenticator, alice: Identity, clock: Clock
) -> None:
    token = alice.service_jwt(aud=SERVICE_DID, now=clock())
    assert await auth.authenticate({"AUTHORIZATION": f"bearer {token}"}) == alice.did
    assert await auth.authenticate(Headers({"authorization": f"Bearer {token}"})) == alice.did


async def test_an_expired_token_is_refused(
    auth: Authenticator, alice: Identity, clock: Clock
) -> None:
    token = alice.service_jwt(aud=SERVICE_DID, now=clock(), lifetime=60)
    clock.advance(60 + 11)  # past exp and past the 10 s leeway
    assert await refused(auth, bearer(token)) == "expired"


async def test_a_token_within_the_clock_leeway_is_accepted(
    auth: Authenticator, alice: Identity, clock: Clock
) -> None:
    token = alice.service_jwt(aud=SERVICE_DID, now=clock(), lifetime=60)
    clock.advance(60 + 5)
    assert await auth.authenticate(bearer(token)) == alice.did


async def test_a_token_without_exp_is_refused(
    auth: Authenticator, alice: Identity, clock: Clock
) -> None:
    token = alice.service_jwt(aud=SERVICE_DID, now=clock(), exp=None)
    assert await refused(auth, bearer(token)) == "missing_exp"


async def test_a_token_valid_for_days_is_refused(
    auth: Authenticator, alice: Identity, clock: Clock
) -> None:
    token = alice.service_jwt(aud=SERVICE_DID, now=clock(), lifetime=3 * 86400)
    assert await refused(auth, bearer(token)) == "exp_too_far"


async def test_a_token_issued_in_the_future_is_refused(
    auth: Authenticator, alice: Identity, clock: Clock
) -> None:
    token = alice.service_jwt(aud=SERVICE_DID, now=clock(), iat=int(clock()) + 600)
    assert await refused(auth, bearer(token)) == "bad_iat"


async def test_a_float_exp_is_malformed(auth: Authenticator, alice: Identity, clock: Clock) -> None:
    token = alice.service_jwt(aud=SERVICE_DID, now=clock(), exp=clock() + 30.5)
    assert await refused(auth, bearer(token)) == "malformed"


@pytest.mark.parametrize("aud", ["did:web:other.example", [SERVICE_DID], SERVICE_DID.upper(), None])
async def test_a_token_for_another_audience_is_refused(
    auth: Authenticator, alice: Identity, clock: Clock, aud: object
) -> None:
    token = alice.service_jwt(aud=aud, now=clock())
    assert await refused(auth, bearer(token)) == "bad_audience"


async def test_a_token_for_another_method_is_refused(
    auth: Authenticator, alice: Identity, clock: Clock
) -> None:
    token = alice.service_jwt(aud=SERVICE_DID, now=clock(), lxm="app.bsky.feed.getTimeline")
    assert await refused(auth, bearer(token)) == "bad_lxm"


async def test_a_token_bound_to_no_method_is_refused(
    auth: Authenticator, alice: Identity, clock: Clock
) -> None:
    token = alice.service_jwt(aud=SERVICE_DID, now=clock(), lxm=None)
    assert await refused(auth, bearer(token)) == "missing_lxm"


async def test_a_token_signed_by_another_key_is_refused(
    auth: Authenticator, alice: Identity, clock: Clock
) -> None:
    impostor = Identity.generate("k256", did=alice.did)  # same DID, key not in the document
    token = impostor.service_jwt(aud=SERVICE_DID, now=clock())
    assert await refused(auth, bearer(token)) == "bad_signature"


async def test_my_key_cannot_speak_for_someone_elses_did(
    auth: Authenticator, plc: PlcDirectory, alice: Identity, clock: Clock
) -> None:
    mallory = plc.publish(Identity.generate("k256"))
    token = mallory.service_jwt(aud=SERVICE_DID, now=clock(), iss=alice.did)
    assert await refused(auth, bearer(token)) == "bad_signature"
    # and the honest version of the same token names mallory, not alice.
    own = mallory.service_jwt(aud=SERVICE_DID, now=clock())
    assert await auth.authenticate(bearer(own)) == mallory.did


async def test_a_tampered_payload_breaks_the_signature(
    auth: Authenticator, plc: PlcDirectory, alice: Identity, clock: Clock
) -> None:
    mallory = plc.publish(Identity.generate("k256"))
    header, _, signature = alice.service_jwt(aud=SERVICE_DID, now=clock()).split(".")
    other_payload = mallory.service_jwt(aud=SERVICE_DID, now=clock()).split(".")[1]
    assert await refused(auth, bearer(f"{header}.{other_payload}.{signature}")) == "bad_signature"


async def test_an_issuer_with_a_service_fragment_is_the_account(
    auth: Authenticator, alice: Identity, clock: Clock
) -> None:
    token = alice.service_jwt(aud=SERVICE_DID, now=clock(), iss=f"{alice.did}#atproto_pds")
    assert await auth.authenticate(bearer(token)) == alice.did


@pytest.mark.parametrize(
    "iss",
    [
        None,
        "alice",
        "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme",  # would sign for itself
        "did:plc:tooshort",
        "did:web:127.0.0.1",
        "did:web:localhost",
        "did:example:123",
        "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa#bad fragment",
    ],
)
async def test_an_unusable_issuer_is_refused_without_a_lookup(
    auth: Authenticator, plc: PlcDirectory, alice: Identity, clock: Clock, iss: str | None
) -> None:
    token = alice.service_jwt(aud=SERVICE_DID, now=clock(), iss=iss)
    assert await refused(auth, bearer(token)) == "bad_issuer"
    assert sum(plc.requests.values()) == 0


async def test_alg_none_is_refused(auth: Authenticator, alice: Identity, clock: Clock) -> None:
    claims = {"iss": alice.did, "aud": SERVICE_DID, "exp": int(clock()) + 60, "lxm": LXM}
    unsigned = f"{b64url_json({'typ': 'JWT', 'alg': 'none'})}.{b64url_json(claims)}."
    assert await refused(auth, bearer(unsigned)) == "malformed"  # no signature segment at all
    with_junk = forge({"typ": "JWT", "alg": "none"}, claims, b"x")
    assert await refused(auth, bearer(with_junk)) == "bad_alg"


async def test_hs256_with_the_public_key_as_secret_is_refused(
    auth: Authenticator, alice: Identity, clock: Clock
) -> None:
    """algorithm confusion: an HMAC keyed with the (public) multikey must not verify."""
    claims = {"iss": alice.did, "aud": SERVICE_DID, "exp": int(clock()) + 60, "lxm": LXM}
    signing_input = f"{b64url_json({'alg': 'HS256', 'typ': 'JWT'})}.{b64url_json(claims)}"
    mac = hmac.new(alice.public_key_multibase.encode(), signing_input.encode(), hashlib.sha256)
    assert await refused(auth, bearer(f"{signing_input}.{b64url(mac.digest())}")) == "bad_alg"


async def test_an_alg_that_does_not_match_the_key_is_refused(
    auth: Authenticator, alice: Identity, clock: Clock
) -> None:
    token = alice.service_jwt(aud=SERVICE_DID, now=clock(), header={"alg": "ES256"})
    assert await refused(auth, bearer(token)) == "bad_signature"


async def test_an_access_token_type_is_refused(
    auth: Authenticator, alice: Identity, clock: Clock
) -> None:
    token = alice.service_jwt(aud=SERVICE_DID, now=clock(), header={"typ": "at+jwt"})
    assert await refused(auth, bearer(token)) == "bad_typ"


async def test_a_high_s_signature_is_accepted_like_the_reference_verifier(
    auth: Authenticator, alice: Identity, clock: Clock
) -> None:
    token = alice.service_jwt(aud=SERVICE_DID, now=clock(), high_s=True)
    assert await auth.authenticate(bearer(token)) == alice.did


async def test_an_oversized_token_is_refused_before_any_lookup(
    auth: Authenticator, plc: PlcDirectory, alice: Identity, clock: Clock
) -> None:
    token = alice.service_jwt(aud=SERVICE_DID, now=clock(), padding="x" * 9000)
    assert await refused(auth, bearer(token)) == "oversized"
    assert plc.requests_for(alice.did) == 0


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b",
        "a.b.c.d",
        "!!!.???.***",
        "eyJhbGciOiJFUzI1NksifQ.bm90IGpzb24.c2ln",  # header ok, payload not JSON
        "WzFd.e30.c2ln",  # header is a JSON list
        f"{b64url_json({'alg': 'ES256K'})}.{b64url(b'[1,2]')}.c2ln",  # payload is a list
        f"{b64url_json({'alg': 'ES256K'})}.{b64url_json({})}.{'A' * 86}=",  # padding
    ],
)
async def test_garbage_tokens_are_malformed(auth: Authenticator, token: str) -> None:
    assert await refused(auth, bearer(token)) == "malformed"


async def test_a_truncated_signature_is_refused(
    auth: Authenticator, alice: Identity, clock: Clock
) -> None:
    token = alice.service_jwt(aud=SERVICE_DID, now=clock())
    assert await refused(auth, bearer(token[:-4])) == "bad_signature"


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token abc", "jwt"])
async def test_anything_but_bearer_is_refused(auth: Authenticator, value: str) -> None:
    assert await refused(auth, {"Authorization": value}) == "bad_scheme"


async def test_no_credentials_is_refused(auth: Authenticator) -> None:
    assert await refused(auth, {}) == "missing"
    assert await refused(auth, {"X-Viewer-Did": random_plc_did()}) == "missing"
    assert auth.counts["rejected:missing"] == 2


async def test_a_repeated_authorization_header_is_refused(
    auth: Authenticator, alice: Identity, clock: Clock
) -> None:
    token = alice.service_jwt(aud=SERVICE_DID, now=clock())
    raw = [(b"authorization", f"Bearer {token}".encode())] * 2
    assert await refused(auth, Headers(raw=raw)) == "duplicate_header"


# --- the internal way in ------------------------------------------------------------


def internal(token: str, viewer_did: str) -> dict[str, str]:
    return {"X-Internal-Token": token, "X-Viewer-Did": viewer_did}


async def test_the_internal_token_vouches_for_the_viewer(auth: Authenticator) -> None:
    viewer = random_plc_did()
    assert await auth.authenticate(internal(INTERNAL_TOKEN, viewer)) == viewer
    assert await auth.authenticate(internal(INTERNAL_TOKEN, "did:web:someone.example")) == (
        "did:web:someone.example"
    )
    assert auth.counts["accepted:internal"] == 2


@pytest.mark.parametrize(
    "token", ["wrong", INTERNAL_TOKEN[:-1], INTERNAL_TOKEN + "x", "", "é" * 10, "x" * 5000]
)
async def test_a_wrong_internal_token_is_refused(auth: Authenticator, token: str) -> None:
    assert await refused(auth, internal(token, random_plc_did())) == "internal_token"


async def test_no_configured_internal_token_closes_that_way(
    resolver: CachedDidResolver, clock: Clock
) -> None:
    for configured in (None, ""):
        closed = Authenticator(
            service_did=SERVICE_DID, internal_api_token=configured, resolver=resolver, clock=clock
        )
        for presented in ("", "anything", INTERNAL_TOKEN):
            assert await refused(closed, internal(presented, random_plc_did())) == "internal_token"


@pytest.mark.parametrize(
    "viewer",
    [
        "alice",
        "did:plc:short",
        "did:plc:" + "a" * 25,
        "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme",
        "did:web:" + "a" * 300 + ".example",
        "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa\n",
        " did:plc:aaaaaaaaaaaaaaaaaaaaaaaa",
    ],
)
async def test_a_bad_viewer_did_is_refused(auth: Authenticator, viewer: str) -> None:
    assert await refused(auth, internal(INTERNAL_TOKEN, viewer)) == "bad_viewer_did"


async def test_the_internal_token_without_a_viewer_is_refused(auth: Authenticator) -> None:
    assert await refused(auth, {"X-Internal-Token": INTERNAL_TOKEN}) == "missing_viewer_did"


# --- both at once ---------------------------------------------------------------------


async def test_with_both_the_jwt_names_the_viewer(
    auth: Authenticator, alice: Identity, clock: Clock
) -> None:
    headers = bearer(alice.service_jwt(aud=SERVICE_DID, now=clock()))
    headers |= internal(INTERNAL_TOKEN, alice.did)
    assert await auth.authenticate(headers) == alice.did
    assert auth.counts["accepted:jwt"] == 1


async def test_a_wrong_internal_token_next_to_a_good_jwt_is_refused(
    auth: Authenticator, alice: Identity, clock: Clock
) -> None:
    headers = bearer(alice.service_jwt(aud=SERVICE_DID, now=clock()))
    headers |= internal("wrong", alice.did)
    assert await refused(auth, headers) == "internal_token"


async def test_a_viewer_header_that_contradicts_the_jwt_is_refused(
    auth: Authenticator, alice: Identity, clock: Clock
) -> None:
    headers = bearer(alice.service_jwt(aud=SERVICE_DID, now=clock()))
    assert await refused(auth, headers | {"X-Viewer-Did": random_plc_did()}) == (
        "conflicting_viewer"
    )
    headers |= internal(INTERNAL_TOKEN, random_plc_did())
    assert await refused(auth, headers) == "conflicting_viewer"


async def test_a_bad_jwt_is_not_rescued_by_a_good_internal_token(
    auth: Authenticator, alice: Identity, clock: Clock
) -> None:
    headers = bearer(alice.service_jwt(aud="did:web:elsewhere.example", now=clock()))
    headers |= internal(INTERNAL_TOKEN, alice.did)
    assert await refused(auth, headers) == "bad_audience"


# --- resolution: cache, rotation, time bound ---------------------------------------


async def test_the_signing_key_is_resolved_once_and_cached(
    auth: Authenticator, plc: PlcDirectory, alice: Identity, clock: Clock
) -> None:
    for _ in range(2):
        token = alice.service_jwt(aud=SERVICE_DID, now=clock())
        assert await auth.authenticate(bearer(token)) == alice.did
    assert plc.requests_for(alice.did) == 1


async def test_the_cache_expires(
    auth: Authenticator, plc: PlcDirectory, alice: Identity, clock: Clock
) -> None:
    assert await auth.authenticate(bearer(alice.service_jwt(aud=SERVICE_DID, now=clock())))
    clock.advance(601)
    assert await auth.authenticate(bearer(alice.service_jwt(aud=SERVICE_DID, now=clock())))
    assert plc.requests_for(alice.did) == 2


async def test_a_rotated_key_is_re_resolved_once_and_accepted(
    auth: Authenticator, plc: PlcDirectory, alice: Identity, clock: Clock
) -> None:
    assert await auth.authenticate(bearer(alice.service_jwt(aud=SERVICE_DID, now=clock())))
    clock.advance(60)  # past the refresh floor, well within the cache TTL
    rotated = plc.rotate(alice, curve="p256")
    token = rotated.service_jwt(aud=SERVICE_DID, now=clock())
    assert await auth.authenticate(bearer(token)) == alice.did
    assert plc.requests_for(alice.did) == 2
    # the fresh key is cached now: no further lookups, and the old key is done for.
    assert await auth.authenticate(bearer(rotated.service_jwt(aud=SERVICE_DID, now=clock())))
    assert await refused(auth, bearer(alice.service_jwt(aud=SERVICE_DID, now=clock()))) == (
        "bad_signature"
    )
    # the old key's failure wanted a fresh look, but the last fetch is too recent.
    assert plc.requests_for(alice.did) == 2


async def test_forged_signatures_cannot_make_us_hammer_the_directory(
    auth: Authenticator, plc: PlcDirectory, alice: Identity, clock: Clock
) -> None:
    impostor = Identity.generate("k256", did=alice.did)
    for _ in range(5):
        token = impostor.service_jwt(aud=SERVICE_DID, now=clock())
        assert await refused(auth, bearer(token)) == "bad_signature"
    # one fetch to learn the key; forced refreshes within the floor reuse it.
    assert plc.requests_for(alice.did) == 1


async def test_an_unknown_did_is_unresolvable(
    auth: Authenticator, plc: PlcDirectory, clock: Clock
) -> None:
    stranger = Identity.generate("k256")  # never published
    token = stranger.service_jwt(aud=SERVICE_DID, now=clock())
    assert await refused(auth, bearer(token)) == "unresolvable"
    assert plc.requests_for(stranger.did) == 1


async def test_a_stalled_directory_is_a_401_not_a_hang(
    auth: Authenticator,
    resolver: CachedDidResolver,
    plc: PlcDirectory,
    alice: Identity,
    clock: Clock,
) -> None:
    plc.fault = "stall"
    token = alice.service_jwt(aud=SERVICE_DID, now=clock())
    assert await refused(auth, bearer(token)) == "unresolvable"
    assert plc.requests_for(alice.did) == 1
    assert resolver.counts["failed:timeout"] == 1


async def test_an_expired_key_is_used_while_the_directory_is_down(
    auth: Authenticator,
    resolver: CachedDidResolver,
    plc: PlcDirectory,
    alice: Identity,
    clock: Clock,
) -> None:
    assert await auth.authenticate(bearer(alice.service_jwt(aud=SERVICE_DID, now=clock())))
    plc.fault = "error"
    clock.advance(601)  # past the cache TTL, within the stale grace
    assert await auth.authenticate(bearer(alice.service_jwt(aud=SERVICE_DID, now=clock())))
    assert resolver.counts["stale_used"] == 1
    clock.advance(3600)  # past the grace too: no key is better than a very old one
    token = alice.service_jwt(aud=SERVICE_DID, now=clock())
    assert await refused(auth, bearer(token)) == "unresolvable"
    assert plc.requests_for(alice.did) == 3


async def test_a_deactivated_did_gets_no_grace(
    auth: Authenticator, plc: PlcDirectory, alice: Identity, clock: Clock
) -> None:
    assert await auth.authenticate(bearer(alice.service_jwt(aud=SERVICE_DID, now=clock())))
    del plc.documents[alice.did]  # the directory now answers 404: an answer, not an outage
    clock.advance(601)
    token = alice.service_jwt(aud=SERVICE_DID, now=clock())
    assert await refused(auth, bearer(token)) == "unresolvable"


@pytest.mark.parametrize("fault", ["error", "garbage", "deep", "oversized"])
async def test_a_broken_directory_is_a_401(
    auth: Authenticator, plc: PlcDirectory, alice: Identity, clock: Clock, fault: str
) -> None:
    plc.fault = fault  # type: ignore[assignment]
    token = alice.service_jwt(aud=SERVICE_DID, now=clock())
    assert await refused(auth, bearer(token)) == "unresolvable"


async def test_a_failure_is_not_cached(
    auth: Authenticator, plc: PlcDirectory, alice: Identity, clock: Clock
) -> None:
    plc.fault = "error"
    assert await refused(auth, bearer(alice.service_jwt(aud=SERVICE_DID, now=clock())))
    plc.fault = None
    assert await auth.authenticate(bearer(alice.service_jwt(aud=SERVICE_DID, now=clock())))


@pytest.mark.parametrize("shape", ["someone_else", "no_id", "no_key", "not_an_object"])
async def test_a_document_without_our_key_is_unusable(
    resolver: CachedDidResolver, plc: PlcDirectory, alice: Identity, shape: str
) -> None:
    document = alice.document()
    if shape == "someone_else":
        document["id"] = random_plc_did()
    elif shape == "no_id":
        del document["id"]
    elif shape == "no_key":
        document["verificationMethod"] = []
    plc.documents[alice.did] = document if shape != "not_an_object" else [document]  # type: ignore[assignment]
    with pytest.raises(DidResolutionError):
        await resolver.signing_key(alice.did)


@pytest.mark.parametrize(
    ("key_type", "multibase"),
    [
        ("Multikey", "zNotAKey"),  # not a key type we know
        ("Multikey", "z0OIl"),  # not base58
        ("Multikey", "zQ3sh"),  # the secp256k1 prefix, then too few bytes
        ("EcdsaSecp256k1VerificationKey2019", "zzz"),  # legacy type, not a point
    ],
)
async def test_a_document_with_a_bad_key_is_unusable(
    resolver: CachedDidResolver, plc: PlcDirectory, alice: Identity, key_type: str, multibase: str
) -> None:
    document = alice.document()
    document["verificationMethod"][0] |= {"type": key_type, "publicKeyMultibase": multibase}
    plc.documents[alice.did] = document
    with pytest.raises(DidResolutionError):
        await resolver.signing_key(alice.did)
    assert resolver.counts["failed:bad_document"] == 1


async def test_from_settings_wires_the_configured_directory(
    plc: PlcDirectory, alice: Identity
) -> None:
    settings = Settings(
        service_did=SERVICE_DID,
        internal_api_token=SecretStr(INTERNAL_TOKEN),
        plc_directory_url=plc.url,
        did_cache_seconds=5,
        did_resolve_timeout_seconds=1,
    )
    auth = Authenticator.from_settings(settings)
    try:
        token = alice.service_jwt(aud=SERVICE_DID, now=time.time())
        assert await auth.authenticate(bearer(token)) == alice.did
        viewer = random_plc_did()
        assert await auth.authenticate(internal(INTERNAL_TOKEN, viewer)) == viewer
        assert plc.requests_for(alice.did) == 1
    finally:
        await auth.aclose()
