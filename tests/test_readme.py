"""the README stays true: its settings tables, one per section of the settings, name
every setting of that section with the default the code gives it."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from pydantic.fields import FieldInfo

from worker.settings import SECTIONS, Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
HEADER = "| variable | default | meaning |"


def settings_tables(readme: str) -> dict[str, list[list[str]]]:
    """the rows (variable, default, meaning) of each table of the Settings chapter, by
    the `###` heading above it. a table ends at the first line that is not a row, as
    Markdown renders it (a blank line inside one would end it there)."""
    chapter = readme[readme.index("\n## Settings\n") :]
    chapter = chapter[: chapter.index("\n## ", 1)]
    tables: dict[str, list[list[str]]] = {}
    heading = None
    lines = iter(chapter.splitlines())
    for line in lines:
        if line.startswith("### "):
            heading = line.removeprefix("### ").strip()
        elif line == HEADER:
            assert heading is not None, "a settings table under no ### heading"
            assert heading not in tables, f"two tables under ### {heading}"
            rows = tables[heading] = []
            for row in lines:
                if not row.startswith("|"):
                    break
                if not row.startswith("| ---"):
                    rows.append([cell.strip() for cell in row.strip("|").split(" | ")])
    return tables


def shown(field: FieldInfo) -> str:
    """a default as the README writes it."""
    default = field.default
    if default is None:
        return "unset"
    if default == ():
        return "empty"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, Enum):
        return f"`{default.value}`"
    return f"`{default}`"


def expected_row(name: str, field: FieldInfo) -> str:
    return f"| `{name.upper()}` | {shown(field)} | {field.description} |"


def test_one_table_per_section_in_the_code_order() -> None:
    assert list(settings_tables(README)) == [section.title for section in SECTIONS]


def test_each_section_table_names_exactly_its_settings() -> None:
    tables = settings_tables(README)
    for section in SECTIONS:
        listed = [row[0] for row in tables.get(section.title, [])]
        wanted = [f"`{name.upper()}`" for name in section.model_fields]
        missing = [
            expected_row(name, field)
            for name, field in section.model_fields.items()
            if f"`{name.upper()}`" not in listed
        ]
        assert missing == [], f"README.md, ### {section.title}, lacks:\n" + "\n".join(missing)
        assert sorted(listed) == sorted(wanted), f"### {section.title}: not its settings"


def test_every_default_in_the_readme_is_the_codes() -> None:
    rows = {row[0]: row for rows in settings_tables(README).values() for row in rows}
    wrong = [
        f"{name.upper()}: README {rows[f'`{name.upper()}`'][1]}, code {shown(field)}"
        for name, field in Settings.model_fields.items()
        if f"`{name.upper()}`" in rows and rows[f"`{name.upper()}`"][1] != shown(field)
    ]
    assert wrong == []


def test_the_sections_together_are_the_settings() -> None:
    owners: dict[str, list[str]] = {}
    for section in SECTIONS:
        for name in section.model_fields:
            owners.setdefault(name, []).append(section.__name__)
    assert {name: ones for name, ones in owners.items() if len(ones) > 1} == {}
    assert set(owners) == set(Settings.model_fields)


def test_the_table_parser_sees_a_missing_row_and_a_wrong_default() -> None:
    """the checks above can fail: a README without REDIS_URL's row, or with another
    default for DOCKET_URL, reads differently."""
    title = SECTIONS[0].title
    dropped = "\n".join(line for line in README.splitlines() if "| `REDIS_URL` |" not in line)
    assert "`REDIS_URL`" not in [row[0] for row in settings_tables(dropped)[title]]
    changed = README.replace("| `DOCKET_URL` | `memory://` |", "| `DOCKET_URL` | `redis://` |")
    assert ["`DOCKET_URL`", "`redis://`"] in [row[:2] for row in settings_tables(changed)[title]]


def test_the_readme_gives_the_two_commands() -> None:
    assert "uv run --no-dev plyr-recs run" in README  # the product alone, no dev tools
    assert "scripts/check" in README
