"""the rows of `python -m bench abuse`'s components table, in order, by `--only` name."""

from __future__ import annotations

from typing import Final

from bench.abuse.component_row import Component, ComponentRow
from bench.abuse.rows_editor import editor_page
from bench.abuse.rows_pds import slow_endless_pds
from bench.abuse.rows_reconcile import pds_new_cid
from bench.abuse.rows_stream import track_deletes, v2_dripping_dictionary, v2_seq_backwards

__all__ = ["COMPONENTS", "Component", "ComponentRow"]

COMPONENTS: Final = (
    Component("track_deletes", track_deletes),
    Component("v2_dripping_dictionary", v2_dripping_dictionary),
    Component("v2_seq_backwards", v2_seq_backwards),
    Component("slow_endless_pds", slow_endless_pds),
    Component("pds_new_cid", pds_new_cid),
    Component("editor_page", editor_page),
)
