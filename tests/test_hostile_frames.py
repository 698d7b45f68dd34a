"""hostile frames: every field of a real commit replaced by every kind of JSON, unicode
edge cases, NUL, surrogates, numbers past 64 bits, duplicate keys, deep and huge
documents. the decoder must return the one event the list lexicon and the v1 envelope
call for, never raise; the consumer must count every rejection by its reason and
never drop its connection over a frame's content.

test_jetstream_frames.py has the sample story, the bad-frame reasons and the first
properties; this file is the adversarial sweep on top of it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from docket import Docket
from hypothesis import given, settings
from hypothesis import strategies as st

from jetstream import (
    Event,
    FrameLimits,
    InvalidReason,
    ListCommit,
    ListDelete,
    Rejected,
    ReplayFaults,
    ReplayServer,
    Skipped,
    SkipReason,
    decode_frame,
)
from jetstream.frames import MAX_TIME_US
from jetstream.syntax import is_cid, is_did, is_rkey, is_tid
from tests.support.jetstream_world import (
    cid,
    did,
    eventually,
    list_commit,
    loopback_config,
    running_consumer,
    tid,
    track_uri,
)
from tests.support.samples import bad_frames

LIMITS = FrameLimits()
OWNER = did(41)
RKEY = tid(9)
REV = tid(10)
RECORD_CID = cid("hostile")
TIME_US = 1_763_700_000_000_000
TRACKS = [track_uri(1), track_uri(2)]
TRACK_URI_RE = re.compile(r"at://did:(plc:[a-z2-7]{24}|web:[a-zA-Z0-9.-]+)/fm\.plyr\.track/.+")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\u200b-\u200f\u202a-\u202e\ufeff]")


def base_frame() -> dict[str, Any]:
    """a valid update of a two-track playlist (a fresh copy each call)."""
    frame: dict[str, Any] = orjson.loads(
        list_commit(
            owner=OWNER,
            rkey=RKEY,
            rev=REV,
            record_cid=RECORD_CID,
            tracks=TRACKS,
            time_us=TIME_US,
        )
    )
    return frame


BASE_EVENT = decode_frame(orjson.dumps(base_frame()), LIMITS)


def deeply_nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


# every JSON type, and the values that break naive validators. no value here is a
# valid DID, rkey, TID, CID, collection, operation or track URI.
HOSTILE_VALUES: dict[str, Any] = {
    "null": None,
    "true": True,
    "false": False,
    "zero": 0,
    "minus_one": -1,
    "one": 1,
    "int64_max": 2**63 - 1,
    "int64_overflow": 2**63,
    "uint64_max": 2**64 - 1,
    "past_uint64": 2**64,  # orjson reads it as a float
    "int64_underflow": -(2**63) - 1,
    "float": 1.5,
    "negative_zero": -0.0,
    "huge_float": 1e308,
    "empty": "",
    "space": " ",
    "nul": "\x00",
    "nul_inside": f"{OWNER}\x00",
    "right_to_left_override": "\u202eeulav",
    "zero_width": "\u200b",
    "byte_order_mark": "\ufeff",
    "emoji": "\U0001f3b5\U0001f3b6",
    "combining": "e\u0301",
    "fullwidth": "\uff46\uff4d\uff0e\uff50\uff4c\uff59\uff52\uff0e\uff4c\uff49\uff53\uff54",
    "cyrillic_lookalike_did": "did:plc:" + "\u0430" * 24,
    "header_injection": "x\r\nSet-Cookie: a=b",
    "path_traversal": "../../etc/passwd",
    "glob": "*",
    "very_long": "x" * 100_000,
    "empty_list": [],
    "list_of_null": [None],
    "empty_object": {},
    "object": {"": None, "$type": "fm.plyr.list"},
    "deep": deeply_nested(200),
}


@dataclass(frozen=True)
class Expect:
    """what a mutated frame must decode to: a change (with these tracks), a skip or a
    rejection."""

    outcome: type[Event]
    reason: SkipReason | InvalidReason | None = None
    track_uris: tuple[str, ...] = tuple(TRACKS)


CHANGE = Expect(ListCommit)
EMPTY_PLAYLIST = Expect(ListCommit, track_uris=())


def reject(reason: InvalidReason) -> Callable[[Any], Expect]:
    return lambda _value: Expect(Rejected, reason)


def _time_us(value: Any) -> Expect:
    if type(value) is int and 0 < value < MAX_TIME_US:
        return CHANGE
    return Expect(Rejected, InvalidReason.BAD_TIME_US)


def _kind(value: Any) -> Expect:
    if isinstance(value, str) and 0 < len(value) <= 64:
        return Expect(Skipped, SkipReason.UNKNOWN_KIND)  # a newer Jetstream's kind
    return Expect(Rejected, InvalidReason.BAD_KIND)


def _commit(value: Any) -> Expect:
    # an object without a collection is judged on its (missing) collection
    if isinstance(value, dict):
        return Expect(Rejected, InvalidReason.BAD_COLLECTION)
    return Expect(Rejected, InvalidReason.BAD_COMMIT)


def _collection(value: Any) -> Expect:
    if isinstance(value, str):
        return Expect(Skipped, SkipReason.OTHER_COLLECTION)
    return Expect(Rejected, InvalidReason.BAD_COLLECTION)


def _record(value: Any) -> Expect:
    # a record with no items is an empty playlist
    return EMPTY_PLAYLIST if isinstance(value, dict) else Expect(Rejected, InvalidReason.BAD_RECORD)


def _list_type(value: Any) -> Expect:
    if value is None or isinstance(value, str):
        return CHANGE  # a missing or unknown list type is a playlist
    return Expect(Rejected, InvalidReason.BAD_LIST_TYPE)


def _name(value: Any) -> Expect:
    if value is None:
        return CHANGE
    if not isinstance(value, str):
        return Expect(Rejected, InvalidReason.BAD_NAME)
    too_long = len(value) > LIMITS.record.max_name_length
    return Expect(Rejected, InvalidReason.NAME_TOO_LONG) if too_long else CHANGE


def _items(value: Any) -> Expect:
    if not isinstance(value, list):
        return Expect(Rejected, InvalidReason.BAD_ITEMS)
    return EMPTY_PLAYLIST if not value else Expect(Rejected, InvalidReason.BAD_ITEM)


def _track_uri(value: Any) -> Expect:
    if isinstance(value, str):
        return Expect(Rejected, InvalidReason.BAD_TRACK_URI)
    return Expect(Rejected, InvalidReason.BAD_ITEM)


def _ignored(_value: Any) -> Expect:
    return CHANGE


# the lexicon and the v1 envelope, field by field: what replacing that field with a
# hostile value must give. paths into lists use the index.
FIELD_RULES: dict[str, Callable[[Any], Expect]] = {
    "did": reject(InvalidReason.BAD_DID),
    "time_us": _time_us,
    "kind": _kind,
    "commit": _commit,
    "commit.collection": _collection,
    "commit.operation": reject(InvalidReason.BAD_OPERATION),
    "commit.rkey": reject(InvalidReason.BAD_RKEY),
    "commit.rev": reject(InvalidReason.BAD_REV),
    "commit.cid": reject(InvalidReason.BAD_CID),
    "commit.record": _record,
    "commit.record.listType": _list_type,
    "commit.record.name": _name,
    "commit.record.items": _items,
    "commit.record.items.1": reject(InvalidReason.BAD_ITEM),
    "commit.record.items.1.subject": reject(InvalidReason.BAD_ITEM),
    "commit.record.items.1.subject.uri": _track_uri,
    # untrusted, unused, dropped: whatever they hold changes nothing.
    "commit.record.items.1.subject.cid": _ignored,
    "commit.record.createdAt": _ignored,
    "commit.record.$type": _ignored,
    "commit.record.unknownField": _ignored,
    "commit.unknownField": _ignored,
    "unknownField": _ignored,
}


def mutated(path: str, value: Any) -> dict[str, Any]:
    """the base frame with the field at `path` set to `value` (created if missing)."""
    frame = base_frame()
    target: Any = frame
    *parents, leaf = path.split(".")
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(leaf)] = value
    else:
        target[leaf] = value
    return frame


def encode(frame: Any) -> bytes:
    # stdlib json writes what orjson refuses to (integers past 64 bits, escaped
    # surrogates), so the decoder meets them as a hostile host would send them.
    return json.dumps(frame).encode()


def assert_is_expected(event: Event, expect: Expect, path: str) -> None:
    if expect.outcome is ListCommit:
        assert isinstance(event, ListCommit), event
        assert isinstance(BASE_EVENT, ListCommit)
        # everything the worker receives is the base change's, untouched.
        assert (event.did, event.rkey, event.rev, event.cid) == (
            BASE_EVENT.did,
            BASE_EVENT.rkey,
            BASE_EVENT.rev,
            BASE_EVENT.cid,
        ), event
        assert event.track_uris == expect.track_uris, event
        return
    assert isinstance(event, Skipped | Rejected), event
    assert (type(event), event.reason) == (expect.outcome, expect.reason), event
    # a frame whose time_us was valid keeps it, so the cursor can move past it.
    assert event.time_us == (None if path == "time_us" else TIME_US), event


@pytest.mark.parametrize("path", list(FIELD_RULES))
def test_every_field_replaced_by_every_hostile_value(path: str) -> None:
    rule = FIELD_RULES[path]
    for name, value in HOSTILE_VALUES.items():
        event = decode_frame(encode(mutated(path, value)), LIMITS)
        try:
            assert_is_expected(event, rule(value), path)
        except AssertionError as failure:
            raise AssertionError(f"{path} = {name}: {failure}") from None


def test_a_field_replaced_by_a_still_valid_value_is_the_new_change() -> None:
    # the other side of the sweep: the validator is not merely refusing everything.
    other = {
        "did": did(42),
        "commit.rkey": "self",
        "commit.rev": tid(11),
        "commit.cid": cid("other"),
        "commit.operation": "create",
        "commit.record.items.1.subject.uri": track_uri(3),
        "time_us": MAX_TIME_US - 1,
    }
    for path, value in other.items():
        event = decode_frame(encode(mutated(path, value)), LIMITS)
        assert isinstance(event, ListCommit), (path, event)
    delete = decode_frame(encode(mutated("commit.operation", "delete")), LIMITS)
    assert isinstance(delete, ListDelete)  # a delete needs no record: its record is ignored


def test_one_bad_item_anywhere_in_a_full_list_rejects_the_whole_record() -> None:
    items = [{"subject": {"uri": track_uri(n), "cid": cid(str(n))}} for n in range(500)]
    full = mutated("commit.record.items", items)
    assert isinstance(decode_frame(encode(full), LIMITS), ListCommit)
    for position in (0, 250, 499):
        for value in ({"subject": {"uri": track_uri(1) + "\x00"}}, {"subject": None}, "x"):
            frame = mutated("commit.record.items", [*items])
            frame["commit"]["record"]["items"][position] = value
            event = decode_frame(encode(frame), LIMITS)
            assert isinstance(event, Rejected), (position, value)
            assert event.reason in (InvalidReason.BAD_ITEM, InvalidReason.BAD_TRACK_URI)
    too_many = mutated("commit.record.items", [*items, items[0]])
    assert decode_frame(encode(too_many), LIMITS) == Rejected(InvalidReason.TOO_MANY_ITEMS, TIME_US)


# --- encodings: surrogates, NUL, byte order marks, numbers ----------------------------------


@pytest.mark.parametrize("path", ["did", "commit.rkey", "commit.record.name", "unknownField"])
def test_a_lone_surrogate_anywhere_is_not_json(path: str) -> None:
    # escaped (as a JSON text may carry it) and raw (as invalid UTF-8 bytes).
    frame = mutated(path, "a\ud800b")
    escaped = json.dumps(frame).encode()
    raw = json.dumps(frame, ensure_ascii=False).encode("utf-8", "surrogatepass")
    for payload in (escaped, raw):
        assert decode_frame(payload, LIMITS) == Rejected(InvalidReason.NOT_JSON, None)


def test_a_paired_surrogate_escape_is_a_character_and_changes_nothing() -> None:
    frame = mutated("commit.record.name", "\U0001f3b5")  # written as \ud83c\udfb5
    assert b"\\ud83c\\udfb5" in encode(frame)
    assert isinstance(decode_frame(encode(frame), LIMITS), ListCommit)


def test_nul_bytes_never_reach_an_identifier() -> None:
    raw_nul = orjson.dumps(base_frame()).replace(b'"kind"', b'"ki\x00nd"')
    assert decode_frame(raw_nul, LIMITS) == Rejected(InvalidReason.NOT_JSON, None)
    for path, reason in (
        ("did", InvalidReason.BAD_DID),
        ("commit.rkey", InvalidReason.BAD_RKEY),
        ("commit.rev", InvalidReason.BAD_REV),
        ("commit.cid", InvalidReason.BAD_CID),
        ("commit.record.items.0.subject.uri", InvalidReason.BAD_TRACK_URI),
    ):
        original = _get(base_frame(), path)
        for poisoned in (
            f"{original}\x00",
            f"\x00{original}",
            original[:5] + "\x00" + original[5:],
        ):
            value = mutated(path, poisoned)
            assert decode_frame(encode(value), LIMITS) == Rejected(reason, TIME_US), poisoned


def _get(frame: dict[str, Any], path: str) -> str:
    target: Any = frame
    for part in path.split("."):
        target = target[int(part)] if isinstance(target, list) else target[part]
    assert isinstance(target, str)
    return target


def test_a_byte_order_mark_or_trailing_bytes_are_not_json() -> None:
    frame = orjson.dumps(base_frame())
    for payload in (b"\xef\xbb\xbf" + frame, frame + b"\x00", frame + b"{}", frame[:-1]):
        assert decode_frame(payload, LIMITS) == Rejected(InvalidReason.NOT_JSON, None)


def test_numbers_past_64_bits_and_non_finite_numbers() -> None:
    text = orjson.dumps(base_frame()).decode()
    for literal in ("18446744073709551616", "1e400", "-1e400", "NaN", "Infinity", "1" * 400):
        payload = text.replace(str(TIME_US), literal).encode()
        event = decode_frame(payload, LIMITS)
        assert isinstance(event, Rejected), literal
        assert event.reason in (InvalidReason.BAD_TIME_US, InvalidReason.NOT_JSON), literal
    # a huge number in a field nobody reads: read as a float by orjson, harmless.
    extra = text.replace('"createdAt"', '"n":1' + "0" * 30 + ',"createdAt"').encode()
    assert isinstance(decode_frame(extra, LIMITS), ListCommit)


# --- duplicate keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "key", "junk"),
    [
        (b"{", "did", "did:plc:attacker"),
        (b"{", "time_us", -1),
        (b'"commit":{', "rev", "zzzzzzzzzzzzz"),
        (b'"commit":{', "operation", "delete"),
        (b'"record":{', "listType", "album"),
        (b'"record":{', "items", "nope"),
    ],
)
def test_a_duplicate_key_is_read_the_way_every_json_reader_reads_it(
    where: bytes, key: str, junk: Any
) -> None:
    """the last occurrence wins, in orjson as in the stdlib: a junk duplicate before the
    real key changes nothing; after it, the frame is judged on the junk."""
    frame = orjson.dumps(base_frame())
    pair = orjson.dumps({key: junk})[1:-1]  # b'"key":value'
    before = frame.replace(where, where + pair + b",", 1)
    assert json.loads(before) == orjson.loads(frame)
    assert decode_frame(before, LIMITS) == BASE_EVENT

    closing = {b"{": b"}", b'"commit":{': b"}}", b'"record":{': b'},"cid"'}[where]
    at = frame.rindex(closing) if where != b"{" else len(frame) - 1
    after = frame[:at] + b"," + pair + frame[at:]
    assert json.loads(after) == orjson.loads(after)  # both readers agree on the winner
    assert decode_frame(after, LIMITS) == decode_frame(json.dumps(json.loads(after)), LIMITS)
    assert decode_frame(after, LIMITS) != BASE_EVENT


# --- size and depth ------------------------------------------------------------------------


def test_nesting_past_the_parsers_limit_is_not_json_and_below_it_is_ignored() -> None:
    text = orjson.dumps(base_frame()).decode()
    for depth, expected in ((500, ListCommit), (2_000, Rejected), (100_000, Rejected)):
        deep = "[" * depth + "]" * depth
        payload = text.replace('"createdAt"', f'"deep":{deep},"createdAt"').encode()
        assert len(payload) <= LIMITS.max_frame_bytes  # refused for depth, not size
        assert isinstance(decode_frame(payload, LIMITS), expected), depth


def test_huge_values_are_bounded_before_they_are_used() -> None:
    assert decode_frame(encode(mutated("did", "did:web:" + "a" * 300)), LIMITS) == Rejected(
        InvalidReason.BAD_DID, TIME_US
    )
    assert decode_frame(encode(mutated("commit.rkey", "a" * 513)), LIMITS) == Rejected(
        InvalidReason.BAD_RKEY, TIME_US
    )
    assert isinstance(decode_frame(encode(mutated("commit.rkey", "a" * 512)), LIMITS), ListCommit)
    assert decode_frame(encode(mutated("commit.cid", "b" + "a" * 200)), LIMITS) == Rejected(
        InvalidReason.BAD_CID, TIME_US
    )
    # a record with many keys and a frame exactly at the bound still decode.
    wide = mutated("commit.record.extra", {f"k{n}": n for n in range(10_000)})
    assert isinstance(decode_frame(encode(wide), LIMITS), ListCommit)
    room = LIMITS.max_frame_bytes - len(encode(mutated("pad", "")))
    exact = encode(mutated("pad", "p" * room))
    assert len(exact) == LIMITS.max_frame_bytes
    assert isinstance(decode_frame(exact, LIMITS), ListCommit)
    over = encode(mutated("pad", "p" * (room + 1)))
    assert decode_frame(over, LIMITS) == Rejected(InvalidReason.FRAME_TOO_LARGE, None)


# --- properties -----------------------------------------------------------------------------

ALL_PATHS = [path for path in FIELD_RULES if not path.endswith("unknownField")] + [
    "commit.record.items.0",
    "commit.record.items.0.subject.uri",
]

hostile_text = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()), max_size=40
) | st.sampled_from([value for value in HOSTILE_VALUES.values() if isinstance(value, str)])

hostile_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | hostile_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4)
    ),
    max_leaves=12,
)


def _identifiers_are_clean(event: Event) -> None:
    """what survives decoding is exactly what the worker, Redis keys and logs may hold."""
    if isinstance(event, ListCommit | ListDelete):
        assert is_did(event.did)
        assert is_rkey(event.rkey)
        assert is_tid(event.rev)
        assert event.playlist_uri == f"at://{event.did}/fm.plyr.list/{event.rkey}"
        assert not CONTROL_CHARACTERS.search(event.playlist_uri)
    if isinstance(event, ListCommit):
        assert is_cid(event.cid)
        assert len(event.track_uris) <= LIMITS.record.max_items
        for uri in event.track_uris:
            assert TRACK_URI_RE.fullmatch(uri), uri
            assert not CONTROL_CHARACTERS.search(uri), uri


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(ALL_PATHS), hostile_json)
def test_any_hostile_value_at_any_path(path: str, value: Any) -> None:
    frame = json.dumps(mutated(path, value)).encode()
    event = decode_frame(frame, LIMITS)
    assert isinstance(event, ListCommit | ListDelete | Skipped | Rejected)
    _identifiers_are_clean(event)
    if path in FIELD_RULES and FIELD_RULES[path] is _ignored:
        # NaN, infinities and lone surrogates are not JSON to orjson; all else is ignored.
        assert event == (BASE_EVENT if _is_json(frame) else Rejected(InvalidReason.NOT_JSON, None))


def _is_json(frame: bytes) -> bool:
    try:
        orjson.loads(frame)
    except orjson.JSONDecodeError:
        return False
    return True


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([b"{", b'"commit":{', b'"record":{', b'"subject":{']),
    st.sampled_from(["did", "kind", "time_us", "rev", "rkey", "cid", "uri", "items", "name"]),
    hostile_json,
)
def test_a_duplicate_key_never_confuses_the_decoder(where: bytes, key: str, junk: Any) -> None:
    frame = orjson.dumps(base_frame())
    pair = json.dumps({key: junk}).encode("utf-8", "surrogatepass")[1:-1]
    payload = frame.replace(where, where + pair + b",", 1)
    event = decode_frame(payload, LIMITS)
    _identifiers_are_clean(event)
    # the junk comes first, so the genuine key (if there is one) wins; an unknown key
    # is ignored. only junk that is not JSON to orjson (NaN, a lone surrogate) refuses.
    assert event == (BASE_EVENT if _is_json(payload) else Rejected(InvalidReason.NOT_JSON, None))


# --- counted by the consumer ----------------------------------------------------------------


def hostile_corpus() -> list[bytes]:
    """the bad-frame samples, every structured mutation, encodings the decoder refuses,
    an oversized frame (past the decoder's bound, far below websockets'), then a
    sentinel commit."""
    frames = [frame.encode() for frame in bad_frames()]
    for path in FIELD_RULES:
        frames.extend(encode(mutated(path, value)) for value in HOSTILE_VALUES.values())
    frames.append(json.dumps(mutated("did", "\ud800")).encode())
    frames.append(b"\xef\xbb\xbf" + orjson.dumps(base_frame()))
    frames.append(encode(mutated("pad", "p" * (LIMITS.max_frame_bytes + 1))))
    frames.append(b"[" * 100_000 + b"]" * 100_000)
    frames.append(
        list_commit(
            owner=did(43),
            rkey=RKEY,
            rev=tid(99),
            record_cid=cid("sentinel"),
            tracks=TRACKS,
            time_us=TIME_US + 1,
        )
    )
    return frames


@pytest.mark.integration
async def test_the_consumer_survives_the_corpus_and_counts_every_frame_by_reason(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    corpus = hostile_corpus()
    events = [decode_frame(frame, LIMITS) for frame in corpus]
    expected_invalid = Counter(e.reason.value for e in events if isinstance(e, Rejected))
    expected_skipped = Counter(e.reason.value for e in events if isinstance(e, Skipped))
    changes = sum(isinstance(e, ListCommit | ListDelete) for e in events)
    assert len(expected_invalid) >= 15  # the corpus reaches nearly every reason

    # a blind host: frames of other collections arrive too, as they may in production.
    faults = ReplayFaults(ignore_wanted_collections=True)
    async with (
        ReplayServer(corpus, faults=faults) as replay,
        running_consumer(loopback_config((replay.url,)), redis_client, docket) as running,
    ):
        await eventually(lambda: running.consumer.stats.frames == len(corpus), within=30)
        stats = running.consumer.stats
        assert dict(stats.invalid) == dict(expected_invalid)
        guard = Counter(
            {
                reason: count
                for reason, count in stats.skipped.items()
                if reason not in expected_skipped
            }
        )
        decoder = Counter(
            {reason: count for reason, count in stats.skipped.items() if reason in expected_skipped}
        )
        assert decoder == expected_skipped
        assert stats.changes == changes
        # every change is enqueued once or recognised as a repeat by the guard.
        assert stats.recomputes + stats.forgets + sum(guard.values()) == changes
        assert set(guard) <= {"duplicate", "stale_rev", "same_cid"}
        assert stats.recomputes >= 2  # the base change and the sentinel
        assert not stats.reconnects  # no frame's content cost the connection
        assert len(replay.connections) == 1
