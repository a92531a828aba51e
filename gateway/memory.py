"""Bounded memory per gateway process: admission by estimated size, memory given back.

A JSON body costs far more once decoded than on the wire (the figures behind the
estimate are in docs/performance.md). A worker admits a request only while the
estimated decoded size of every request it holds fits its budget; beyond it the
client gets 503 with ``Retry-After`` (never a worker killed for memory with every call
in flight lost). While the body is read, the reservation grows with the bytes received
(never with a ``Content-Length`` only promised); once it is read, the estimate from its
counted values replaces it. After a large request, freed memory is handed back to the
operating system (``malloc_trim``), so a burst of large calls does not leave the process
at its peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from types import TracebackType

from gateway.errors import ApiError, unavailable

BYTES_PER_VALUE = 100
"""Decoded size of one JSON value (a string in a row object)."""
BYTES_PER_BODY_BYTE = 6
"""Decoded size per body byte, assumed before the values are counted."""
BYTES_PER_CONTRIBUTION = 400
"""Memory of one listed contribution of an ``/explain`` answer, objects and JSON."""
TRIM_ABOVE_BYTES = 8 * 1024 * 1024
"""Requests estimated larger than this give their memory back to the system when done."""


def estimate(body_bytes: int, values: int) -> int:
    """Estimated memory of a request once decoded and converted."""
    return body_bytes + BYTES_PER_VALUE * values


class _Trimmer:
    """``malloc_trim(0)`` of glibc, or nothing where there is no glibc."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name) if name else None
        self._trim = getattr(libc, "malloc_trim", None)

    def __call__(self) -> None:
        if self._trim is not None:
            self._trim(0)


class Budget:
    """The memory a process may hold for requests in flight (thread-safe)."""

    def __init__(self, limit_bytes: int, retry_after_s: int) -> None:
        """``limit_bytes`` of estimated request memory; 503s carry ``retry_after_s``."""
        self.limit = limit_bytes
        self._retry_after_s = retry_after_s
        self._lock = threading.Lock()
        self._held = 0
        self._large_in_flight = 0
        self._trim = _Trimmer()

    def reserve(self, size: int) -> Reservation:
        """Reserve ``size`` bytes for a request (use as a context manager).

        Raises:
            ApiError: 503 with ``Retry-After`` when the budget cannot hold it now, 413
                when it never could.

        """
        reservation = Reservation(self)
        reservation.resize(size)
        return reservation

    def _take(self, size: int) -> None:
        with self._lock:
            if self._held + size > self.limit:
                raise self._full()
            self._held += size

    def _give_back(self, size: int, large: bool) -> None:
        with self._lock:
            self._held -= size
            if large:
                self._large_in_flight -= 1
            trim = large and self._large_in_flight == 0
        if trim:
            self._trim()

    def _mark_large(self) -> None:
        with self._lock:
            self._large_in_flight += 1

    def _full(self) -> ApiError:
        return unavailable(
            "gateway busy: too much request data in flight, retry later", self._retry_after_s
        )


class Reservation:
    """Memory reserved for one request; released when the ``with`` block ends."""

    def __init__(self, budget: Budget) -> None:
        self._budget = budget
        self.size = 0
        self._large = False

    def resize(self, size: int) -> None:
        """Hold ``size`` bytes from now on (503 if the budget cannot now, 413 if it never can)."""
        if size > self._budget.limit:
            raise ApiError(
                413, f"request too large for this gateway ({self._budget.limit} bytes budget)"
            )
        extra = size - self.size
        if extra > 0:
            self._budget._take(extra)
        elif extra < 0:
            self._budget._give_back(-extra, large=False)
        self.size = size
        if self.size > TRIM_ABOVE_BYTES and not self._large:
            self._large = True
            self._budget._mark_large()

    def __enter__(self) -> Reservation:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._budget._give_back(self.size, self._large)
        self.size, self._large = 0, False
