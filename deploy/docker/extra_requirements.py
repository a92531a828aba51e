"""Print the pinned requirements of one pyproject extra, one per line.

The Dockerfiles install dependencies in a layer of their own, before the source code is
copied, so that editing code does not re-download LightGBM or CatBoost. The pins stay in
pyproject.toml (the one place they live); this script only reads them. A self-reference
such as ``scoring-service[inference]`` inside an extra is expanded recursively.

Usage: ``python extra_requirements.py [--pyproject PATH] EXTRA``
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

_SELF_REFERENCE = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)\[(?P<extras>[^\]]+)\]$")


def requirements(project: dict, extra: str) -> list[str]:
    """Return the base dependencies plus those of ``extra``, self-references expanded.

    Raises:
        KeyError: if ``extra`` (or an extra it references) is not defined.

    """
    name = project["name"].lower().replace("_", "-")
    extras = project.get("optional-dependencies", {})
    seen_extras: set[str] = set()
    out: list[str] = []

    def visit(current: str) -> None:
        if current in seen_extras:
            return
        seen_extras.add(current)
        for req in extras[current]:
            match = _SELF_REFERENCE.match(req.strip())
            if match and match["name"].lower().replace("_", "-") == name:
                for inner in match["extras"].split(","):
                    visit(inner.strip())
            elif req not in out:
                out.append(req)

    out.extend(project.get("dependencies", []))
    visit(extra)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: print the requirements of one extra."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extra", help="name of the optional-dependencies extra")
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    args = parser.parse_args(argv)
    project = tomllib.loads(args.pyproject.read_text(encoding="utf-8"))["project"]
    try:
        lines = requirements(project, args.extra)
    except KeyError as exc:
        print(f"unknown extra: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
