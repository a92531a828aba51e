"""Build ``docs/writeup.pdf`` from ``docs/writeup.md``; ``--check`` also verifies its sections.

Usage: ``python docs/build_pdf.py [--check]``. Figures are referenced relative to
``docs/`` (``figures/roc.png``). The check reads the text back out of the PDF and
fails when any required section heading is absent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pymupdf
from markdown_pdf import MarkdownPdf, Section

DOCS = Path(__file__).resolve().parent
SOURCES = (DOCS / "writeup.md", DOCS / "scaling.md")
"""The write-up, then the full scaling reasoning as its appendix."""
TARGET = DOCS / "writeup.pdf"
REQUIRED_SECTIONS = (
    "Summary",
    "Data and cleaning",
    "Validation strategy",
    "Model selection and tuning",
    "Stacking",
    "API and protocol",
    "Performance",
    "Testing and code quality",
    "Containers",
    "Scaling to enterprise load",
    "Appendix: scaling in depth",
)
CSS = """
body { font-family: serif; font-size: 10pt; }
h1 { font-size: 18pt; } h2 { font-size: 14pt; margin-top: 14pt; } h3 { font-size: 11pt; }
table { border-collapse: collapse; margin: 6pt 0; }
th, td { border: 1px solid #999; padding: 2px 5px; font-size: 9pt; }
code, pre { font-size: 8.5pt; }
img { width: 70%; }
"""


def build(sources: tuple[Path, ...] = SOURCES, target: Path = TARGET) -> Path:
    """Render the Markdown sources (tables and figures included) to one PDF."""
    pdf = MarkdownPdf(toc_level=2, mode="commonmark")
    pdf.m_d.enable("table")
    for source in sources:
        pdf.add_section(Section(source.read_text(), root=str(source.parent)), user_css=CSS)
    pdf.meta["title"] = "Exercise 06 scoring service: end-to-end write-up"
    pdf.save(str(target))
    return target


def missing_sections(pdf_path: Path) -> list[str]:
    """Required section headings that the PDF's text does not contain."""
    with pymupdf.open(pdf_path) as document:
        text = " ".join(page.get_text() for page in document)
    flat = " ".join(text.split())
    return [title for title in REQUIRED_SECTIONS if title not in flat]


def main() -> int:
    """Build the PDF; with --check, return 1 when a section is missing."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="verify the required sections")
    args = parser.parse_args()
    path = build()
    if args.check:
        missing = missing_sections(path)
        if missing:
            print(f"{path} lacks sections: {', '.join(missing)}", file=sys.stderr)
            return 1
        print(f"{path}: all {len(REQUIRED_SECTIONS)} sections present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
