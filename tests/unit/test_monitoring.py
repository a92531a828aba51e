"""deploy/monitoring: rules checked and unit-tested by promtool, the dashboard validated.

Every PromQL expression (rules and dashboard panels) may reference only metrics the
gateway and the inference server really export, recording rules of rules.yml, and
``up``. The promtool checks skip when promtool is absent (CI installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry

import gateway.metrics  # noqa: F401 - registers the gateway's families on the default registry
from inference.drift import DriftCollector, DriftTracker
from inference.metrics import Metrics
from modeling.cleaning import clean
from modeling.training.profile import build_profile
from modeling.training.synthetic import synthetic_table

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
RULES = MONITORING / "rules.yml"
DASHBOARD = MONITORING / "dashboard.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (Debian package prometheus; .ci/run installs it)",
)
_KEYWORDS = {"and", "or", "unless", "bool", "group_left", "group_right", "inf", "nan", "Inf", "NaN"}
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


def metric_names(expr: str) -> set[str]:
    """The metric (and recording rule) names a PromQL expression selects."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges, $__rate_interval included
    expr = re.sub(r"\boffset\s+-?\w+", "", expr)  # offsets
    expr = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr
    )  # label lists
    expr = re.sub(r"(?<![\w:])\d+(\.\d+)?([eE][+-]?\d+)?", "0", expr)  # numbers
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        if expr[match.end() :].lstrip().startswith("(") or match.group() in _KEYWORDS:
            continue  # a function or aggregation, or an operator word
        names.add(match.group())
    return names


def test_metric_names_reads_promql() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(x_bucket{route="/a(b)"}[$__rate_interval])))'
        " / on (instance) group_left y:z:max > 1e-3 and topk(10, w) unless bool v offset 5m"
    )
    assert metric_names(expr) == {"x_bucket", "y:z:max", "w", "v"}


def _family_names(registry: CollectorRegistry) -> Iterator[str]:
    for family in registry.collect():
        for suffix in _SUFFIXES[family.type]:
            yield family.name + suffix


@pytest.fixture(scope="module")
def known_names() -> set[str]:
    """Every series name the two services export, the recording rules, and ``up``."""
    columns, _ = synthetic_table(500, seed=1)
    matrix = clean(columns, 500).matrix
    profile = build_profile(matrix, np.linspace(0.01, 0.99, 500), 0.5)
    tracker = DriftTracker(profile, capacity=500, min_rows=1)
    try:
        tracker.observe(clean(columns, 500), np.full(500, 0.5))
        assert tracker.flush()
        metrics = Metrics()
        metrics.registry.register(DriftCollector(tracker))
        names = set(_family_names(metrics.registry))
    finally:
        tracker.close(timeout=5)
    names |= {name for name in _family_names(REGISTRY) if name.startswith("gateway_")}
    assert "inference_drift_psi" in names
    assert "gateway_requests_total" in names
    return names | recording_rules() | {"up"}


def rule_groups() -> list[dict[str, Any]]:
    return list(yaml.safe_load(RULES.read_text())["groups"])


def recording_rules() -> set[str]:
    return {
        rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule
    }


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def dashboard_exprs() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in all_panels(dashboard()["panels"])
        for target in panel.get("targets") or []
    ]


# ---- rules ----------------------------------------------------------------------------------


def test_rules_reference_only_exported_metrics(known_names: set[str]) -> None:
    for group in rule_groups():
        for rule in group["rules"]:
            unknown = metric_names(rule["expr"]) - known_names
            assert not unknown, (rule.get("record") or rule.get("alert"), unknown)


def test_alerts_have_a_severity_and_say_what_happened() -> None:
    alerts = [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]
    assert len(alerts) >= 10
    for alert in alerts:
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}, alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]
        assert alert["alert"] in (MONITORING.parent.parent / "docs" / "monitoring.md").read_text()


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=120, check=False
    )


@needs_promtool
def test_promtool_checks_the_rules_and_the_scrape_config() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    result = _promtool("check", "config", str(MONITORING / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests_of_the_rules_pass() -> None:
    result = _promtool("test", "rules", str(MONITORING / "rules_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """Raise the warning threshold: the test that expects the warning must fail."""
    text = RULES.read_text()
    assert "column:inference_drift_psi:max > 0.2\n" in text
    (tmp_path / "rules.yml").write_text(
        text.replace(
            "column:inference_drift_psi:max > 0.2\n", "column:inference_drift_psi:max > 0.35\n"
        )
    )
    shutil.copy(MONITORING / "rules_test.yml", tmp_path / "rules_test.yml")
    result = _promtool("test", "rules", str(tmp_path / "rules_test.yml"))
    assert result.returncode != 0
    assert "ScoringFeatureDrift" in result.stdout + result.stderr


# ---- the dashboard --------------------------------------------------------------------------


def test_dashboard_panels_have_unique_ids_and_a_templated_datasource() -> None:
    board = dashboard()
    panels = list(all_panels(board["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert target["expr"].strip(), panel["title"]
    titles = " ".join(panel["title"] for panel in panels).lower()
    for topic in ("latency", "error", "batch", "rows", "psi", "drift", "unrecognised", "missing"):
        assert topic in titles, topic


def test_dashboard_queries_reference_only_exported_metrics(known_names: set[str]) -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    for title, expr in exprs:
        names = metric_names(expr)
        assert names, (title, expr)
        assert not names - known_names, (title, names - known_names)


@needs_promtool
def test_dashboard_queries_parse(tmp_path: Path) -> None:
    """promtool parses each query as a recording rule (Grafana's variables filled in)."""
    rules = [
        {
            "record": f"dashboard:query_{k}",
            "expr": expr.replace("$__rate_interval", "5m").replace("$column", ".*"),
        }
        for k, (_, expr) in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = _promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
