"""Jetstream v1 frames and `fm.plyr.list` records, written the way the network writes them.

the shapes follow `samples/jetstream-v1.jsonl` exactly (key order included):
a commit is `{did, time_us, kind, commit: {rev, operation, collection, rkey,
record, cid}}`, a delete has no record and no cid, identity and account
events carry their own object. the malformed frames are the kinds of damage
the consumer must count and survive (`samples/jetstream-v1-bad.txt`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Final

import orjson

from engine.types import MAX_LIST_ITEMS
from jetstream.syntax import SORTABLE_BASE32
from jetstream.syntax import tid as tid_at
from worker.demo.identifiers import cid_for_bytes, record_cid

LIST_COLLECTION: Final = "fm.plyr.list"
LIST_TYPE: Final = "fm.plyr.list"


def iso_time(time_us: int) -> str:
    """unix microseconds as an atproto datetime: `2026-01-15T00:00:01.500Z`."""
    moment = datetime.fromtimestamp(time_us / 1_000_000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def moment(time_us: int) -> datetime:
    return datetime.fromtimestamp(time_us / 1_000_000, UTC)


def list_record(
    *,
    name: str,
    list_type: str,
    items: Sequence[tuple[str, str]],
    created_at: str,
    updated_at: str | None = None,
) -> dict[str, object]:
    """an `fm.plyr.list` record; `items` are (track uri, track record cid) pairs."""
    record: dict[str, object] = {
        "$type": LIST_TYPE,
        "name": name,
        "listType": list_type,
        "items": [{"subject": {"uri": uri, "cid": cid}} for uri, cid in items],
        "createdAt": created_at,
    }
    if updated_at is not None:
        record["updatedAt"] = updated_at
    return record


def commit_frame(
    *,
    did: str,
    time_us: int,
    rev: str,
    operation: str,
    collection: str,
    rkey: str,
    record: dict[str, object] | None,
) -> tuple[str, str | None]:
    """a commit frame and the record's CID (None for a delete, which carries neither)."""
    commit: dict[str, object] = {
        "rev": rev,
        "operation": operation,
        "collection": collection,
        "rkey": rkey,
    }
    cid = None
    if record is not None:
        cid = record_cid(record)
        commit["record"] = record
        commit["cid"] = cid
    frame = {"did": did, "time_us": time_us, "kind": "commit", "commit": commit}
    return orjson.dumps(frame).decode(), cid


def with_time(frame: str, time_us: int) -> str:
    """the same event delivered again later: only the envelope's `time_us` changes."""
    event = orjson.loads(frame)
    event["time_us"] = time_us
    return orjson.dumps(event).decode()


def identity_frame(*, did: str, handle: str, time_us: int, seq: int) -> str:
    identity = {"did": did, "handle": handle, "seq": seq, "time": iso_time(time_us)}
    return orjson.dumps(
        {"did": did, "time_us": time_us, "kind": "identity", "identity": identity}
    ).decode()


def account_frame(*, did: str, active: bool, time_us: int, seq: int) -> str:
    account: dict[str, object] = {"active": active, "did": did, "seq": seq}
    if not active:
        account["status"] = "deactivated"
    account["time"] = iso_time(time_us)
    return orjson.dumps(
        {"did": did, "time_us": time_us, "kind": "account", "account": account}
    ).decode()


def malformed_frames(
    *, did: str, time_us: int, rev: str, rkey: str, track: tuple[str, str]
) -> list[tuple[str, str]]:
    """(what is wrong, frame) for each kind of damage; the ones that keep a valid
    envelope carry `time_us` so the stream's clock still only moves forward.

    every list commit here uses `rkey`, a key no real playlist of the session
    has, so none of them could touch the expected final state even if accepted.
    """
    created_at = iso_time(time_us)

    def list_commit(record: object, *, commit_rev: str = rev, cid: str | None = None) -> str:
        commit = {
            "rev": commit_rev,
            "operation": "create",
            "collection": LIST_COLLECTION,
            "rkey": rkey,
            "record": record,
            "cid": cid if cid is not None else record_cid({"record": record}),
        }
        envelope = {"did": did, "time_us": time_us, "kind": "commit", "commit": commit}
        return orjson.dumps(envelope).decode()

    def playlist(items: object) -> dict[str, object]:
        return {
            "$type": LIST_TYPE,
            "name": "broken",
            "listType": "playlist",
            "items": items,
            "createdAt": created_at,
        }

    uri, cid = track
    item = {"subject": {"uri": uri, "cid": cid}}
    too_many = [item] * (MAX_LIST_ITEMS + 1)
    bad_uri = [{"subject": {"uri": "https://tracks.example/not-a-record", "cid": cid}}]
    return [
        ("truncated JSON", f'{{"did": "{did}", "time_us": {time_us}, "kind": "comm'),
        ("not an object", "[1, 2, 3]"),
        ("no time_us", '{"kind": "commit"}'),
        ("time_us is not a number", orjson.dumps({"did": did, "time_us": "soon"}).decode()),
        ("record is not an object", list_commit("nope", cid="bafy")),
        ("items is not a list", list_commit(playlist("many"))),
        ("a track URI that is not a track record", list_commit(playlist(bad_uri))),
        (f"{MAX_LIST_ITEMS + 1} items", list_commit(playlist(too_many))),
        ("rev is not a TID", list_commit(playlist([item]), commit_rev="not-a-tid")),
    ]


# numbered builders: the tests and the load benchmarks name accounts, records and
# revisions by integers, so a frame's identifiers say which one it is.
TRACK_DID: Final = "did:plc:x66s2o4a2qpoastvjtboqbjb"
# keeps a numbered TID's first character in the allowed range
_TID_OFFSET: Final = 1 << 50


def tid(n: int) -> str:
    """a valid TID that sorts like `n`."""
    value = _TID_OFFSET + n
    return tid_at(value >> 10, value & 1023)


def cid(seed: str) -> str:
    """a well-formed CIDv1, distinct per seed."""
    return cid_for_bytes(seed.encode())


def did(n: int) -> str:
    """the did:plc numbered `n`."""
    return "did:plc:" + "".join(SORTABLE_BASE32[(n >> (5 * i)) & 31] for i in range(24))


def track_uri(n: int) -> str:
    return f"at://{TRACK_DID}/fm.plyr.track/{tid(n)}"


def list_commit(
    *,
    owner: str,
    rkey: str,
    rev: str,
    record_cid: str,
    tracks: Iterable[str],
    time_us: int,
    list_type: str = "playlist",
    operation: str = "update",
) -> bytes:
    """a list commit whose record holds `tracks` (its CID given, not derived)."""
    record = list_record(
        name=f"list {rkey}",
        list_type=list_type,
        items=[(uri, cid(uri)) for uri in tracks],
        created_at="2025-11-21T04:40:00.000Z",
    )
    commit = {
        "rev": rev,
        "operation": operation,
        "collection": LIST_COLLECTION,
        "rkey": rkey,
        "record": record,
        "cid": record_cid,
    }
    return orjson.dumps({"did": owner, "time_us": time_us, "kind": "commit", "commit": commit})


def list_delete(*, owner: str, rkey: str, rev: str, time_us: int) -> bytes:
    frame, _ = commit_frame(
        did=owner,
        time_us=time_us,
        rev=rev,
        operation="delete",
        collection=LIST_COLLECTION,
        rkey=rkey,
        record=None,
    )
    return frame.encode()


def identity(*, owner: str, time_us: int) -> bytes:
    return orjson.dumps(
        {"did": owner, "time_us": time_us, "kind": "identity", "identity": {"did": owner}}
    )
