"""Server settings (flags over environment) and the JSON log format."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from inference import logs
from inference.config import Settings, load_settings


@pytest.fixture
def load(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """``load_settings(argv)`` with exactly the environment variables ``env``."""

    def run(argv: list[str], env: dict[str, str]) -> Settings:
        for field in Settings.model_fields.values():
            monkeypatch.delenv(str(field.validation_alias), raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return load_settings(argv)

    return run


def test_defaults_need_only_a_bundle(load) -> None:  # type: ignore[no-untyped-def]
    settings = load(["--bundle", "models/x"], {})
    assert settings == Settings(bundle=Path("models/x"))
    assert (settings.port, settings.metrics_port, settings.max_queue_delay_ms) == (8001, 8002, 0.5)


def test_environment_sets_defaults_and_flags_win(load) -> None:  # type: ignore[no-untyped-def]
    env = {
        "INFERENCE_BUNDLE": "models/env",
        "INFERENCE_PORT": "9001",
        "INFERENCE_METRICS_PORT": "-1",
        "INFERENCE_MAX_BATCH_ROWS": "128",
        "INFERENCE_MAX_QUEUE_DELAY_MS": "2.5",
        "INFERENCE_WORKERS": "4",
        "INFERENCE_GRACE_S": "3",
        "INFERENCE_LOG_LEVEL": "debug",
        "INFERENCE_HOST": "127.0.0.1",
    }
    settings = load(["--port", "9100"], env)
    assert settings == Settings(
        bundle=Path("models/env"),
        host="127.0.0.1",
        port=9100,
        metrics_port=-1,
        max_batch_rows=128,
        max_queue_delay_ms=2.5,
        workers=4,
        grace_s=3.0,
        log_level="DEBUG",
    )


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ([], {}, "give one of --bundle (INFERENCE_BUNDLE) and --repository"),
        (["--bundle", ""], {}, "give one of --bundle"),
        (
            ["--bundle", "b", "--max-batch-rows", "0"],
            {},
            "--max-batch-rows='0': Input should be greater than 0",
        ),
        (
            ["--bundle", "b"],
            {"INFERENCE_MAX_QUEUE_DELAY_MS": "-1"},
            "INFERENCE_MAX_QUEUE_DELAY_MS='-1': Input should be greater than or equal to 0",
        ),
        (["--bundle", "b", "--port", "http"], {}, "--port='http': Input should be a valid integer"),
        (
            ["--bundle", "b"],
            {"INFERENCE_PORT": "70000"},
            "INFERENCE_PORT='70000': Input should be less",
        ),
        (["--bundle", "b", "--log-level", "loud"], {}, "--log-level='loud': not a logging level"),
        (["--bundle", "b", "--repository", "r"], {}, "give one of --bundle"),
        (["--bundle", "b"], {"INFERENCE_REPOSITORY": "r"}, "give one of --bundle"),
        (["--bundle", "b", "--model-version", "2"], {}, "--model-version needs --repository"),
        (
            ["--bundle", "b", "--workers", "0", "--grace-s", "-1"],
            {},
            "--workers='0': Input should be greater than 0 (and 1 more)",
        ),
    ],
)
def test_bad_settings_exit_2_with_one_line_naming_the_flag_or_variable(  # type: ignore[no-untyped-def]
    load, argv: list[str], env: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as error:
        load(argv, env)
    assert error.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"inference: {message}")


@pytest.fixture
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root_logger")
def test_log_lines_are_json_with_extra_fields(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("INFO")
    logger = logging.getLogger("inference.test")
    logger.info("ready %s", "now", extra={"event": "ready", "grpc_port": 8001})
    logger.debug("hidden")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    ready, failed = (json.loads(line) for line in lines)
    assert ready["message"] == "ready now"
    assert (ready["level"], ready["logger"], ready["event"], ready["grpc_port"]) == (
        "info",
        "inference.test",
        "ready",
        8001,
    )
    assert ready["ts"].endswith("Z")
    assert "ValueError: boom" in failed["exception"]


def test_a_repository_and_the_version_to_start_with(load) -> None:  # type: ignore[no-untyped-def]
    settings = load([], {"INFERENCE_REPOSITORY": "models/scoring"})
    assert (settings.bundle, settings.repository, settings.model_version) == (
        None,
        Path("models/scoring"),
        "",
    )
    settings = load(["--repository", "r", "--model-version", "3"], {})
    assert (settings.repository, settings.model_version) == (Path("r"), "3")


def test_loopback_by_default_and_limits_and_reflection_from_the_environment(load) -> None:  # type: ignore[no-untyped-def]
    defaults = load(["--bundle", "b"], {})
    assert (defaults.host, defaults.reflection, defaults.compile_trees) == (
        "127.0.0.1",
        True,
        False,
    )
    env = {
        "INFERENCE_MAX_REQUEST_ROWS": "10",
        "INFERENCE_MAX_TEXT_BYTES": "20",
        "INFERENCE_MAX_MESSAGE_BYTES": "30",
        "INFERENCE_REFLECTION": "off",
        "INFERENCE_COMPILE_TREES": "on",
    }
    settings = load(["--bundle", "b"], env)
    assert (settings.max_request_rows, settings.max_text_bytes) == (10, 20)
    assert (settings.max_message_bytes, settings.reflection) == (30, False)
    assert settings.compile_trees is True
    assert load(["--bundle", "b", "--reflection", "on"], env).reflection is True
    with pytest.raises(SystemExit):
        load(["--bundle", "b", "--reflection", "maybe"], {})


def test_drift_window_settings(load) -> None:  # type: ignore[no-untyped-def]
    env = {"INFERENCE_DRIFT_WINDOW_ROWS": "0", "INFERENCE_DRIFT_MIN_ROWS": "50"}
    settings = load(["--bundle", "b"], env)
    assert (settings.drift_window_rows, settings.drift_min_rows) == (0, 50)
    assert load(["--bundle", "b"], {}).drift_window_rows == 10_000
    with pytest.raises(SystemExit):
        load(["--bundle", "b", "--drift-window-rows", "-1"], {})
