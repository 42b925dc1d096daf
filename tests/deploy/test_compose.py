"""compose.yaml, the Dockerfiles and .env.example, checked without a Docker engine (none runs here):

- against the Compose Specification: the JSON schema vendored from compose-go (compose-spec.json, the
  loader `docker compose` itself uses, v2.16.2, Apache-2.0), and, where scripts/install.sh could build
  it (it needs Go), compose-go's own validator, which also interpolates, reads .env and checks the
  model's consistency (depends_on targets, volumes, ...);
- against the code: every setting compose passes is read by a settings class and listed in
  .env.example, its value validates, and every healthcheck asks a route that the app really has."""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema_rs
import pytest
import yaml
from pydantic_settings import BaseSettings

from devicestream.settings import LauncherSettings
from services.gateway.settings import GatewaySettings
from services.generator.settings import GeneratorSettings
from services.merger.settings import MergerSettings
from spark_job.settings import SparkJobSettings
from tests.deploy.settings_env import (
    COMPOSE_ONLY,
    ENV_EXAMPLE,
    REPO_ROOT,
    env_example_names,
    every_accepted_name,
    settings_env_vars,
)

pytestmark = pytest.mark.integration

COMPOSE = REPO_ROOT / "compose.yaml"
SCHEMA = Path(__file__).with_name("compose-spec.json")
COMPOSE_SPEC_TOOL = Path(sys.executable).parent / "compose-spec"  # built into .venv/bin by install.sh
DOCKERFILES = sorted((REPO_ROOT / "docker").glob("*.Dockerfile"))

#: Services of ours (the rest run the official Kafka image with its own configuration).
HTTP_SERVICES: dict[str, tuple[type[BaseSettings], str]] = {
    "generator": (GeneratorSettings, "services.generator.app"),
    "merger": (MergerSettings, "services.merger.app"),
    "gateway": (GatewaySettings, "services.gateway.app"),
}
OUR_SERVICES = ("spark", *HTTP_SERVICES)
START_ORDER = ("kafka", "spark", "merger", "generator", "gateway")

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default} interpolation over a loaded document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, op, default = m.group(1), m.group(2), m.group(3) or ""
            if op == ":-":
                return env.get(name) or default
            if op == "-":
                return env.get(name, default)
            return env.get(name, "")

        return _VAR.sub(sub, value)
    return value


def compose_vars() -> set[str]:
    return {m.group(1) for m in _VAR.finditer(COMPOSE.read_text())}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """compose.yaml as compose sees it with no .env: anchors merged, variables at their defaults."""
    return interpolate(yaml.safe_load(COMPOSE.read_text()), {})


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment", {})
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for k, v in env.items()}


@pytest.fixture
def container_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Apply one container's environment to this process (and nothing else that could leak in)."""

    def apply(env: dict[str, str]) -> None:
        for name in list(os.environ):
            if name in every_accepted_name():
                monkeypatch.delenv(name)
        for k, v in env.items():
            monkeypatch.setenv(k, v)

    yield apply


# ---- the Compose Specification ------------------------------------------------------------------


def test_compose_file_matches_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
    errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, "compose.yaml does not follow the Compose Specification:\n" + "\n".join(errors)


def test_the_schema_check_rejects_what_compose_would(compose: dict[str, Any]) -> None:
    """The check above is not vacuous: a misspelt key and a wrongly typed duration both fail it."""
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
    broken = json.loads(json.dumps(compose))
    broken["services"]["merger"]["helthcheck"] = broken["services"]["merger"].pop("healthcheck")
    broken["services"]["spark"]["healthcheck"]["interval"] = 10
    messages = [e.message for e in validator.iter_errors(broken)]
    assert any("helthcheck" in m for m in messages), messages
    assert any("10 is not of type" in m for m in messages), messages


@pytest.mark.skipif(
    not COMPOSE_SPEC_TOOL.exists(), reason="no Go here: install.sh builds compose-go's validator when it can"
)
def compose_go(tmp_path: Path, *files: Path) -> dict[str, Any]:
    """The project compose-go loads from `files` (copied into tmp_path with .env.example as .env and
    the Prometheus files compose.yaml names), as `docker compose -f ... config` would."""
    for f in files:
        (tmp_path / f.name).write_text(f.read_text())
    (tmp_path / ".env").write_text(ENV_EXAMPLE.read_text())
    shutil.copytree(REPO_ROOT / "deploy", tmp_path / "deploy", dirs_exist_ok=True)
    res = subprocess.run(
        [str(COMPOSE_SPEC_TOOL), "--format", "json", *(f.name for f in files)],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, f"compose-go rejected {[f.name for f in files]}:\n{res.stderr}"
    return json.loads(res.stdout)


def test_compose_go_loads_the_project(tmp_path: Path) -> None:
    """compose-go (the library `docker compose` is built on) loads the project as `docker compose
    config` would: interpolation with .env.example copied to .env, schema, consistency checks."""
    project = compose_go(tmp_path, COMPOSE)
    assert set(project["services"]) == {*START_ORDER, "topic", "prometheus"}
    assert [p["published"] for p in project["services"]["gateway"]["ports"]] == ["8000"]


# ---- shape of the deployment --------------------------------------------------------------------


def test_only_the_gateway_and_prometheus_publish_a_port(compose: dict[str, Any]) -> None:
    published = {name for name, svc in services(compose).items() if svc.get("ports")}
    assert published == {"gateway", "prometheus"}
    (port,) = services(compose)["gateway"]["ports"]
    assert port == "127.0.0.1:8000:8000", "the gateway is published on loopback by default"
    (port,) = services(compose)["prometheus"]["ports"]
    assert port == "127.0.0.1:9090:9090", "Prometheus (UI, API) is published on loopback by default"
    assert not any(svc.get("network_mode") == "host" for svc in services(compose).values())


def test_every_long_running_service_has_a_healthcheck_and_starts_in_order(compose: dict[str, Any]) -> None:
    svcs = services(compose)
    for name in START_ORDER:
        assert svcs[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for before, after in itertools.pairwise(START_ORDER):
        deps = svcs[after].get("depends_on", {})
        assert deps.get(before, {}).get("condition") == "service_healthy", f"{after} must wait for {before} healthy"
    # The one-shot topic creation runs between Kafka and the Spark job, like the launcher's topic step.
    assert svcs["topic"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert svcs["spark"]["depends_on"]["topic"]["condition"] == "service_completed_successfully"
    assert svcs["topic"]["restart"] == "no"


@pytest.mark.parametrize("name", ["compose.yaml", "compose.secure.yaml"])  # the hostnet overlays repeat it
def test_the_topics_partitions_are_the_launchers_setting(name: str) -> None:
    """DEVICESTREAM_TOPIC_PARTITIONS (the launcher's topic_partitions) sizes the topic in every compose file."""
    doc = yaml.safe_load((REPO_ROOT / name).read_text())

    def partitions(env: dict[str, str]) -> str:
        argv = interpolate(doc, env)["services"]["topic"]["command"]
        return str(argv[argv.index("--partitions") + 1])

    assert partitions({}) == str(LauncherSettings.model_fields["topic_partitions"].default)
    assert partitions({"DEVICESTREAM_TOPIC_PARTITIONS": "12"}) == "12"


def test_the_data_volume_is_shared(compose: dict[str, Any]) -> None:
    svcs = services(compose)
    assert "data" in compose["volumes"]
    mounts = {name: svcs[name].get("volumes", []) for name in OUR_SERVICES}
    assert "data:/data" in mounts["spark"]
    assert "data:/data" in mounts["merger"]
    assert "data:/data:ro" in mounts["gateway"], "the gateway only reads spark/progress.json"
    for name in OUR_SERVICES:
        assert environment(svcs[name])["DEVICESTREAM_DATA_DIR"] == "/data"


def test_kafka_is_the_pinned_official_image_the_components_reach(compose: dict[str, Any]) -> None:
    kafka = services(compose)["kafka"]
    pom = (REPO_ROOT / "runtime/maven/kafka/pom.xml").read_text()
    version = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom).group(1)  # type: ignore[union-attr]
    assert kafka["image"] == f"apache/kafka:{version}", "the container runs the Kafka the embedded broker runs"
    assert re.fullmatch(r"4\.1\.\d+", version)
    env = environment(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    for name in OUR_SERVICES:
        assert environment(services(compose)[name])["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert "9092" in kafka["healthcheck"]["test"][-1]


# ---- settings: compose, the settings classes and .env.example agree ----------------------------


def test_env_example_lists_every_setting() -> None:
    listed = env_example_names()
    missing = sorted(set(settings_env_vars()) - listed)
    assert not missing, (
        f".env.example lacks {missing}: regenerate it with `python -m tests.deploy.settings_env > .env.example`"
    )
    unknown = sorted(listed - every_accepted_name() - set(COMPOSE_ONLY))
    assert not unknown, f".env.example names variables no settings class reads: {unknown}"


def test_every_variable_compose_passes_is_a_setting_listed_in_env_example(compose: dict[str, Any]) -> None:
    accepted, listed = every_accepted_name(), env_example_names()
    for name in OUR_SERVICES:
        for var in environment(services(compose)[name]):
            assert var in accepted, f"{name}: {var} is read by no settings class"
            assert var in listed, f"{name}: {var} is missing from .env.example"
    for var in compose_vars():
        assert var in listed, f"compose.yaml interpolates ${{{var}}}, which .env.example does not list"
        assert var in accepted or var in COMPOSE_ONLY, f"${{{var}}} is neither a setting nor a compose-only name"


def test_our_services_read_env_and_the_env_file_is_optional() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())["services"]
    for name in OUR_SERVICES:
        assert raw[name]["env_file"] == [{"path": ".env", "required": False}], name
    assert "env_file" not in raw["kafka"], "the Kafka image turns KAFKA_* variables into broker properties"


@pytest.mark.parametrize("name", OUR_SERVICES)
def test_the_container_settings_validate(name: str, compose: dict[str, Any], container_env: Any) -> None:
    env = environment(services(compose)[name])
    container_env(env)
    cls = SparkJobSettings if name == "spark" else HTTP_SERVICES[name][0]
    settings = cls(_env_file=None)  # type: ignore[call-arg]
    assert str(settings.data_dir) == "/data"
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    if name != "spark":
        assert settings.host == "0.0.0.0", f"{name} must listen on every interface of its container"
    if name == "gateway":
        assert isinstance(settings, GatewaySettings)
        assert settings.generator_base() == "http://generator:8001"
        assert settings.merger_base() == "http://merger:8002"
        assert settings.spark_check_pid is False, "the Spark driver's pid is in another container"


# ---- healthchecks hit real routes ------------------------------------------------------------------


def healthcheck_url(svc: dict[str, Any]) -> str:
    test = svc["healthcheck"]["test"]
    script = test[-1] if isinstance(test, list) else test
    m = re.search(r"https?://[^'\"\s)]+", script)
    assert m, f"no URL in healthcheck {shlex.join(test) if isinstance(test, list) else test}"
    return m.group(0)


@pytest.mark.parametrize("name", sorted(HTTP_SERVICES))
def test_http_healthchecks_ask_a_real_route_on_the_right_port(
    name: str, compose: dict[str, Any], container_env: Any
) -> None:
    svc = services(compose)[name]
    container_env(environment(svc))
    cls, app_module = HTTP_SERVICES[name]
    settings = cls(_env_file=None)  # type: ignore[call-arg]
    url = urlsplit(healthcheck_url(svc))
    assert url.hostname == "127.0.0.1" and url.port == settings.port  # type: ignore[attr-defined]
    assert url.path == "/readyz"
    app = __import__(app_module, fromlist=["create_app"]).create_app(settings)
    # from the OpenAPI document: FastAPI keeps an included router's routes out of app.routes
    assert "get" in app.openapi()["paths"].get(url.path, {}), f"{name} has no GET {url.path}"
    # The healthcheck runs the image's python: urlopen raises (exit 1) on a 503 as on a refused connection.
    assert svc["healthcheck"]["test"][:3] == ["CMD", "python", "-c"]


def test_spark_healthcheck_reads_the_jobs_progress_file(compose: dict[str, Any], container_env: Any) -> None:
    svc = services(compose)["spark"]
    container_env(environment(svc))
    progress = SparkJobSettings(_env_file=None).progress_file  # type: ignore[call-arg]
    script = svc["healthcheck"]["test"][-1]
    assert f"'{progress}'" in script
    assert "read_progress_or_none" in script and "d.state == 'running'" in script  # contract/progress.py
    assert "d.pid" in script, "a progress file left by an earlier container must not pass"


def test_spark_healthcheck_script_runs(tmp_path: Path, compose: dict[str, Any]) -> None:
    """The healthcheck's python (the image's, with the contract package), run against real progress
    files: running with a live pid passes, a stale, failed or missing one does not."""
    script = services(compose)["spark"]["healthcheck"]["test"][-1]
    progress = tmp_path / "progress.json"
    local = script.replace("/data/spark/progress.json", str(progress))

    def check(doc: dict[str, Any]) -> int:
        progress.write_text(json.dumps(doc))
        return subprocess.run([sys.executable, "-c", local], capture_output=True, cwd=REPO_ROOT, timeout=30).returncode

    assert check({"state": "running", "pid": os.getpid()}) == 0
    assert check({"state": "failed", "pid": os.getpid()}) == 1
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert check({"state": "running", "pid": dead.pid}) == 1
    progress.unlink()
    assert subprocess.run([sys.executable, "-c", local], cwd=REPO_ROOT, timeout=30).returncode == 1


# ---- images ------------------------------------------------------------------------------------


def dockerfile_lines(path: Path) -> list[str]:
    """Instructions with continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_there_is_a_services_image_and_a_spark_image(compose: dict[str, Any]) -> None:
    assert {p.name for p in DOCKERFILES} == {"services.Dockerfile", "spark.Dockerfile"}
    for name in OUR_SERVICES:
        dockerfile = services(compose)[name]["build"]["dockerfile"]
        assert (REPO_ROOT / dockerfile).exists()
        assert dockerfile == ("docker/spark.Dockerfile" if name == "spark" else "docker/services.Dockerfile")


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_pins_its_bases_and_runs_as_a_user(path: Path) -> None:
    lines = dockerfile_lines(path)
    stages = [line.split()[1] for line in lines if line.upper().startswith("FROM ")]
    assert stages
    for image in stages:
        _, _, tag = image.partition(":")
        assert tag and tag != "latest" and re.search(r"\d+\.\d+\.\d+", tag), f"{path.name}: unpinned base {image}"
    assert stages[-1].startswith("python:3.11.")
    final = lines[max(i for i, line in enumerate(lines) if line.upper().startswith("FROM ")) :]
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert users, f"{path.name}: the final stage runs as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    installs = [line for line in lines if "pip install" in line]
    assert all("[dev]" not in line and "-e " not in line for line in installs), "no dev extras, no editable install"
    assert any("-c constraints.txt" in line for line in installs), "dependencies come from the pinned set"


def test_spark_image_resolves_the_connector_from_the_same_pom_as_install() -> None:
    text = "\n".join(dockerfile_lines(REPO_ROOT / "docker/spark.Dockerfile"))
    install = (REPO_ROOT / "scripts/install.sh").read_text()
    assert "COPY runtime/maven/spark/pom.xml" in text
    assert "dependency:copy-dependencies" in text and "-DexcludeTransitive=true" in text
    assert "mvn_copy spark -DexcludeTransitive=true" in install
    assert "openjdk-17-jre-headless" in text
    launcher = (REPO_ROOT / "devicestream/specs.py").read_text()
    submit = (REPO_ROOT / "docker/spark-submit.sh").read_text()
    for flag in (
        "--master",
        "--name",
        "--driver-memory",
        "--jars",
        "spark.ui.showConsoleProgress=false",
        "spark.driver.defaultJavaOptions",
    ):
        assert flag in launcher and flag in submit, f"the container submits the job as the launcher does ({flag})"


def test_dockerignore_keeps_state_and_secrets_out_but_not_what_the_images_copy() -> None:
    ignored = [
        line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines() if line.strip()[:1] not in "#"
    ]
    for must in (".env", ".venv", ".jars", ".git", "var"):
        assert must in ignored, f".dockerignore must exclude {must}"
    copied = set()
    for path in DOCKERFILES:
        for line in dockerfile_lines(path):
            parts = line.split()
            if parts[0].upper() == "COPY" and not any(p.startswith("--from") for p in parts):
                copied.update(p for p in parts[1:-1] if not p.startswith("--"))
    for src in copied:
        assert (REPO_ROOT / src).exists(), f"COPY {src}: no such path"
        top = src.split("/")[0]
        assert top not in ignored and src not in ignored, f".dockerignore drops {src}, which an image copies"


# ---- the host-network override `make compose-test` runs -------------------------------------------

HOSTNET = REPO_ROOT / "compose.hostnet.yaml"
HOSTNET_PORTS = {
    "DEVICESTREAM_KAFKA_PORT": "19092",
    "DEVICESTREAM_KAFKA_CONTROLLER_PORT": "19093",
    "GATEWAY_PORT": "18000",
    "GENERATOR_PORT": "18001",
    "MERGER_PORT": "18002",
    "PROMETHEUS_PORT": "19090",
}


class _ComposeLoader(yaml.SafeLoader):
    """YAML with compose's `!reset` tag (drop what the base file set), loaded as a marker."""


_ComposeLoader.add_constructor("!reset", lambda loader, node: {"!reset": loader.construct_sequence(node)})


@pytest.fixture(scope="module")
def hostnet() -> dict[str, Any]:
    return interpolate(yaml.load(HOSTNET.read_text(), Loader=_ComposeLoader), HOSTNET_PORTS)


def test_hostnet_override_puts_every_service_on_loopback(compose: dict[str, Any], hostnet: dict[str, Any]) -> None:
    """Every service of compose.yaml, and no other, runs in the host's network namespace; nothing is
    published; every address a component listens on or dials is 127.0.0.1 on the chosen ports."""
    over = services(hostnet)
    assert set(over) == set(services(compose))
    assert all(svc["network_mode"] == "host" for svc in over.values())
    assert "networks" not in hostnet
    assert over["gateway"]["ports"] == {"!reset": []}, "the gateway's published port is dropped, not added to"
    text = json.dumps(hostnet)
    assert not re.search(r"\b(kafka|generator|merger):\d", text), "no service-name address survives"
    assert not re.search(r"0\.0\.0\.0", text)
    kafka = environment(over["kafka"])
    assert kafka["KAFKA_LISTENERS"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert kafka["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://127.0.0.1:19092"
    assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@127.0.0.1:19093"
    assert "127.0.0.1:19092" in over["topic"]["command"]
    for name in OUR_SERVICES:
        assert environment(over[name])["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:19092", name


@pytest.mark.parametrize("name", sorted(HTTP_SERVICES))
def test_hostnet_healthchecks_and_urls_follow_the_chosen_ports(
    name: str, compose: dict[str, Any], hostnet: dict[str, Any], container_env: Any
) -> None:
    """The override only moves addresses: the merged environment validates, and each healthcheck
    asks the same route as compose.yaml's, on the port the service now listens on."""
    base, over = services(compose)[name], services(hostnet)[name]
    container_env({**environment(base), **environment(over)})
    settings = HTTP_SERVICES[name][0](_env_file=None)  # type: ignore[call-arg]
    assert settings.host == "127.0.0.1"  # type: ignore[attr-defined]
    url = urlsplit(healthcheck_url(over))
    assert (url.hostname, url.port) == ("127.0.0.1", settings.port)  # type: ignore[attr-defined]
    assert url.path == urlsplit(healthcheck_url(base)).path
    assert over["healthcheck"]["test"][:3] == base["healthcheck"]["test"][:3]
    if name == "gateway":
        assert isinstance(settings, GatewaySettings)
        assert settings.generator_base() == "http://127.0.0.1:18001"
        assert settings.merger_base() == "http://127.0.0.1:18002"


def test_every_registry_image_has_a_debian_stand_in(compose: dict[str, Any]) -> None:
    """Where Docker Hub cannot be reached, compose_test.sh builds a stand-in for each base image the
    Dockerfiles and compose.yaml name: every one has its Dockerfile in docker/standins/, and each
    stand-in keeps what its original offers to our Dockerfiles and compose.yaml."""
    script = (REPO_ROOT / "scripts/compose_test.sh").read_text()
    froms = {line.split()[1] for p in DOCKERFILES for line in dockerfile_lines(p) if line.upper().startswith("FROM ")}
    images = froms | {svc["image"] for svc in services(compose).values()}
    for image in sorted(i for i in images if not i.startswith("devicestream-")):
        m = re.search(rf"{re.escape(image.split(':')[0])}:\*\) ensure_base \"\$image\" (\S+)", script)
        assert m, f"compose_test.sh has no stand-in for {image}"
        assert (REPO_ROOT / m.group(1)).exists(), m.group(1)
    standins = REPO_ROOT / "docker/standins"
    assert "python-is-python3" in (standins / "python.Dockerfile").read_text()  # `python` on PATH
    kafka = (standins / "kafka.Dockerfile").read_text()
    assert "--uid 1000" in kafka and "USER appuser" in kafka
    for tool in ("kafka-topics.sh", "kafka-broker-api-versions.sh"):  # what compose.yaml runs in it
        assert (standins / "kafka/bin" / tool).exists()
