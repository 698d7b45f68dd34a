"""one logging setup for every process: timestamped lines on stderr, level from LOG_LEVEL."""

from __future__ import annotations

import logging
import os

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


def configure_logging(level: str | None = None) -> None:
    chosen = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    logging.basicConfig(level=getattr(logging, chosen, logging.INFO), format=FORMAT)
    # docket logs every task start and end at INFO; ours say what matters
    logging.getLogger("docket").setLevel(logging.WARNING)
    logging.getLogger("docket.dependencies").addFilter(_DELIBERATE_RETRIES)
    # the HTTP clients (httpx2 under turbopuffer) log a line per request at INFO:
    # two per recompute, noise beside the worker's one line per task
    for client in ("httpx", "httpx2"):
        logging.getLogger(client).setLevel(logging.WARNING)
