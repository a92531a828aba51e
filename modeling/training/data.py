"""Reading the user's CSV files, with errors that say what is wrong instead of a traceback."""

from __future__ import annotations

import codecs
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modeling.schema import COLUMNS, TARGET


class DataError(Exception):
    """An input file cannot be used: unreadable, missing columns, bad target."""


@dataclass(frozen=True)
class Table:
    """Raw columns of a CSV file, ready for :func:`modeling.cleaning.clean`.

    Attributes:
        columns: column name to raw values (numbers, strings or NaN).
        n_rows: number of data rows.
        sha256: digest of the file's bytes, recorded in the bundle manifest.
        target: the 0/1 ``y`` column when the file has one, else None.

    """

    columns: dict[str, NDArray[Any]]
    n_rows: int
    sha256: str
    target: NDArray[np.int_] | None = None


_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def check_encoding(path: Path, raw: bytes) -> None:
    """Refuse, naming it, a file that is not UTF-8 (or ASCII) text.

    Raises:
        DataError: for a UTF-16/32 byte-order mark, or the first byte that is not UTF-8.

    """
    for mark, name in _BYTE_ORDER_MARKS:
        if raw.startswith(mark):
            raise DataError(f"{path} is {name} text; save it as UTF-8 CSV and try again")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path} is not UTF-8 text (byte 0x{raw[error.start]:02x} at offset "
            f"{error.start}); save it as UTF-8 CSV and try again"
        ) from error


def read_csv(path: Path, require_target: bool = False) -> Table:
    """Read an exercise 06 CSV file.

    Raises:
        DataError: when the file cannot be read or parsed, lacks any of x0..x99, or
            (with ``require_target``) has no ``y`` column or a ``y`` that is not 0/1.

    """
    import pandas as pd  # training and batch-scoring dependency only

    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror or error}") from error
    check_encoding(path, raw)
    try:
        frame = pd.read_csv(io.BytesIO(raw), low_memory=False, encoding="utf-8-sig")
    except ValueError as error:
        raise DataError(f"cannot parse {path} as CSV: {error}") from error
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise DataError(f"{path} lacks {len(missing)} of the columns x0..x99: {shown}")
    target = None
    if require_target:
        if TARGET not in frame.columns:
            raise DataError(f"{path} has no target column '{TARGET}': is this the test file?")
        values = pd.to_numeric(frame[TARGET], errors="coerce")
        if values.isna().any() or not values.isin([0, 1]).all():
            raise DataError(f"{path}: column '{TARGET}' must hold only 0 and 1")
        if values.nunique() < 2:
            raise DataError(f"{path}: column '{TARGET}' holds a single class")
        target = values.to_numpy(dtype=np.int_)
    return Table(
        columns={c: frame[c].to_numpy() for c in COLUMNS},
        n_rows=len(frame),
        sha256=hashlib.sha256(raw).hexdigest(),
        target=target,
    )
