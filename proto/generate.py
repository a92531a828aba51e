"""Generate the Python stubs of ``inference.proto``, or check that the committed ones match.

Usage (from the repository root)::

    python -m proto.generate          # (re)write proto/inference_pb2.py, _pb2.pyi, _pb2_grpc.py
    python -m proto.generate --check  # exit 1 when the committed stubs differ from the .proto

The stubs are produced by grpcio-tools' bundled ``protoc`` with ``-I <repo root>``, so the
gRPC module imports its messages as ``from proto import inference_pb2``. One change is
made afterwards: the messages are registered in a private descriptor pool (``POOL``)
instead of protobuf's default pool, because ``tritonclient.grpc`` registers the same
``inference.*`` names there and two files defining one symbol cannot share a pool.
The ``.pyi`` also gets a header that keeps ruff's linter and formatter off it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

PROTO_DIR = Path(__file__).resolve().parent
ROOT = PROTO_DIR.parent
SOURCE = "proto/inference.proto"
OUTPUTS = ("inference_pb2.py", "inference_pb2.pyi", "inference_pb2_grpc.py")

_DEFAULT_POOL_LINE = "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile("
_PRIVATE_POOL_LINES = (
    "# A private pool (see proto/generate.py): tritonclient uses the same names.\n"
    "POOL = _descriptor_pool.DescriptorPool()\n"
    "DESCRIPTOR = POOL.AddSerializedFile("
)
_PYI_HEADER = "# ruff: noqa\n# fmt: off\n"
_PYI_DESCRIPTOR_LINE = "DESCRIPTOR: _descriptor.FileDescriptor\n"
_PYI_POOL_LINES = (
    "from google.protobuf import descriptor_pool as _descriptor_pool\n\n"
    "POOL: _descriptor_pool.DescriptorPool\n" + _PYI_DESCRIPTOR_LINE
)


def _patch(name: str, text: str) -> str:
    """Apply the private-pool change to one generated file."""
    if name == "inference_pb2.py":
        if text.count(_DEFAULT_POOL_LINE) != 1:
            raise RuntimeError("unexpected protoc output: cannot find the descriptor pool line")
        return text.replace(_DEFAULT_POOL_LINE, _PRIVATE_POOL_LINES)
    if name == "inference_pb2.pyi":
        return _PYI_HEADER + text.replace(_PYI_DESCRIPTOR_LINE, _PYI_POOL_LINES, 1)
    return text


def generate() -> dict[str, str]:
    """Run protoc on the .proto and return each output file's name and (patched) text."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "grpc_tools.protoc",
            f"-I{ROOT}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            str(ROOT / SOURCE),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {SOURCE}")
        out = Path(tmp) / "proto"
        return {name: _patch(name, (out / name).read_text()) for name in OUTPUTS}


def main(argv: list[str] | None = None) -> int:
    """Write the stubs, or with ``--check`` report those that differ; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m proto.generate", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the stubs are stale")
    options = parser.parse_args(argv)
    try:
        generated = generate()
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    if options.check:
        stale = [
            name
            for name, text in generated.items()
            if not (PROTO_DIR / name).exists() or (PROTO_DIR / name).read_text() != text
        ]
        if stale:
            print(
                f"stale generated stubs: {', '.join(stale)}; run `python -m proto.generate`",
                file=sys.stderr,
            )
            return 1
        print("proto stubs are up to date")
        return 0
    for name, text in generated.items():
        (PROTO_DIR / name).write_text(text)
    print(f"wrote {', '.join(OUTPUTS)} from {SOURCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
