"""docker-compose.yaml: valid against the Compose specification, and wired like the standalone path.

No container engine runs here, so the file is checked, not run: it is interpolated the way Compose does
(``${VAR:-default}``, ``$$``), validated against the Compose specification's JSON schema (vendored from
docker-compose 1.29.2, Apache-2.0, tests/data/compose_spec.json), and then its wiring is compared with
what ``make demo`` and the end-to-end test use: the DAG folder, the ``bloom_default`` connection, the
emulator's entry point and the Airflow components.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.e2e.stack import (
    AIRFLOW_COMPONENTS,
    CELERY,
    CELERY_SETTINGS,
    CELERY_TRIGGERERS,
    CELERY_WAIT_REQUESTS_PER_MINUTE,
    EMULATOR_MODULE,
    REPO,
    TRIGGERER_FAILOVER,
    PostgresCluster,
    component_commands,
    load_script,
)

COMPOSE_FILE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
SCHEMA_FILE = Path(__file__).parent / "data" / "compose_spec.json"
ENTRYPOINT = REPO / "scripts" / "docker-entrypoint.sh"

AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}
CELERY_SERVICES = {"redis", "airflow-worker", "airflow-triggerer-2"}
#: Every service that runs an Airflow component (all but postgres, redis, the emulator and the init job).
AIRFLOW_RUNNING = [*AIRFLOW_SERVICES, "airflow-triggerer-2", "airflow-worker"]

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's variable substitution (the subset this file may use), applied to every string."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        current = env.get(name)
        unset = current is None or (current == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return arg if unset else str(current)
        if op in (":?", "?"):
            if unset:
                raise ValueError(f"required variable {name} is missing: {arg}")
            return str(current)
        return current or ""

    leftover = _VARIABLE.sub("", value).replace("$$", "")
    assert "$" not in leftover, f"unsupported interpolation in {value!r}"
    return _VARIABLE.sub(substitute, value)


def load_compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    raw = yaml.safe_load(COMPOSE_FILE.read_text())  # resolves anchors and `<<` merge keys like Compose
    return interpolate(raw, env or {})


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def command_words(service: Mapping[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)


def test_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    validator = jsonschema.Draft201909Validator(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_the_schema_check_catches_mistakes(compose: dict[str, Any]) -> None:
    """Guard the guard: the vendored schema rejects what Compose rejects."""
    validator = jsonschema.Draft201909Validator(json.loads(SCHEMA_FILE.read_text()))
    broken = json.loads(json.dumps(compose))
    broken["services"]["airflow-scheduler"]["environment"]["AIRFLOW__CORE__LOAD_EXAMPLES"] = False
    broken["services"]["airflow-triggerer"]["healthcheck"]["intervall"] = "5s"
    assert len(list(validator.iter_errors(broken))) == 2


def test_interpolation_uses_the_environment_when_set() -> None:
    env = {"AIRFLOW_EXECUTOR": "CeleryExecutor", "AIRFLOW_JWT_SECRET": "s3cret", "BLOOM_API_KEY": "k"}
    services = load_compose(env)["services"]
    scheduler_env = services["airflow-scheduler"]["environment"]
    assert scheduler_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert scheduler_env["AIRFLOW__API_AUTH__JWT_SECRET"] == "s3cret"
    assert scheduler_env["BLOOM_API_KEY"] == "k"


def test_services_follow_airflows_official_shape(services: dict[str, dict[str, Any]]) -> None:
    expected = {"postgres", "airflow-init", "bloom-emulator", *AIRFLOW_SERVICES, *CELERY_SERVICES}
    assert set(services) == expected
    # Each Airflow component runs the same command as in the end-to-end test's real deployment.
    commands = {name: command_words(services[name]) for name in AIRFLOW_SERVICES}
    assert commands == {name: [component] for name, component in AIRFLOW_SERVICES.items()}
    assert sorted(AIRFLOW_SERVICES.values()) == sorted(AIRFLOW_COMPONENTS)
    assert command_words(services["airflow-worker"]) == ["celery", "worker"]


def test_local_executor_by_default_and_celery_as_a_profile(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        profiles = service.get("profiles")
        if name in CELERY_SERVICES:
            assert profiles == ["celery"], name
        else:
            assert not profiles, f"{name} must start without a profile"
            # A default service must not wait for one that only the celery profile starts.
            assert not CELERY_SERVICES & set(service.get("depends_on", {})), name
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert services["airflow-worker"]["environment"]["DUMB_INIT_SETSID"] == "0"


def test_celery_profile_runs_what_the_celery_end_to_end_test_runs() -> None:
    """`--profile celery` with AIRFLOW_EXECUTOR=CeleryExecutor: tests/e2e/test_celery_e2e.py's deployment."""
    services = load_compose({"AIRFLOW_EXECUTOR": CELERY})["services"]
    running = {name: services[name] for name in AIRFLOW_RUNNING}
    # The same processes: the four components, a second triggerer and `airflow celery worker`.
    expected = component_commands(CELERY, CELERY_TRIGGERERS)
    assert sorted(command_words(s) for s in running.values()) == sorted(expected.values())
    assert sum(command_words(s) == ["triggerer"] for s in running.values()) == CELERY_TRIGGERERS == 2
    # The same settings, on every Airflow process.
    for name, service in running.items():
        env = service["environment"]
        assert {k: env.get(k) for k in CELERY_SETTINGS} == CELERY_SETTINGS, name
        assert {k: env.get(k) for k in TRIGGERER_FAILOVER} == TRIGGERER_FAILOVER, name
    # The same kinds of broker, metadata DB and result backend (drivers named alike), at other addresses.
    env = running["airflow-worker"]["environment"]
    cluster = PostgresCluster(Path("unused"))
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].split("://")[0] == cluster.url.split("://")[0]
    assert (
        env["AIRFLOW__CELERY__RESULT_BACKEND"].split("://")[0]
        == cluster.celery_result_backend.split("://")[0]
    )
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://") and env[
        "AIRFLOW__CELERY__BROKER_URL"
    ].endswith("/0")
    # The same wait budget per triggerer on the shared key (the connection the entrypoint builds).
    env, _ = run_entrypoint(running["airflow-triggerer-2"]["environment"])
    extra = json.loads(env["AIRFLOW_CONN_BLOOM_DEFAULT"])["extra"]
    assert extra["wait_requests_per_minute"] == CELERY_WAIT_REQUESTS_PER_MINUTE == 40
    # Deferred tasks need a triggerer in every shape; the extra one only comes with the celery profile.
    assert "profiles" not in services["airflow-triggerer"]
    assert services["airflow-triggerer-2"]["healthcheck"] == services["airflow-triggerer"]["healthcheck"]


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name == "airflow-init":
            continue
        check = service.get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"
    assert "/_emulator/health" in " ".join(services["bloom-emulator"]["healthcheck"]["test"])
    for name in AIRFLOW_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["bloom-emulator"]["condition"] == "service_healthy"
        assert deps["airflow-init"]["condition"] == "service_completed_successfully"


def test_one_jwt_secret_and_one_fernet_key_for_all_components(services: dict[str, dict[str, Any]]) -> None:
    text = COMPOSE_FILE.read_text()
    for variable in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET"):
        assert text.count(f"{variable}:") == 1, f"{variable}: defined once, in the x-airflow-secrets anchor"
        values = {services[name]["environment"][variable] for name in AIRFLOW_RUNNING}
        assert len(values) == 1 and values != {""}, variable
    # HS512 wants at least 64 bytes of secret (PyJWT warns below that).
    assert len(services["airflow-scheduler"]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"]) >= 64
    assert "x-airflow-secrets" in yaml.safe_load(text)
    from cryptography.fernet import Fernet

    Fernet(services["airflow-scheduler"]["environment"]["AIRFLOW__CORE__FERNET_KEY"])  # a usable key


def test_dags_folder_is_dags_examples_as_in_the_standalone_path(services: dict[str, dict[str, Any]]) -> None:
    demo = load_script("demo")
    assert demo.DAGS_FOLDER == REPO / "dags_examples"
    assert Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) == demo.DAGS_FOLDER  # what the tests parse
    for name in AIRFLOW_RUNNING:
        service = services[name]
        target = service["environment"]["AIRFLOW__CORE__DAGS_FOLDER"]
        mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"]}
        assert (REPO / mounts[target]).resolve() == demo.DAGS_FOLDER, name
    dockerfile = DOCKERFILE.read_text()
    assert "COPY --chown=airflow:0 dags_examples /opt/airflow/dags" in dockerfile
    assert "AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/dags" in dockerfile


def test_emulator_service_runs_the_same_entry_point_as_the_demo(services: dict[str, dict[str, Any]]) -> None:
    emulator = services["bloom-emulator"]
    assert emulator["entrypoint"] == ["python", "-m", EMULATOR_MODULE]
    assert load_script("demo").EMULATOR_MODULE == EMULATOR_MODULE
    words = command_words(emulator)
    from airflow_provider_bloom.emulator.__main__ import config_from_args, parse_args

    config = config_from_args(
        parse_args(words)
    )  # the emulator's command line accepts what the service passes
    # The Bloom API is served to the network, the admin API (a test tool, no auth) only inside the
    # emulator's container: the Airflow containers cannot reconfigure it or read its state.
    assert not config.admin_allowed("172.18.0.5") and config.admin_allowed("127.0.0.1")
    assert "127.0.0.1:8787/_emulator/health" in " ".join(emulator["healthcheck"]["test"])
    assert config.fetch_url_origins == []
    port = words[words.index("--port") + 1]
    assert words[words.index("--host") + 1] == "0.0.0.0"
    assert emulator["ports"] == [f"127.0.0.1:{port}:{port}"]
    url = services["airflow-scheduler"]["environment"]["BLOOM_EMULATOR_URL"]
    assert url == f"http://bloom-emulator:{port}/api/v1"
    assert f"BLOOM_EMULATOR_URL=http://bloom-emulator:{port}/api/v1" in DOCKERFILE.read_text()


def test_airflow_components_reach_the_api_server_by_service_name(services: dict[str, dict[str, Any]]) -> None:
    url = services["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    assert url == "http://airflow-apiserver:8080/execution/"
    assert services["airflow-apiserver"]["ports"] == ["127.0.0.1:8080:8080"]  # loopback only


def test_image_entrypoint_wraps_the_official_one(services: dict[str, dict[str, Any]]) -> None:
    dockerfile = DOCKERFILE.read_text()
    assert 'ENTRYPOINT ["/usr/bin/dumb-init", "--", "/opt/bloom/docker-entrypoint.sh"]' in dockerfile
    copy = "COPY --chown=airflow:0 scripts/bloom_connection.py scripts/docker-entrypoint.sh /opt/bloom/"
    assert copy in dockerfile
    init_script = services["airflow-init"]["command"][-1]
    assert "exec /opt/bloom/docker-entrypoint.sh airflow version" in init_script
    assert services["airflow-init"]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    dockerignore = (REPO / ".dockerignore").read_text().split()
    assert {".venv", "output", ".git"} <= set(dockerignore)


#: ``python`` on PATH is this virtualenv's, as it is the image's Python in the container.
PATH = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def run_entrypoint(compose_env: Mapping[str, str], **extra: str) -> tuple[dict[str, Any], str]:
    """Run the image's entrypoint with the compose environment; the 'official entrypoint' dumps the env."""
    dump = "import json, os, sys; json.dump(dict(os.environ), sys.stdout)"
    env = {
        "PATH": PATH,
        **{k: str(v) for k, v in compose_env.items() if k.startswith(("BLOOM_", "AIRFLOW_CONN_"))},
        "AIRFLOW_BASE_ENTRYPOINT": sys.executable,
        **extra,
    }
    argv = ["bash", str(ENTRYPOINT), "-c", dump]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def test_bloom_connection_defaults_to_the_emulator_service(services: dict[str, dict[str, Any]]) -> None:
    env, stderr = run_entrypoint(services["airflow-triggerer"]["environment"])
    conn = json.loads(env["AIRFLOW_CONN_BLOOM_DEFAULT"])
    from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID

    assert conn["conn_type"] == "bloom"
    assert conn["host"] == "http://bloom-emulator:8787/api/v1"
    assert conn["password"].startswith("bloom_sk_")
    assert conn["extra"] == {
        "brand_session_id": DEFAULT_BRAND_ID,
        "wait_requests_per_minute": CELERY_WAIT_REQUESTS_PER_MINUTE,
    }
    assert "emulator" in stderr and conn["password"] not in stderr


def test_bloom_connection_points_at_bloom_when_a_key_is_set() -> None:
    key = "bloom_sk_live_do_not_print_9f8e7d"
    services = load_compose({"BLOOM_API_KEY": key, "BLOOM_BRAND_ID": "b-1"})["services"]
    env, stderr = run_entrypoint(services["airflow-scheduler"]["environment"])
    conn = json.loads(env["AIRFLOW_CONN_BLOOM_DEFAULT"])
    assert conn["host"] == "https://www.trybloom.ai/api/v1"
    assert conn["password"] == key
    assert conn["extra"]["brand_session_id"] == "b-1"
    assert key not in stderr


def test_an_explicit_connection_wins_and_a_key_without_brand_fails_loudly(
    services: dict[str, dict[str, Any]],
) -> None:
    explicit = json.dumps({"conn_type": "bloom", "host": "http://elsewhere/api/v1"})
    env, _ = run_entrypoint(services["airflow-scheduler"]["environment"], AIRFLOW_CONN_BLOOM_DEFAULT=explicit)
    assert env["AIRFLOW_CONN_BLOOM_DEFAULT"] == explicit
    done = subprocess.run(
        ["bash", str(ENTRYPOINT), "true"],
        env={"PATH": PATH, "BLOOM_API_KEY": "bloom_sk_x"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "BLOOM_BRAND_ID" in done.stderr and "bloom_sk_x" not in done.stderr


def test_a_wrong_wait_budget_fails_loudly() -> None:
    done = subprocess.run(
        ["bash", str(ENTRYPOINT), "true"],
        env={"PATH": PATH, "BLOOM_WAIT_REQUESTS_PER_MINUTE": "lots"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "BLOOM_WAIT_REQUESTS_PER_MINUTE" in done.stderr and "'lots'" in done.stderr
