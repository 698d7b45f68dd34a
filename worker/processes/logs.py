"""one logging setup for every process: one format on stderr (LOG_FORMAT), level LOG_LEVEL.

one handler on the root logger and nothing else: docket's, uvicorn's and our
records all come out in the same format, so a log pipeline reading JSON never
meets a plain line (the API's uvicorn is given no logging config of its own)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class DeliberateRetries(logging.Filter):
    """docket logs every retry at ERROR with its exception, including a task's own
    `retry.after(...)`: the worker's wait for plyr.fm to ingest a playlist it does not
    know yet, which happens for seconds after most creates. that is no fault: the
    line stays, at INFO and without a traceback, so ERROR keeps meaning a fault."""

    def filter(self, record: logging.LogRecord) -> bool:
        # imported here: only a process running docket tasks logs these records,
        # and the API need not load docket for its logging
        from docket.dependencies import ForcedRetry

        if record.exc_info is not None and isinstance(record.exc_info[1], ForcedRetry):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info = record.exc_text = None
            return logging.getLogger().isEnabledFor(logging.INFO)
        return True


_DELIBERATE_RETRIES = DeliberateRetries()


class JsonLines(logging.Formatter):
    """one JSON object per record: time (ISO 8601, UTC), level, logger, message, and
    the exception's traceback as one string when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", *, log_format: str = "text") -> None:
    """the root logger at `level` (LOG_LEVEL, already checked by the settings) in
    `log_format` ('text' or 'json')."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if log_format == "json" else logging.Formatter(FORMAT))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler], force=True)
    # docket logs every task start and end at INFO; ours say what matters
    logging.getLogger("docket").setLevel(logging.WARNING)
    logging.getLogger("docket.dependencies").addFilter(_DELIBERATE_RETRIES)
    # the HTTP clients (httpx2 under turbopuffer) log a line per request at INFO:
    # two per recompute, noise beside the worker's one line per task
    for client in ("httpx", "httpx2"):
        logging.getLogger(client).setLevel(logging.WARNING)
