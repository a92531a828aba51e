"""bench.row_walk against a real inference server: the path a regular row takes."""

from __future__ import annotations

from bench.row_walk import main, walk
from tests.integration.conftest import ManagedProcess


def test_the_readme_row_takes_the_typed_decode_and_one_codec(
    inference_server: ManagedProcess, capsys
) -> None:
    target = f"127.0.0.1:{inference_server.ports['grpc']}"
    functions = walk(target)
    names = [name for _, name in functions]
    assert "RowDecoder.batch" in names
    assert "rows_to_batch" not in names  # the value-by-value path is not taken
    assert ("proto/codec.py", "encode_request") in functions
    assert functions[-1] == ("gateway/metrics.py", "observe_request")  # the last hop
    assert main(["--target", target]) == 0
    assert f"{len(functions)} functions in" in capsys.readouterr().out
