"""The stack against its own learners and default XGBoost, LightGBM and CatBoost.

``python -m bench.model_compare --rows 20000 --report docs/model_report.md`` builds each
set of :mod:`bench.synthetic_sets`, cross-validates everything on the same folds with
the ``default`` profile (the one cross-validation of training) and writes a Markdown
table of out-of-fold AUCs into the report, between two marker comments (the rest of
the report, written by ``python -m modeling evaluate``, is left as it is).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench.synthetic_sets import RECIPES, synthetic_set
from modeling.training.evaluation import summarise_auc
from modeling.training.fit import training_set
from modeling.training.params import load_params
from modeling.training.report import columns_per_fold, compare

BEGIN = "<!-- synthetic sets: begin (python -m bench.model_compare) -->"
END = "<!-- synthetic sets: end -->"


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(names: list[str], rows: int, seed: int, profile: str = "default") -> list[str]:
    """Cross-validate every model on every set; return the Markdown section."""
    params = load_params(profile)
    results: dict[str, dict[str, str]] = {}
    notes = []
    for name in names:
        started = time.perf_counter()
        columns, target = synthetic_set(name, rows, seed=seed)
        data = training_set(columns, target, {"synthetic_set": name})
        oof, scores = compare(data, params, seed=seed, progress=_progress)
        best_peer = max(
            (s for s in scores if s.startswith("default")),
            key=lambda s: summarise_auc(target, scores[s], oof.folds).auc,
        )
        for model, score in scores.items():
            m = summarise_auc(target, score, oof.folds)
            results.setdefault(model, {})[name] = f"{m.auc:.4f} [{m.low:.4f}, {m.high:.4f}]"
        recipe = RECIPES[name]
        notes.append(
            f"set {name}: {recipe.informative} informative + {recipe.redundant} redundant "
            f"columns, {recipe.clusters} clusters per class, separation {recipe.separation}; "
            f"{rows:,} rows, {int(target.sum()):,} positives; columns kept per fold "
            f"{columns_per_fold(oof)}; stack fit time over folds "
            f"{sum(oof.seconds.values()):.0f} s, whole comparison "
            f"{time.perf_counter() - started:.0f} s; best peer: {best_peer}"
        )
        _progress(notes[-1])
    header = "| model | " + " | ".join(f"set {n}" for n in names) + " |"
    rows = [
        f"| {model} | " + " | ".join(row[n] for n in names) + " |" for model, row in results.items()
    ]
    return [
        BEGIN,
        "",
        "## Synthetic sets the model was never tuned on",
        "",
        "Built by `bench/synthetic_sets.py` (scikit-learn `make_classification`, exercise "
        "schema and quirks, one signal column behind the percent column x79), "
        f"{params['folds']}-fold out-of-fold AUC [95% interval], all models on the same "
        f"folds (seed {seed}):",
        "",
        header,
        "|---|" + "---|" * len(names),
        *rows,
        "",
        *(f"- {note}" for note in notes),
        "",
        END,
    ]


def insert(report: Path, section: list[str]) -> None:
    """Replace the marked section of ``report`` (or append it)."""
    text = report.read_text() if report.exists() else ""
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + text[text.index(END) + len(END) :].lstrip("\n")
    report.write_text(text.rstrip("\n") + "\n\n" + "\n".join(section) + "\n")


def main() -> int:
    """Parse arguments, run the comparison, write the section."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", type=Path, default=Path("docs/model_report.md"))
    parser.add_argument("--preset", default="default", help="parameter preset of params.json")
    args = parser.parse_args()
    insert(args.report, run(args.sets, args.rows, args.seed, args.preset))
    print(f"section written into {args.report}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
