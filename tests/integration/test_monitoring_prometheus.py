"""A real Prometheus scrapes the real stack; shifted traffic makes the drift alerts fire.

The inference server (a small drift window) and the gateway run as processes on free
ports; Debian's ``prometheus`` scrapes both every second and evaluates the real
``deploy/monitoring/rules.yml`` with every ``for:`` shortened to seconds. Normal traffic
keeps every column's PSI low and no drift alert fires; then ``x0`` moved by two standard
deviations and a burst of unknown ``x1`` categories: the series rise and the alerts fire,
as Prometheus's HTTP API reports them.
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeling.training.synthetic import synthetic_records
from tests.integration.conftest import (
    REPO,
    ManagedProcess,
    StartInference,
    free_port,
    start_process,
    subprocess_env,
    wait_until,
)
from tests.integration.gateway_helpers import Gateways, predict

PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        PROMETHEUS is None,
        reason="prometheus is not installed (Debian package prometheus; .ci/run installs it)",
    ),
]
RULES = REPO / "deploy" / "monitoring" / "rules.yml"
WINDOW_ROWS = 1000
SHIFT = 20.0  # two standard deviations of the synthetic columns (sd 10)


class Prometheus:
    """The HTTP API of a Prometheus on a local port."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def query(self, expr: str) -> dict[str, float]:
        """An instant query's samples, keyed by their ``column`` label (or ``""``)."""
        result = self.get("/api/v1/query", query=expr)["result"]
        return {s["metric"].get("column", ""): float(s["value"][1]) for s in result}

    def alerts(self, state: str) -> set[tuple[str, str]]:
        """(alert name, column label) of every alert in ``state`` (pending or firing)."""
        return {
            (a["labels"]["alertname"], a["labels"].get("column", ""))
            for a in self.get("/api/v1/alerts")["alerts"]
            if a["state"] == state
        }

    def targets_up(self) -> set[str]:
        return {
            t["labels"]["job"]
            for t in self.get("/api/v1/targets")["activeTargets"]
            if t["health"] == "up"
        }


def quick_rules(path: Path) -> Path:
    """The real rules with every ``for:`` shortened to 2 s (the expressions unchanged)."""
    groups = yaml.safe_load(RULES.read_text())
    for group in groups["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "2s"
    path.write_text(yaml.safe_dump(groups, sort_keys=False))
    return path


@pytest.fixture
def stack(
    start_inference: StartInference, inference_bundle: Path, tmp_path: Path
) -> Iterator[tuple[int, Prometheus]]:
    """Inference server + gateway + Prometheus scraping both; yields (gateway port, API)."""
    server = start_inference(
        inference_bundle,
        INFERENCE_DRIFT_WINDOW_ROWS=str(WINDOW_ROWS),
        INFERENCE_DRIFT_MIN_ROWS="200",
    )
    gateways = Gateways(tmp_path)
    prometheus: ManagedProcess | None = None
    try:
        gateway = gateways.start(f"127.0.0.1:{server.ports['grpc']}")
        http_port = gateway.ports["http"]
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(quick_rules(tmp_path / "rules.yml"))],
            "scrape_configs": [
                {
                    "job_name": "inference",
                    "static_configs": [{"targets": [f"127.0.0.1:{server.ports['metrics']}"]}],
                },
                {
                    "job_name": "gateway",
                    "static_configs": [{"targets": [f"127.0.0.1:{http_port}"]}],
                },
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        assert PROMETHEUS is not None
        argv = [
            PROMETHEUS,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        prometheus = start_process(argv, tmp_path / "prometheus.log", subprocess_env(), {})
        api = Prometheus(port)

        def ready() -> bool:
            if not prometheus or not prometheus.running():
                pytest.fail(f"prometheus exited:\n{prometheus.log() if prometheus else ''}")
            return api.ready()

        wait_until(ready, 60, "prometheus ready")
        wait_until(lambda: api.targets_up() == {"inference", "gateway"}, 60, "both targets up")
        yield http_port, api
    finally:
        if prometheus is not None:
            prometheus.stop()
        gateways.stop_all()


def send(port: int, records: list[dict[str, str]], chunk: int = 100) -> None:
    for start in range(0, len(records), chunk):
        status, _, answer = predict(port, records[start : start + chunk])
        assert status == 200, answer


def shifted(records: list[dict[str, str]]) -> list[dict[str, str]]:
    """``x0`` moved by two standard deviations, ``x1`` an unknown category."""
    return [
        {**row, "x0": repr(float(row["x0"]) + SHIFT) if row["x0"] else "", "x1": "blursday"}
        for row in records
    ]


def test_shifted_traffic_raises_the_drift_series_and_fires_the_alerts(
    stack: tuple[int, Prometheus],
) -> None:
    port, api = stack
    drift_alerts = {
        "ScoringFeatureDrift",
        "ScoringFeatureDriftCritical",
        "ScoringUnrecognisedValues",
    }

    # Normal traffic: a full window like the training data, PSI low everywhere, no alert.
    send(port, synthetic_records(WINDOW_ROWS, seed=21))

    def window_full() -> bool:
        return api.query("inference_drift_window_rows").get("") == WINDOW_ROWS

    wait_until(window_full, 60, "Prometheus to see a full drift window")
    wait_until(
        lambda: len(api.query("column:inference_drift_psi:max")) == 100,
        60,
        "the recording rule of every column's PSI",
    )
    calm = api.query("column:inference_drift_psi:max")
    assert calm["x0"] < 0.1
    assert max(calm.values()) < 0.2, sorted(calm.items(), key=lambda kv: -kv[1])[:5]
    assert api.query("column:inference_drift_unrecognised_ratio:max")["x1"] == 0.0
    assert not {name for name, _ in api.alerts("pending") | api.alerts("firing")} & drift_alerts

    # Shifted traffic replaces the window (every row of it once x1 is all unreadable).
    send(port, shifted(synthetic_records(WINDOW_ROWS, seed=22)))

    def window_shifted() -> bool:
        return api.query("column:inference_drift_unrecognised_ratio:max").get("x1") == 1.0

    wait_until(window_shifted, 60, "a drift window of shifted rows only")
    moved = api.query("column:inference_drift_psi:max")
    assert moved["x0"] > 1.0  # two standard deviations: far beyond the thresholds
    assert moved["x5"] < 0.2  # an untouched column stays put
    expected = {
        ("ScoringFeatureDrift", "x0"),
        ("ScoringFeatureDriftCritical", "x0"),
        ("ScoringUnrecognisedValues", "x1"),
    }
    wait_until(lambda: expected <= api.alerts("firing"), 60, f"alerts firing: {expected}")
    firing = api.alerts("firing")
    assert ("ScoringFeatureDrift", "x5") not in firing
    # The raw series the alert rests on, straight from the inference server.
    assert api.query('inference_drift_psi{column="x0"}')["x0"] == pytest.approx(
        moved["x0"], rel=0.5
    )
    # The gateway's SLO series are scraped too, and no SLO alert fires on healthy traffic.
    assert api.query('gateway_requests_total{route="/predict",status="200"}')
    assert not {name for name, _ in firing} & {"ScoringErrorBudgetFastBurn", "ScoringTargetDown"}
