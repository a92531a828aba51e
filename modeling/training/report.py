"""``python -m modeling evaluate``: the cross-validated model report with its figures."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modeling.learners import LightGBMLearner
from modeling.learners.base import sigmoid
from modeling.learners.meta import MetaLearner
from modeling.training.baseline import ClassicBaseModel
from modeling.training.crossval import OutOfFold, Progress, out_of_fold, refit_params
from modeling.training.evaluation import brier, reliability, roc_points, summarise_auc
from modeling.training.fit import TrainingSet
from modeling.training.peers import peers_out_of_fold

CLASSIC = "classic base model"


def classic_out_of_fold(data: TrainingSet, folds: NDArray[np.intp]) -> NDArray[np.float64]:
    """Out-of-fold predictions of the exercise's base model on the given folds."""
    predictions = np.empty(len(data.target))
    for k in np.unique(folds):
        train, held_out = folds != k, folds == k
        model = ClassicBaseModel().fit(data.features[train], data.target[train])
        predictions[held_out] = model.predict_proba(data.features[held_out])
    return predictions


def _figures(
    data: TrainingSet,
    scores: dict[str, NDArray[np.float64]],
    importance: list[tuple[str, float]],
    weights: dict[str, float],
    directory: Path,
) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}

    figure, axis = plt.subplots(figsize=(5.5, 5))
    for name, score in scores.items():
        fpr, tpr = roc_points(data.target, score)
        axis.plot(fpr, tpr, label=name, linewidth=1.2)
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":")
    axis.set(xlabel="false positive rate", ylabel="true positive rate", title="Out-of-fold ROC")
    axis.legend(loc="lower right", fontsize=8)
    paths["roc"] = "roc.png"

    figure.savefig(directory / paths["roc"], dpi=130, bbox_inches="tight")
    figure, axis = plt.subplots(figsize=(5.5, 5))
    predicted, observed = reliability(data.target, scores["stack"], bins=15)
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":")
    axis.plot(predicted, observed, marker="o")
    axis.set(
        xlabel="mean predicted P(y=1)", ylabel="observed rate", title="Calibration of the stack"
    )
    paths["calibration"] = "calibration.png"
    figure.savefig(directory / paths["calibration"], dpi=130, bbox_inches="tight")

    figure, axis = plt.subplots(figsize=(6, 5))
    names, gains = zip(*importance[:20][::-1], strict=True)
    axis.barh(names, gains)
    axis.set(xlabel="share of total gain", title="LightGBM feature importance (top 20)")
    paths["importance"] = "importance.png"
    figure.savefig(directory / paths["importance"], dpi=130, bbox_inches="tight")

    figure, axis = plt.subplots(figsize=(5, 3))
    axis.bar(list(weights), list(weights.values()))
    axis.set(ylabel="weight on logit", title="Stacking weights")
    paths["weights"] = "stacking_weights.png"
    figure.savefig(directory / paths["weights"], dpi=130, bbox_inches="tight")
    plt.close("all")
    return paths


def _importance(data: TrainingSet, params: dict[str, Any]) -> list[tuple[str, float]]:
    """Share of total gain of each column in a LightGBM refitted with ``params``."""
    learner = LightGBMLearner(**params).fit(data.features, data.target)
    gain = learner.feature_importance()
    total = max(sum(gain.values()), 1e-12)
    return sorted(
        ((name, value / total) for name, value in gain.items()), key=lambda item: -item[1]
    )


def _standard_errors(params: dict[str, Any]) -> str:
    return f"{float(params.get('capacity_rule', {}).get('standard_errors', 0.0)):g}"


def _own(params: dict[str, Any]) -> str:
    """One clause naming the learners that screen the shared columns with their own model."""
    own = list(params.get("selection", {}).get("own", ()))
    if not own:
        return "every learner uses the shared columns"
    return (
        f"{', '.join(own)} then keep{'s' if len(own) == 1 else ''} only the shared columns "
        "whose shuffling lowers their own held-out AUC, when a refit on those does not "
        "score lower (a full-covariance class mixture pays for every noise input, trees "
        "do not), and the refit uses the columns most folds kept"
    )


def columns_per_fold(oof: OutOfFold) -> str:
    """Counts of the shared columns per fold, and of each learner's own where they differ."""
    shared = [len(c) for c in oof.columns]
    parts = [f"shared {shared}"]
    for name, per_fold in oof.learner_columns.items():
        counts = [len(c) for c in per_fold]
        if counts != shared:
            parts.append(f"{name} {counts}")
    return "; ".join(parts)


def _describe(source: dict[str, Any]) -> str:
    """One line naming the training data: file (or synthetic), rows, positives, digest."""
    name = f"`{source['file']}`" if "file" in source else "synthetic rows (DEMO)"
    digest = f", sha256 {source['sha256'][:12]}…" if "sha256" in source else ""
    return f"{name} ({source['rows']:,} rows, {source['positives']:,} positives{digest})"


def _table(metrics: dict[str, dict[str, float]], briers: dict[str, float]) -> list[str]:
    lines = [
        "| model | CV AUC | 95% interval | fold mean ± sd | Brier |",
        "|---|---|---|---|---|",
    ]
    for name, m in metrics.items():
        lines.append(
            f"| {name} | **{m['auc']:.4f}** | {m['low']:.4f} to {m['high']:.4f} | "
            f"{m['fold_mean']:.4f} ± {m['fold_std']:.4f} | {briers[name]:.4f} |"
        )
    return lines


def compare(
    data: TrainingSet, params: dict[str, Any], *, seed: int, progress: Progress
) -> tuple[OutOfFold, dict[str, NDArray[np.float64]]]:
    """Out-of-fold predictions of the classic model, the peers, every learner and the stack.

    All on the folds of the one cross-validation, :func:`.crossval.out_of_fold`.
    """
    oof = out_of_fold(data.features, data.target, params, seed=seed, progress=progress)
    progress("classic base model")
    scores = {
        CLASSIC: classic_out_of_fold(data, oof.folds),
        **peers_out_of_fold(data.features, data.target, oof.folds, seed=seed, progress=progress),
        **{n: sigmoid(oof.base[:, j]) for j, n in enumerate(oof.names)},
        "stack": oof.stack,
    }
    return oof, scores


def write_report(
    data: TrainingSet, params: dict[str, Any], path: Path, seed: int, progress: Progress
) -> Path:
    """Cross-validate everything on shared folds and write the Markdown report at ``path``."""
    started = time.perf_counter()
    oof, scores = compare(data, params, seed=seed, progress=progress)
    metrics = {n: summarise_auc(data.target, s, oof.folds).as_dict() for n, s in scores.items()}
    briers = {name: brier(data.target, score) for name, score in scores.items()}
    weights = MetaLearner(oof.names).fit(oof.base, data.target).weights()
    refit = refit_params(params, oof)
    progress("feature importance")
    importance = _importance(data, refit["lightgbm"])
    figures = _figures(data, scores, importance, weights, path.parent / "figures")
    lines = [
        "# Model report",
        "",
        f"Generated by `python -m modeling evaluate` on {_describe(data.source)}. "
        f"{int(params['folds'])}-fold stratified cross-validation (seed {seed}); every "
        "model is scored on rows it did not see, all on the same folds. Each fold chooses "
        "the learners' capacity (rounds, leaves, mixture size) on a stratified share of its "
        "own training rows: each option is fitted without those rows and scored on them, "
        "and the option cheapest to score (node comparisons or multiply-adds per row) whose "
        "AUC there is "
        f"within {_standard_errors(params)} standard error(s) of the best option's is taken "
        "(the one-standard-error rule: a gain smaller than the noise of its measurement "
        "does not pay for a slower model in serving). Columns are screened once for every "
        "learner (a column is kept when shuffling it costs more held-out AUC than any of "
        "the decoy columns, or when it echoes other columns); "
        f"{_own(params)}. The stack's own meta-learner is cross-validated over the "
        "out-of-fold base predictions. The `default` rows are XGBoost, LightGBM and CatBoost "
        "with their library defaults on all 100 columns. Intervals "
        "are 95% (Hanley & McNeil); the fold spread shows the variation between folds.",
        "",
        *_table(metrics, briers),
        "",
        "Stacking weights (meta-learner coefficients on each learner's logit): "
        + ", ".join(f"{name} {weight:.3f}" for name, weight in weights.items())
        + ".",
        "",
        "Fit time over all folds (seconds): "
        + ", ".join(f"{name} {seconds:.0f}" for name, seconds in oof.seconds.items())
        + ".",
        "",
        "Capacity the folds chose (each fold early-stops on a share of its own training "
        "rows), as used by the refit: "
        + "; ".join(f"{name} {refit[name]}" for name in oof.names)
        + f". Columns kept per fold: {columns_per_fold(oof)}.",
        "",
        f"![ROC curves](figures/{figures['roc']})",
        "",
        f"![Calibration](figures/{figures['calibration']})",
        "",
        f"![Feature importance](figures/{figures['importance']})",
        "",
        f"![Stacking weights](figures/{figures['weights']})",
        "",
        "Top 10 features by LightGBM gain: "
        + ", ".join(f"{name} ({share:.1%})" for name, share in importance[:10])
        + ".",
        "",
        "Parameters: `modeling/training/params.json` (profile `default`): fixed values "
        "and the search ranges the folds choose from.",
        "",
        f"_Report computed in {time.perf_counter() - started:.0f} s._",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + _appended_sections(path))
    return path


def _appended_sections(path: Path) -> str:
    """What other tools appended to the report, kept when it is rewritten.

    That is everything from the report's first line opening an HTML comment, such as
    the synthetic-sets section of ``bench.model_compare``.
    """
    text = path.read_text() if path.exists() else ""
    start = text.find("\n<!-- ")
    return "" if start < 0 else text[start:]
