"""one logging setup for every process: timestamped lines on stderr, level from LOG_LEVEL."""

from __future__ import annotations

import logging
import os

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str | None = None) -> None:
    chosen = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    logging.basicConfig(level=getattr(logging, chosen, logging.INFO), format=FORMAT)
    # docket logs every task start and end at INFO; ours say what matters
    logging.getLogger("docket").setLevel(logging.WARNING)
