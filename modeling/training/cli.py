"""Command line: ``python -m modeling {train,evaluate,predict,tune}``."""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from modeling.bundle import BundleError
from modeling.predictor import Predictor
from modeling.repository import Repository
from modeling.training.data import DataError, read_csv
from modeling.training.fit import TrainingSet, train, training_set
from modeling.training.params import PRESETS, load_params
from modeling.training.synthetic import synthetic_table

DEMO_NOTICE = (
    "*** DEMO MODEL: trained on synthetic rows, not on your data. "
    "Pass --train path/to/exercise_06_train.csv for a real model. ***"
)


class Reporter:
    """Prints progress lines with the elapsed time to stderr."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self, message: str) -> None:
        """Print one progress line."""
        print(
            f"[{time.perf_counter() - self.started:7.1f}s] {message}", file=sys.stderr, flush=True
        )


def _load_training(args: argparse.Namespace) -> tuple[TrainingSet, dict[str, Any], bool]:
    """Read --train or make --synthetic rows; return them, the parameters and the demo flag.

    The parameter preset is --preset, else ``quick`` for a synthetic demo and
    ``default`` for real data; --folds overrides its fold count.
    """
    if args.train is not None:
        table = read_csv(args.train, require_target=True)
        target = cast("NDArray[np.int_]", table.target)  # require_target guarantees it
        source = {"file": args.train.name, "sha256": table.sha256}
        data, demo = training_set(table.columns, target, source), False
    else:
        columns, target = synthetic_table(args.synthetic, seed=args.seed)
        data, demo = training_set(columns, target, {"synthetic_rows": args.synthetic}), True
    params = load_params(args.preset or ("quick" if demo else "default"))
    if args.folds:
        params["folds"] = args.folds
    return data, params, demo


def cmd_train(args: argparse.Namespace) -> int:
    """Train the stack and write a bundle."""
    report = Reporter()
    data, params, demo = _load_training(args)
    if demo:
        print(DEMO_NOTICE, file=sys.stderr)
    report(
        f"training on {len(data.target)} rows, {data.features.shape[1]} features, "
        f"{params['folds']}-fold out-of-fold stacking"
    )
    out: Path = args.out
    identity: dict[str, str] = {}
    if args.repository is not None:
        repository = Repository(args.repository)
        version = repository.next_version()
        out = repository.root / f".training-{version}-{os.getpid()}"
        identity = {"name": repository.name, "version": version}
    stack, manifest = train(
        data, params, out, progress=report, seed=args.seed, demo=demo, identity=identity
    )
    if args.repository is not None:
        out = _publish(out, repository.path(identity["version"]))
        report(f"version {identity['version']} of model {identity['name']!r}")
    for name, metrics in manifest["cv_metrics"].items():
        report(
            f"CV AUC {name:9s} {metrics['auc']:.4f} [{metrics['low']:.4f}, {metrics['high']:.4f}]"
        )
    report(f"bundle written to {out} (threshold {stack.threshold:.3f})")
    for warning in manifest["warnings"]:
        print(f"*** WARNING: {warning} ***", file=sys.stderr)
    if demo:
        print(DEMO_NOTICE, file=sys.stderr)
    return 0


def _publish(staged: Path, final: Path) -> Path:
    """Move a finished bundle to its version's directory (never over another version)."""
    try:
        staged.rename(final)
    except OSError as error:
        raise BundleError(
            f"cannot publish {final.name}: {error} (did another training run take it?); "
            f"the bundle is left in {staged}"
        ) from error
    return final


def cmd_predict(args: argparse.Namespace) -> int:
    """Score a CSV file with a bundle; write class and probability per row."""
    predictor = Predictor.from_bundle(args.bundle)
    table = read_csv(args.input)
    started = time.perf_counter()
    prediction = predictor.predict(table.columns, table.n_rows)
    elapsed = time.perf_counter() - started
    with args.output.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["class", "probability"])
        writer.writerows(
            zip(prediction.label.tolist(), prediction.probability.tolist(), strict=True)
        )
    print(
        f"scored {table.n_rows} rows in {elapsed * 1000:.0f} ms -> {args.output} "
        f"(positive rate {float(np.mean(prediction.label)):.3f})",
        file=sys.stderr,
    )
    if predictor.manifest.get("demo"):
        print(DEMO_NOTICE, file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Cross-validate every learner, the stack and the classic base model; write the report."""
    from modeling.training.report import write_report

    data, params, demo = _load_training(args)
    path = write_report(data, params, args.report, seed=args.seed, progress=Reporter())
    print(f"report written to {path}", file=sys.stderr)
    if demo:
        print(DEMO_NOTICE, file=sys.stderr)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    """Search one learner's hyper-parameters; store the best in params.json."""
    from modeling.training.tuning import tune

    data, params, _ = _load_training(args)
    best = tune(
        data,
        args.learner,
        params,
        seconds=args.minutes * 60,
        seed=args.seed,
        progress=Reporter(),
        store=not args.dry_run,
    )
    print(f"best {args.learner} parameters: {best}", file=sys.stderr)
    return 0


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--train", type=Path, help="training CSV with x0..x99 and y")
    source.add_argument(
        "--synthetic",
        type=int,
        metavar="ROWS",
        help="train a DEMO model on this many synthetic rows",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--folds", type=int, default=0, help="override the number of CV folds")
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        default=None,
        help="parameter preset from params.json (default: 'default' with --train, "
        "'quick' with --synthetic)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="python -m modeling", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train_parser = commands.add_parser("train", help="train the stacked ensemble into a bundle")
    _add_data_arguments(train_parser)
    target = train_parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="bundle directory to write")
    target.add_argument(
        "--repository",
        type=Path,
        help="model repository to add the next version to (never overwrites one)",
    )
    train_parser.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser("evaluate", help="cross-validated model report")
    _add_data_arguments(evaluate)
    evaluate.add_argument("--report", type=Path, default=Path("docs/model_report.md"))
    evaluate.set_defaults(handler=cmd_evaluate)

    predict = commands.add_parser("predict", help="score a CSV file offline")
    predict.add_argument("--bundle", type=Path, required=True)
    predict.add_argument("--input", type=Path, required=True, help="CSV with x0..x99")
    predict.add_argument("--output", type=Path, required=True, help="CSV to write")
    predict.set_defaults(handler=cmd_predict)

    tune_parser = commands.add_parser("tune", help="Optuna search for one learner")
    _add_data_arguments(tune_parser)
    tune_parser.add_argument(
        "--learner", required=True, choices=["logistic", "lightgbm", "catboost"]
    )
    tune_parser.add_argument("--minutes", type=float, default=10.0, help="time budget")
    tune_parser.add_argument("--dry-run", action="store_true", help="do not write params.json")
    tune_parser.set_defaults(handler=cmd_tune)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command; a known failure prints one line and returns 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (DataError, BundleError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
