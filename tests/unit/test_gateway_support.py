"""Gateway settings, error bodies, metrics, the OpenAPI document and gunicorn hooks."""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import get_args

import numpy as np
import orjson
import pytest
from gunicorn.workers.gthread import ThreadWorker
from jsonschema import Draft202012Validator

from gateway import contract, metrics
from gateway.app import create_app
from gateway.client import InferenceClient
from gateway.config import ENV, Config, SettingsError, default_workers, settings
from gateway.convert import Batch
from gateway.errors import ApiError, detail, invalid_input, preview
from gateway.oip_rest import OUTPUT_DATATYPES
from gateway.openapi import OPENAPI
from proto.codec import ModelSchema, TensorSpec


def test_config_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Config.from_env() == Config()
    for name, value in {
        "INFERENCE_TARGET": "dns:///inference:8001",
        "GATEWAY_DEADLINE_S": "0.5",
        "GATEWAY_MAX_ROWS": "10",
        "INFERENCE_MODEL": " m ",
        "GATEWAY_CHUNK_ROWS": "",
        "gateway_threads": "3",  # the names are case-sensitive
    }.items():
        monkeypatch.setenv(name, value)
    config = Config.from_env()
    assert config.inference_target == "dns:///inference:8001"
    assert config.deadline_s == 0.5
    assert config.max_rows == 10
    assert config.model_name == "m"
    assert config.chunk_rows == Config().chunk_rows
    assert config.threads == 8
    assert set(ENV) == set(Config.model_fields)


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("GATEWAY_MAX_ROWS", "ten", "valid integer"),
        ("GATEWAY_DEADLINE_S", "0", "greater than 0"),
        ("GATEWAY_PORT", "70000", "less than or equal to 65535"),
        ("GATEWAY_ACCESS_LOG", "maybe", "valid boolean"),
        ("GATEWAY_LOG_LEVEL", "loud", "not a logging level"),
    ],
)
def test_bad_settings_raise_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, reason: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as error:
        Config.from_env()
    assert str(error.value).startswith(f"{name}={value!r}: ")
    assert reason in str(error.value)
    assert "\n" not in str(error.value)


def test_two_bad_settings_name_the_first_and_count_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_THREADS", "0")
    monkeypatch.setenv("GATEWAY_MAX_ROWS", "-1")
    with pytest.raises(SettingsError, match=r"^GATEWAY_THREADS='0': .* \(and 1 more\)$"):
        Config.from_env()


def test_error_helpers() -> None:
    assert preview(None) is None
    assert preview(1.5) == 1.5
    assert preview(True) is True
    assert preview({"a": [1, None]}) == '{"a":[1,null]}'
    assert preview(b"raw") == "b'raw'"
    assert detail(3, "x1", "v", "why") == {"row": 3, "field": "x1", "value": "v", "reason": "why"}
    three = [detail(0, "x0", "a", "r"), detail(5, "x0", "b", "r"), detail(6, "x0", "c", "r")]
    capped = invalid_input("value", three, 3, 2)
    assert capped.message == "3 invalid values (first 2 listed)"
    assert [d["row"] for d in capped.details] == [0, 5]
    assert invalid_input("row", three[:1], 1, 100).message == "1 invalid row"
    error = ApiError(503, "down", headers={"Retry-After": "1"})
    assert str(error) == "down"
    assert orjson.loads(error.body()) == {"error": "down", "details": []}


@pytest.mark.parametrize(
    ("value", "echoed"),
    [
        (np.float64(3.5e38), 3.5e38),  # a binary FP64 tensor's number beyond float32
        (np.float32(1.5), 1.5),
        (np.int64(7), 7),
        (np.bool_(True), True),
        (np.bytes_(b"raw"), "b'raw'"),
    ],
)
def test_numbers_of_binary_tensors_are_echoed_as_json_values(value, echoed) -> None:
    error = invalid_input("value", [detail(0, "x2", value, "beyond float32")], 1, 10)

    body = orjson.loads(error.body())  # raised TypeError for numpy scalars

    assert body["details"][0]["value"] == echoed


def test_openapi_documents_exactly_the_app_routes() -> None:
    app = create_app(Config(inference_target="127.0.0.1:1"))
    routes = {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint != "static"}
    assert {route.replace("<name>", "{name}") for route in routes} == set(OPENAPI["paths"])
    assert OPENAPI["openapi"].startswith("3.")
    responses = OPENAPI["paths"]["/predict"]["post"]["responses"]
    assert {"200", "400", "413", "415", "503", "504"} <= set(responses)


def refs(node: object) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(value) for value in node))
    return set()


def test_openapi_schemas_come_from_the_contract_and_every_ref_resolves() -> None:
    components = OPENAPI["components"]["schemas"]
    assert {struct.__name__ for struct in contract.COMPONENTS} <= set(components)
    assert {ref.removeprefix("#/components/schemas/") for ref in refs(OPENAPI)} <= set(components)
    for schema in components.values():
        Draft202012Validator.check_schema(schema)
    assert components["Prediction"]["required"] == ["class", "probability"]
    assert set(get_args(contract.OutputName)) == set(OUTPUT_DATATYPES)  # documented outputs


def test_answers_encode_as_the_contract_spells_them() -> None:
    assert orjson.loads(contract.encode([contract.Prediction(1, 0.25)])) == [
        {"class": 1, "probability": 0.25}
    ]
    plain, group = contract.Contribution("x0", 1.0), contract.Contribution("g", 2.0, ["x1"])
    assert orjson.loads(contract.encode([plain, group])) == [
        {"feature": "x0", "contribution": 1.0},
        {"feature": "g", "contribution": 2.0, "columns": ["x1"]},
    ]


def test_metrics_render_single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    metrics.REQUESTS.labels("/test", "200").inc()
    body, content_type = metrics.render()
    assert b'gateway_requests_total{route="/test",status="200"}' in body
    assert content_type.startswith("text/plain")


def test_metrics_render_multiprocess_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    body, _ = metrics.render()
    assert isinstance(body, bytes)


def test_a_full_metrics_directory_answers_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    assert metrics.unusable(str(tmp_path)) == ""
    monkeypatch.setattr(metrics, "HEADROOM_BYTES", 1 << 62)  # more than any disk has free
    assert "bytes free (fewer than" in metrics.unusable(str(tmp_path))
    with pytest.raises(metrics.MetricsUnavailableError, match="bytes free"):
        metrics.render()
    metrics.claim_directory()  # nowhere has that much room: the directory is kept
    assert os.environ[metrics.MULTIPROC_ENV] == str(tmp_path)


def test_a_cut_short_metrics_file_answers_unavailable_not_500(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    (tmp_path / "counter_1.db").write_bytes(b"stale")  # struct.error in the merge
    with pytest.raises(metrics.MetricsUnavailableError, match="unpack"):
        metrics.render()


def test_a_failed_metrics_update_is_logged_once_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @metrics._best_effort
    def update() -> None:
        raise OSError("disk gone")

    with caplog.at_level("WARNING", logger="gateway"):
        update()
        update()
    assert [r.getMessage() for r in caplog.records] == [
        "metrics update failed, predictions go on: disk gone"
    ]


def test_an_unusable_metrics_directory_keeps_the_worker_s_samples_private(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    shared = tmp_path / "gone"
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(shared))
    monkeypatch.setattr(metrics, "_shared", [])
    metrics.claim_directory()
    private = Path(os.environ[metrics.MULTIPROC_ENV])
    try:
        assert private != shared
        assert private.is_dir()
        assert metrics.shared_directory() == str(shared)  # /metrics still merges the shared one
        with pytest.raises(metrics.MetricsUnavailableError, match="No such file"):
            metrics.render()
        assert shared.is_dir()  # made again: the next scrape answers
        assert isinstance(metrics.render()[0], bytes)
    finally:
        shutil.rmtree(private)


def _gunicorn_conf(monkeypatch: pytest.MonkeyPatch, **env: str):  # type: ignore[no-untyped-def]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings.cache_clear()
    import gateway.gunicorn_conf as conf

    return importlib.reload(conf)


def test_gunicorn_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = _gunicorn_conf(
        monkeypatch,
        GATEWAY_PORT="6001",
        GATEWAY_WORKERS="3",
        GATEWAY_THREADS="2",
        GATEWAY_HOST="127.0.0.1",
        GATEWAY_ACCESS_LOG="1",
        GATEWAY_LOG_LEVEL="WARNING",
    )
    assert conf.bind == "127.0.0.1:6001"
    assert (conf.workers, conf.threads) == (3, 2)
    assert (conf.accesslog, conf.loglevel) == ("-", "warning")
    worker = importlib.import_module(conf.worker_class.rsplit(".", 1)[0])
    assert issubclass(getattr(worker, conf.worker_class.rsplit(".", 1)[1]), ThreadWorker)
    assert conf.preload_app is False
    monkeypatch.setenv("GATEWAY_WORKERS", "0")
    settings.cache_clear()
    with pytest.raises(SystemExit, match=r"^gateway: GATEWAY_WORKERS='0': "):
        importlib.reload(conf)
    monkeypatch.delenv("GATEWAY_WORKERS")
    settings.cache_clear()
    importlib.reload(conf)
    assert conf.workers == default_workers() >= 1


def test_gunicorn_hooks_manage_the_metrics_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    conf = _gunicorn_conf(monkeypatch, PROMETHEUS_MULTIPROC_DIR=str(directory))
    (directory / "counter_1.db").write_bytes(b"stale")
    (directory / "keep.txt").write_text("x")
    monkeypatch.delenv("COVERAGE_PROCESS_START", raising=False)
    conf.on_starting(None)
    assert sorted(p.name for p in directory.iterdir()) == ["keep.txt"]
    app = create_app(Config(inference_target="127.0.0.1:1"))
    worker = SimpleNamespace(pid=999_999, wsgi=app)
    conf.post_fork(None, worker)  # no coverage requested: nothing started
    conf.worker_exit(None, worker)  # closes the app's channel, whether or not it connected
    (directory / "gauge_livesum_999999.db").write_bytes(b"")
    conf.child_exit(None, worker)  # a dead worker's live gauges no longer count
    assert sorted(p.name for p in directory.iterdir()) == ["keep.txt"]
    monkeypatch.delenv("GATEWAY_METRICS_DIR_OWNED", raising=False)
    conf.on_exit(None)
    assert directory.exists()  # not ours: kept
    monkeypatch.setenv("GATEWAY_METRICS_DIR_OWNED", "1")
    conf.on_exit(None)
    assert not directory.exists()


def test_a_call_past_its_deadline_is_a_504_and_is_never_sent() -> None:
    client = InferenceClient(Config(inference_target="127.0.0.1:1"))  # nothing listens there
    schema = ModelSchema("m", "1", (TensorSpec("x0", "FP64"),))
    batch = Batch(1, (np.array([1.0]),))
    with pytest.raises(ApiError) as raised:
        client.infer(schema, batch, chunk_rows=10, timeout_s=0)
    assert raised.value.status == 504
    assert "no answer within the deadline" in raised.value.message
    assert raised.value.headers["Retry-After"] == "1"
