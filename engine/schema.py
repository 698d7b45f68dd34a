"""the part of plyr.fm's database this service reads, as the project's own file.

`plyr.sql` beside this module is a contract the service depends on: the
PostgreSQL catalog adapter queries exactly these tables and columns, and the
tests and benchmarks create their databases from it. plyr.fm's backend owns the
real schema; when it changes a column read here, this file changes with it.
"""

from __future__ import annotations

from pathlib import Path

SCHEMA_PATH = Path(__file__).with_name("plyr.sql")


def schema_sql() -> str:
    """the DDL that creates the tables this service reads (idempotent)."""
    return SCHEMA_PATH.read_text()
