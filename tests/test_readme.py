"""the README stays true: its settings table names every setting the code reads."""

from __future__ import annotations

from pathlib import Path

from worker.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_setting_is_in_the_readme_table() -> None:
    missing = [
        name.upper() for name in Settings.model_fields if f"| `{name.upper()}` |" not in README
    ]
    assert missing == [], f"README.md's settings table lacks {missing}"


def test_the_readme_gives_the_two_commands() -> None:
    assert "uv run plyr-recs run" in README
    assert "scripts/check" in README
