"""the README stays true: its settings table names every setting the code reads."""

from __future__ import annotations

from pathlib import Path

from worker.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def settings_table() -> str:
    """the settings table as Markdown renders it: from its header to the first line that
    is not a row (a blank line inside it would end the table there)."""
    start = README.index("| variable | default | meaning |")
    rows = []
    for line in README[start:].splitlines():
        if not line.startswith("|"):
            break
        rows.append(line)
    return "\n".join(rows)


def test_every_setting_is_in_the_readme_table() -> None:
    table = settings_table()
    missing = [
        name.upper() for name in Settings.model_fields if f"| `{name.upper()}` |" not in table
    ]
    assert missing == [], f"README.md's settings table lacks {missing}"


def test_the_readme_gives_the_two_commands() -> None:
    assert "uv run --no-dev plyr-recs run" in README  # the product alone, no dev tools
    assert "scripts/check" in README
