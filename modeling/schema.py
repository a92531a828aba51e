"""The exercise 06 data contract: columns, their kinds and canonical vocabularies.

This module is the single place where the 100 input columns are described. Every
other part of the project (cleaning, learners, the inference server's metadata and
through it the gateway) derives what it needs from here.
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType


class Kind(StrEnum):
    """How a raw column is written and therefore how it is cleaned."""

    NUMERIC = "numeric"
    """A plain number, sent as a JSON number or a numeric string."""
    MONEY = "money"
    """Accounting money text such as ``"$1,234.56 "`` or ``"($506.82)"``."""
    PERCENT = "percent"
    """Percent text such as ``"-0.02%"``; cleaned to the number before the sign."""
    CATEGORY = "category"
    """Free text naming one of a small canonical vocabulary, misspellings included."""


TARGET = "y"
COLUMNS: tuple[str, ...] = tuple(f"x{i}" for i in range(100))
ALL_COLUMNS: tuple[int, ...] = tuple(range(len(COLUMNS)))
"""Indices of every column of the cleaned matrix (a learner's default input)."""

VOCABULARIES: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "x1": ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
        "x54": (
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ),
        "x82": ("africa", "america", "asia", "europe", "oceania"),
        "x84": (
            "bmw",
            "chevrolet",
            "chrysler",
            "ford",
            "honda",
            "mercedes",
            "nissan",
            "tesla",
            "toyota",
            "volkswagen",
        ),
    }
)
"""Canonical values of each category column, in the order that defines their codes."""

ALIASES: MappingProxyType[str, MappingProxyType[str, str]] = MappingProxyType(
    {
        "x1": MappingProxyType({"tues": "tuesday", "thurs": "thursday", "weds": "wednesday"}),
        "x54": MappingProxyType({"dev": "december", "sept": "september"}),
        "x82": MappingProxyType(
            {"us": "america", "usa": "america", "americas": "america", "eu": "europe"}
        ),
        "x84": MappingProxyType(
            {
                "vw": "volkswagen",
                "chevy": "chevrolet",
                "benz": "mercedes",
                "mercedes-benz": "mercedes",
                "merc": "mercedes",
                "beemer": "bmw",
            }
        ),
    }
)
"""Spellings that neither a prefix nor a close match would recognise (``Dev`` = December)."""

KINDS: MappingProxyType[str, Kind] = MappingProxyType(
    {
        column: (
            Kind.MONEY
            if column == "x12"
            else Kind.PERCENT
            if column == "x79"
            else Kind.CATEGORY
            if column in VOCABULARIES
            else Kind.NUMERIC
        )
        for column in COLUMNS
    }
)
"""The kind of every column, in column order."""

NUMERIC_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if KINDS[c] is Kind.NUMERIC)
"""Columns that arrive as numbers (FP64 on the wire)."""
TEXT_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if KINDS[c] is not Kind.NUMERIC)
"""Columns that arrive as text (BYTES on the wire) and are parsed by cleaning."""
CATEGORY_COLUMNS: tuple[str, ...] = tuple(VOCABULARIES)
"""Columns holding a category code after cleaning."""
CATEGORY_INDEX: tuple[int, ...] = tuple(COLUMNS.index(c) for c in CATEGORY_COLUMNS)
"""Positions of the category columns in :data:`COLUMNS` (and in the cleaned matrix)."""
