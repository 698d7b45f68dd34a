"""`python -m bench pds`: the CPU one getRecord answer costs to decode and check, through
the atproto SDK's models (the path before issue 23) beside the path now, in the same run.

the answers, built here as a PDS would send them:
- a valid 500-item playlist (the largest valid list), which both paths must read
  identically (same track URIs, same CID: the run fails otherwise);
- the hostile ~0.8 MB answer of issue 23, finding 1 (7,200 plausible items);
- the costliest shapes of the largest answer the new path will parse at all
  (`MAX_RECORD_BYTES`): items as empty lists (the most objects per byte), as
  numbers, as short strings, a record of tens of thousands of fields (all
  refused by the structure count now), and the costliest shapes found that pass
  the count; the old path is timed on them too.

"old" is what `PdsRecords.fetch` did with a body: the SDK's JSON parse
(pydantic_core), `get_response_model` into `ComAtprotoRepoGetRecord.Response`,
`DotDict.to_dict` of the record, then the consumer's validator. "new" is the
byte bound then `worker.identity.pds_decode.decode_record` (count the
structure, orjson, the same validator). the network and the server are left
out: both paths read the same bytes. CPU time (time.process_time), median and
best of seven rounds (`bench.engine.cpu_seconds_per_run`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import orjson
from atproto_client import models
from atproto_client.exceptions import ModelError
from atproto_client.models.utils import get_response_model
from atproto_client.request import Response
from pydantic_core import from_json
from rich.console import Console
from rich.table import Table

from bench.engine import cpu_seconds_per_run
from jetstream.records import RecordLimits, playlist_track_uris
from jetstream.syntax import is_cid
from worker.demo.wire import did, track_uri
from worker.identity.pds import MAX_RECORD_BYTES, ListRecord, RecordRejected
from worker.identity.pds_decode import decode_record

ROUND_SECONDS = 0.2
LIMITS = RecordLimits()
RECORD_URI = f"at://{did(1)}/fm.plyr.list/3m64hnzv42222"
CID = "bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"

Outcome = ListRecord | str  # the record, or the word it was refused with
FIELDS = {f"k{i}": 0 for i in range(5_000)}


@dataclass(frozen=True, slots=True)
class Answer:
    name: str
    body: bytes


def answer(value: object) -> bytes:
    return orjson.dumps({"uri": RECORD_URI, "cid": CID, "value": value})


def record(items: list[object], **fields: object) -> dict[str, object]:
    return {"$type": "fm.plyr.list", "name": "a playlist", "listType": "playlist", **fields} | {
        "items": items
    }


def item(n: int) -> dict[str, object]:
    return {"subject": {"uri": track_uri(n), "cid": "bafyreitrack"}}


def padded(make: Callable[[int], bytes], size: int) -> bytes:
    """the largest `make(count)` at most `size` bytes long."""
    low, high = 1, size
    while low < high:
        middle = (low + high + 1) // 2
        if len(make(middle)) <= size:
            low = middle
        else:
            high = middle - 1
    return make(low)


def answers() -> list[Answer]:
    size = MAX_RECORD_BYTES
    return [
        Answer("valid, 500 items", answer(record([item(n) for n in range(500)]))),
        Answer("hostile, 7,200 items", answer(record([item(n % 500) for n in range(7_200)]))),
        Answer("largest: [] items", padded(lambda n: answer(record([[]] * n)), size)),
        Answer("largest: number items", padded(lambda n: answer(record([0] * n)), size)),
        Answer("largest: short strings", padded(lambda n: answer(record(["ab"] * n)), size)),
        Answer(
            "largest: many fields",
            padded(lambda n: answer({f"k{i}": 0 for i in range(n)} | record([])), size),
        ),
        # the costliest found that pass the structure count: as much structure as it
        # allows, then the rest of the bytes as one string
        Answer(
            "largest: 3,600 [] + padding",
            padded(lambda n: answer(record([[]] * 3_600, name="x" * n)), size),
        ),
        Answer(
            "largest: 5,000 fields + padding",
            padded(lambda n: answer(FIELDS | record([], pad="x" * n)), size),
        ),
    ]


def old_path(body: bytes) -> Outcome:
    """what the SDK did with a 200 `application/json` getRecord body, then our check."""
    try:
        response = Response(success=True, status_code=200, content=from_json(body), headers={})
        parsed = get_response_model(response, models.ComAtprotoRepoGetRecord.Response)
    except (ModelError, ValueError):
        return "bad_response"
    value = parsed.value
    to_dict = getattr(value, "to_dict", None)
    track_uris = playlist_track_uris(to_dict() if callable(to_dict) else value, LIMITS)
    if not isinstance(track_uris, tuple):
        return str(track_uris)
    cid = parsed.cid
    return ListRecord(track_uris, cid if isinstance(cid, str) and is_cid(cid) else None)


def new_path(body: bytes) -> Outcome:
    """the byte bound (`PdsRecords` counts the body as it streams), then the decode."""
    if len(body) > MAX_RECORD_BYTES:
        return "too_large"
    try:
        return decode_record(body, LIMITS)
    except RecordRejected as rejected:
        return rejected.reason


def word(outcome: Outcome) -> str:
    return f"{len(outcome.track_uris)} tracks" if isinstance(outcome, ListRecord) else outcome


def main() -> int:
    console = Console(width=160)
    table = Table(title="CPU per getRecord answer: the SDK's models (old) beside now (new)")
    columns = ("answer", "bytes", "old: outcome", "old ms", "new: outcome", "new ms", "old/new")
    for column in (*columns, "orjson alone ms"):
        table.add_column(column, justify="left" if "outcome" in column else "right")
    cases = answers()
    # the valid playlist must read the same through both, tracks and CID (a record of
    # 40,000 fields the validator would pass is refused now: that is the point)
    failed = old_path(cases[0].body) != new_path(cases[0].body)
    for case in cases:
        old, new = old_path(case.body), new_path(case.body)
        old_cpu, old_best = cpu_seconds_per_run(partial(old_path, case.body), ROUND_SECONDS)
        new_cpu, new_best = cpu_seconds_per_run(partial(new_path, case.body), ROUND_SECONDS)
        # what the structure count saves: orjson on the same body, no bound before it
        parse_cpu, _ = cpu_seconds_per_run(partial(orjson.loads, case.body), ROUND_SECONDS)
        table.add_row(
            case.name,
            f"{len(case.body):,}",
            word(old),
            f"{old_cpu * 1e3:,.2f} (best {old_best * 1e3:,.2f})",
            word(new),
            f"{new_cpu * 1e3:,.3f} (best {new_best * 1e3:,.3f})",
            f"{old_cpu / new_cpu:,.1f}x" if new_cpu > 0 else "-",
            f"{parse_cpu * 1e3:,.2f}",
        )
    console.print(table)
    if failed:
        console.print("[red]the valid record read differently through the two paths[/red]")
    return 1 if failed else 0
