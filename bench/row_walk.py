"""The walk of one row through the gateway: every project function a ``/predict`` call runs.

``python -m bench.row_walk --target localhost:8001`` builds the gateway app in this
process against a running inference server, sends the README's curl row once to warm
it, then once more under :func:`sys.setprofile`, and prints each function of
``gateway/`` and ``proto/`` the second call entered, in the order first entered, with
its module, and the counts. It measures code paths, not time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from gateway.app import create_app
from gateway.config import Config

ROW = b'{"x0": "9.521496806", "x1": "wed", "x12": "$296.43 ", "x54": "Jun", "x99": "-1.926577376"}'
"""The README's curl example."""
ROOT = Path(__file__).resolve().parents[1]
_COMPREHENSIONS = ("<listcomp>", "<setcomp>", "<dictcomp>", "<genexpr>")
PACKAGES = tuple(str(ROOT / package) + "/" for package in ("gateway", "proto"))


def walk(target: str, body: bytes = ROW) -> list[tuple[str, str]]:
    """``(module, function)`` of every project function one call enters, first entry order."""
    client = create_app(Config(inference_target=target)).test_client()
    warm = client.post("/predict", data=body, content_type="application/json")
    if warm.status_code != 200:
        raise SystemExit(f"the gateway answered {warm.status_code}: {warm.get_data(as_text=True)}")
    seen: dict[tuple[str, str], None] = {}

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(PACKAGES):
            module = Path(frame.f_code.co_filename).relative_to(ROOT).as_posix()
            seen.setdefault((module, frame.f_code.co_qualname), None)

    sys.setprofile(profile)
    try:
        client.post("/predict", data=body, content_type="application/json")
    finally:
        sys.setprofile(None)
    return list(seen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="localhost:8001", help="inference server gRPC target")
    args = parser.parse_args(argv)
    functions = walk(args.target)
    for module, name in functions:
        print(f"- `{module}` `{name}`")
    modules = {module for module, _ in functions}
    named = [name for _, name in functions if not name.endswith(_COMPREHENSIONS)]
    print(
        f"\n{len(functions)} functions in {len(modules)} modules "
        f"({len(named)} without comprehensions)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
