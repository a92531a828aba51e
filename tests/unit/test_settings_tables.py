"""The READMEs' settings tables are the settings classes, row for row.

Each table sits between ``<!-- settings: CLASS -->`` and ``<!-- end settings -->``; a
variable added, renamed or removed, a default or a description changed, and the table
no longer matches: the failure prints the table to paste.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from gateway.config import Config
from inference.config import Settings, flag

REPO = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


def shown(field: FieldInfo) -> str:
    """A default as the README shows it."""
    if field.default_factory is not None:
        doc = (field.default_factory.__doc__ or "").strip().splitlines()[0]
        return doc[0].lower() + doc[1:].rstrip(".")
    value = field.default
    if value is None or value == "" or value is PydanticUndefined:
        return "empty"
    if isinstance(value, bool):
        return "on" if value else "off"
    return number(value) if isinstance(value, int | float) else f"`{value}`"


def number(value: float) -> str:
    """48 MiB, 20,000, 1024, 0.5."""
    if isinstance(value, float):
        return f"{value:g}"
    if value >= MIB and value % MIB == 0:
        return f"{value // MIB} MiB"
    return f"{value:,}" if value >= 10_000 else str(value)


def table(settings: type[BaseSettings], flags: bool) -> str:
    """The markdown table of ``settings``: variable (and flag), default, meaning."""
    columns = ["flag"] * flags + ["variable", "default", "meaning"]
    lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for name, field in settings.model_fields.items():
        cells = [f"`{field.validation_alias}`", shown(field), str(field.description)]
        if flags:
            cells.insert(0, f"`{flag(name)}`")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def documented(readme: Path, settings: type[BaseSettings]) -> str:
    """The table in ``readme`` between the markers naming ``settings``."""
    marker = f"<!-- settings: {settings.__module__}.{settings.__name__} -->"
    pattern = re.escape(marker) + r"\n(.*?)\n<!-- end settings -->"
    match = re.search(pattern, readme.read_text(), re.S)
    assert match, f"{readme.name} has no {marker} ... <!-- end settings --> block"
    return match.group(1).strip()


@pytest.mark.parametrize(
    ("readme", "settings", "flags"),
    [("gateway/README.md", Config, False), ("README.md", Settings, True)],
)
def test_the_readme_table_is_the_settings_class(
    readme: str, settings: type[BaseSettings], flags: bool
) -> None:
    expected = table(settings, flags)
    assert documented(REPO / readme, settings) == expected, f"paste into {readme}:\n{expected}"


def test_defaults_are_shown_as_people_write_them() -> None:
    assert shown(Config.model_fields["max_body_bytes"]) == "48 MiB"
    assert shown(Config.model_fields["max_rows"]) == "20,000"
    assert shown(Config.model_fields["metrics_open"]) == "on"
    assert shown(Config.model_fields["workers"]).startswith("one gunicorn worker per two")
    assert shown(Settings.model_fields["max_queue_delay_ms"]) == "0.5"
