"""The deployment files, kept honest without Docker: ``deploy/compose.yaml``,
``deploy/nginx.conf``, ``deploy/.env.example`` and the ``Dockerfile``.

The files are read as data (PyYAML for compose, the instructions of the Dockerfile, the
upstream block of nginx.conf) and checked against pdp itself: every ``PDP_*`` variable is a
setting, the example secrets are refused by ``pdp.core.config.refuse_defaults`` and generated ones
accepted, the image's commands exist and its health probe is a route of the app. Then the
commands the containers would run are run here, outside Docker: ``pdp db upgrade`` (the
``migrate`` service), ``pdp clients add`` and ``pdp serve`` with a compose instance's own
environment (secrets generated, the database a temporary SQLite file or the test PostgreSQL,
Redis on the loopback when it answers), probed with the image's and compose's health checks.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import subprocess
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from sqlalchemy.engine import make_url

from pdp.core.config import Settings, known_variables, refuse_defaults
from pdp.core.errors import ConfigurationError

from support.databases import new_database
from support.servers import ALL, add_key, free_port, pdp_command, run_pdp, running, server_env

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
NGINX = DEPLOY / "nginx.conf"
ENV_EXAMPLE = DEPLOY / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"

SECRETS = ("PDP_JWT_SECRET", "PDP_LOG_MASK_KEY", "PDP_AUDIT_KEY")
REQUIRED = {"PDP_ENV", "PDP_DATABASE_URL", "PDP_RATE_LIMIT_STORAGE", *SECRETS}
SERVE_OPTIONS = {"PDP_BIND", "PDP_WORKERS"}  # read by `pdp serve`, not by Settings
REDIS_ENV = "PDP_TEST_REDIS_URL"

# Talk to 127.0.0.1 directly, whatever http_proxy the environment sets.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- reading the files -------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    """deploy/compose.yaml as data (YAML anchors and merge keys resolved)."""
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``environment``, mapping or list form, as strings (not interpolated)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def pdp_image() -> str:
    """The image of the one-shot ``migrate`` service: the pdp image."""
    image: str = services()["migrate"]["image"]
    return image


def instances() -> dict[str, dict[str, Any]]:
    """The services running ``pdp serve``: the pdp image with its default command."""
    return {
        name: s
        for name, s in services().items()
        if s.get("image") == pdp_image() and s.get("command") in (None, ["serve"], "serve")
    }


_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:[-?])(?P<arg>[^}]*))?\}")


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?message}``; raise KeyError
    for a required variable that is unset or empty."""

    def value(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        given = variables.get(name, "")
        if given:
            return given
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return arg if op == ":-" else ""

    assert "$$" not in text, "escaped dollars: extend interpolate()"
    return _VARIABLE.sub(value, text)


def resolved(service: Mapping[str, Any], variables: Mapping[str, str]) -> dict[str, str]:
    """A service's environment as its container would get it from ``variables`` (deploy/.env)."""
    return {k: interpolate(v, variables) for k, v in environment(service).items()}


def env_example() -> dict[str, str]:
    """The assignments of deploy/.env.example (comments left out)."""
    pairs = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def strings(node: object) -> Iterator[str]:
    """Every key and value of parsed YAML that is a string (comments are gone)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def required_variables() -> set[str]:
    """The variables compose.yaml insists on (``${NAME:?…}``)."""
    return {
        m["name"]
        for text in strings(compose())
        for m in _VARIABLE.finditer(text)
        if m["op"] == ":?"
    }


def generated() -> dict[str, str]:
    """A deploy/.env as the README says to make one."""
    return {name: secrets.token_urlsafe(32) for name in env_example()}


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, (KEYWORD, arguments), continuation lines joined."""
    instructions, pending = [], ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, args = (pending + line).strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    return instructions


def runtime_stage() -> list[tuple[str, str]]:
    """The instructions of the last stage (the image that runs)."""
    steps = dockerfile()
    start = max(i for i, (kw, _) in enumerate(steps) if kw == "FROM")
    return steps[start:]


def exec_form(instruction: str) -> list[str]:
    """The JSON array of ENTRYPOINT, CMD or HEALTHCHECK ... CMD in the runtime stage."""
    for keyword, args in runtime_stage():
        if keyword == instruction:
            command = args.split(" CMD ", 1)[1] if keyword == "HEALTHCHECK" else args
            argv = json.loads(command)
            assert isinstance(argv, list), f"{instruction} is not in exec form: {args}"
            return [str(a) for a in argv]
    raise AssertionError(f"no {instruction} in the Dockerfile's runtime stage")


def image_env() -> dict[str, str]:
    """The runtime stage's ENV (KEY=value forms)."""
    env = {}
    for keyword, args in runtime_stage():
        if keyword == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(args))
    return env


def upstreams() -> dict[str, list[str]]:
    """nginx.conf's upstream blocks: name → the addresses of their ``server`` lines."""
    text = re.sub(r"#.*", "", NGINX.read_text(encoding="utf-8"))
    return {
        m["name"]: re.findall(r"^\s*server\s+(\S+?)[\s;]", m["body"], re.M)
        for m in re.finditer(r"upstream\s+(?P<name>\S+)\s*\{(?P<body>[^}]*)\}", text)
    }


def setting_names() -> set[str]:
    return set(known_variables()) | SERVE_OPTIONS


def port(bind: str) -> int:
    return int(bind.rpartition(":")[2])


# -- compose.yaml ------------------------------------------------------------------------------


def test_two_instances_run_the_same_image_in_production() -> None:
    found = instances()
    assert len(found) >= 2, f"compose.yaml runs one pdp instance or none: {sorted(found)}"
    for name, service in found.items():
        env = environment(service)
        assert env.keys() >= REQUIRED, f"{name} lacks {sorted(REQUIRED - env.keys())}"
        assert env["PDP_ENV"] == "production", name
        assert "build" in service or "image" in service
        for secret in SECRETS:
            # Required with no default: a missing deploy/.env line stops compose.
            assert re.fullmatch(rf"\$\{{{secret}:\?[^}}]+\}}", env[secret]), (name, env[secret])
    assert len({s["image"] for s in found.values()}) == 1


def test_instances_reach_the_database_and_redis_of_compose() -> None:
    all_services = services()
    db = all_services["db"]
    assert str(db["image"]).startswith("postgres:16"), db["image"]
    db_env = resolved(db, {"POSTGRES_PASSWORD": "pw"})
    redis = all_services["redis"]
    assert str(redis["image"]).startswith("redis:7"), redis["image"]
    for name, service in [*instances().items(), ("migrate", all_services["migrate"])]:
        env = resolved(service, {**generated(), "POSTGRES_PASSWORD": "pw"})
        url = make_url(env["PDP_DATABASE_URL"])
        assert url.drivername == "postgresql+psycopg", name
        assert (url.host, url.port or 5432) == ("db", 5432), name
        assert (url.username, url.password, url.database) == (
            db_env["POSTGRES_USER"],
            db_env["POSTGRES_PASSWORD"],
            db_env["POSTGRES_DB"],
        ), name
        if name != "migrate":
            assert env["PDP_RATE_LIMIT_STORAGE"] == "redis://redis:6379/0", name


def test_instances_wait_for_the_schema_and_probe_readyz() -> None:
    all_services = services()
    migrate = all_services["migrate"]
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    assert all_services["db"]["healthcheck"]["test"], "the database has no health check"
    assert any(v.endswith(":/var/lib/postgresql/data") for v in all_services["db"]["volumes"])
    for name, service in instances().items():
        needs = {k: v["condition"] for k, v in service["depends_on"].items()}
        assert needs["migrate"] == "service_completed_successfully", name
        assert needs["db"] == "service_healthy", name
        probe = " ".join(service["healthcheck"]["test"])
        bind = environment(service).get("PDP_BIND", image_env()["PDP_BIND"])
        assert f"127.0.0.1:{port(bind)}/readyz" in probe, (name, probe)


def test_each_instance_has_a_decision_log_volume_of_its_own() -> None:
    declared = compose().get("volumes") or {}
    seen: dict[str, str] = {}
    for name, service in instances().items():
        log_dir = image_env()["PDP_DECISION_LOG_DIR"]
        assert environment(service).get("PDP_DECISION_LOG_DIR", log_dir) == log_dir, name
        mounts = {}  # target → source, of "source:target[:mode]"
        for mount in service.get("volumes", []):
            source, target = str(mount).split(":")[:2]
            mounts[target] = source
        assert log_dir in mounts, f"{name}: nothing mounted at {log_dir}"
        volume = mounts[log_dir]
        assert volume in declared, f"{name}: {volume} is not a named volume"
        assert volume not in seen, f"{name} shares {volume} with {seen.get(volume)}"
        seen[volume] = name


def test_each_instance_sums_the_metrics_of_its_processes() -> None:
    # The decision log's shipper is a process of its own: its figures reach /metrics only
    # through the multiprocess directory, a tmpfs of the instance's.
    for name, service in instances().items():
        directory = environment(service).get("PROMETHEUS_MULTIPROC_DIR")
        assert directory, name
        assert directory in service.get("tmpfs", []), name


def test_nginx_balances_exactly_the_instances_of_compose() -> None:
    found = upstreams()
    text = NGINX.read_text(encoding="utf-8")
    passed_to = re.findall(r"proxy_pass\s+http://([^/;\s]+)", text)
    assert passed_to and set(passed_to) <= found.keys()
    for name in passed_to:
        expected = {
            f"{svc}:{port(environment(s).get('PDP_BIND', image_env()['PDP_BIND']))}"
            for svc, s in instances().items()
        }
        assert sorted(found[name]) == sorted(expected)
    assert re.search(r"proxy_set_header\s+X-Request-Id\s", text)
    assert "non_idempotent" not in re.sub(r"#.*", "", text), "POSTs must not be retried"
    lb = [s for s in services().values() if "ports" in s]
    assert len(lb) == 1 and str(lb[0]["image"]).startswith("nginx:"), "only nginx is published"
    assert any("nginx.conf:/etc/nginx/" in str(v) for v in lb[0]["volumes"])


def test_every_pdp_variable_named_is_a_setting() -> None:
    named = set()
    for path in (COMPOSE, ENV_EXAMPLE, DOCKERFILE):
        named |= set(re.findall(r"\bPDP_[A-Z0-9_]+", path.read_text(encoding="utf-8")))
    assert not named - setting_names(), f"not settings of pdp: {sorted(named - setting_names())}"


def test_env_example_names_every_required_variable() -> None:
    example = env_example()
    assert example.keys() == required_variables()
    assert set(SECRETS) | {"POSTGRES_PASSWORD"} <= example.keys()
    assert "secrets.token_urlsafe(32)" in ENV_EXAMPLE.read_text(encoding="utf-8")
    assert all(value.startswith("change-me") for value in example.values()), example


@pytest.mark.parametrize("name", sorted(instances()))
def test_env_example_values_are_refused_in_production(name: str) -> None:
    env = resolved(instances()[name], env_example())
    with pytest.raises(ConfigurationError) as refused:
        refuse_defaults(Settings.from_env(env))
    for secret in SECRETS:
        assert secret in str(refused.value)


@pytest.mark.parametrize("name", sorted(instances()))
def test_generated_secrets_are_accepted_in_production(name: str) -> None:
    settings = Settings.from_env(resolved(instances()[name], generated()))
    assert settings.production
    refuse_defaults(settings)


def test_a_missing_secret_stops_compose() -> None:
    variables = generated()
    del variables["PDP_AUDIT_KEY"]
    with pytest.raises(KeyError, match="PDP_AUDIT_KEY"):
        resolved(instances()["pdp1"], variables)


# -- Dockerfile --------------------------------------------------------------------------------


def test_dockerfile_builds_a_wheel_then_runs_as_non_root() -> None:
    stages = [args for kw, args in dockerfile() if kw == "FROM"]
    assert len(stages) >= 2, "not multi-stage"
    runtime = runtime_stage()
    users = [args for kw, args in runtime if kw == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(kw == "RUN" and "pip wheel" in args for kw, args in dockerfile())
    assert any(kw == "RUN" and "pdp[postgres]" in args for kw, args in dockerfile())
    env = image_env()
    assert env["PDP_BIND"] == "0.0.0.0:8000"
    volumes = [json.loads(args) for kw, args in runtime if kw == "VOLUME"]
    assert [env["PDP_DECISION_LOG_DIR"]] in volumes


def test_dockerfile_copies_every_package_of_the_wheel() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = set()
    for keyword, args in dockerfile():
        if keyword == "COPY" and "--from" not in args:
            sources = shlex.split(args)[:-1]
            copied |= {s.rstrip("/") for s in sources}
    assert "." in copied or (packages | {"pyproject.toml", "README.md"}) <= copied, copied
    assert all((ROOT / s).exists() for s in copied)


@pytest.mark.parametrize(
    "args",
    [["serve"], ["db", "upgrade"], ["clients", "add"]],
    ids=["serve", "db-upgrade", "clients-add"],
)
def test_the_image_commands_exist(args: list[str]) -> None:
    """ENTRYPOINT + CMD (pdp serve), and what the README runs with `docker run`."""
    entrypoint, cmd = exec_form("ENTRYPOINT"), exec_form("CMD")
    assert [*entrypoint, *cmd] == ["pdp", "serve"]
    done = subprocess.run(
        [*pdp_command(), *args, "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout


def test_the_health_check_probes_a_route_of_the_app(app: Flask) -> None:
    probe = " ".join(exec_form("HEALTHCHECK"))
    paths = re.findall(r"127\.0\.0\.1:\{?\w*\}?(/[\w/]+)", probe)
    assert paths == ["/readyz"], probe
    assert "/readyz" in {rule.rule for rule in app.url_map.iter_rules()}


# -- the same commands, outside Docker ---------------------------------------------------------


def redis_url() -> str | None:
    """The test Redis (PDP_TEST_REDIS_URL, else 127.0.0.1:6379/15) if it answers."""
    import redis

    url = os.environ.get(REDIS_ENV, "redis://127.0.0.1:6379/15")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
    except (redis.RedisError, OSError):
        if os.environ.get(REDIS_ENV):
            pytest.fail(f"{REDIS_ENV} is set but Redis does not answer at {url}")
        return None
    return url


@pytest.fixture
def database_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    """SQLite: a file not created yet (``pdp db upgrade`` makes it). PostgreSQL: the session's
    test database, emptied."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'pdp.sqlite3'}"
    return new_database(request, backend, tmp_path)


@pytest.fixture
def instance_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """pdp1's environment as compose gives it, with a generated deploy/.env, pointed at the
    test's database, decision-log directory and Redis (else the rate limit off)."""
    env = server_env(tmp_path)
    # Production values, not the e2e tests' (compose sets neither).
    for name in ("PDP_DECISION_LOG", "PDP_RATE_LIMIT"):
        env.pop(name, None)
    env.update(resolved(instances()["pdp1"], generated()))
    metrics = tmp_path / "metrics"  # the container's tmpfs
    metrics.mkdir()
    env.update(
        PDP_DATABASE_URL=database_url,
        PDP_DECISION_LOG_DIR=str(tmp_path / "decision-log"),
        PROMETHEUS_MULTIPROC_DIR=str(metrics),
    )
    shared = redis_url()
    if shared:
        env["PDP_RATE_LIMIT_STORAGE"] = shared
    else:
        env.update(PDP_RATE_LIMIT="off", PDP_RATE_LIMIT_STORAGE="memory://")
    return env


def probe(argv: list[str], env: Mapping[str, str], cwd: Path) -> int:
    """Run a health-check command; its exit status."""
    return subprocess.run(
        argv, env=dict(env), cwd=cwd, capture_output=True, timeout=30, check=False
    ).returncode


def get(url: str, headers: Mapping[str, str]) -> tuple[int, dict[str, Any], str]:
    """A request; (status, JSON body, X-Request-Id of the answer)."""
    request = urllib.request.Request(url, headers=dict(headers))
    try:
        with _opener.open(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read()), reply.headers["X-Request-Id"]
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read()), exc.headers["X-Request-Id"]


@pytest.mark.e2e
def test_an_instance_serves_with_its_compose_environment(
    instance_env: dict[str, str], tmp_path: Path
) -> None:
    migrate_env = {**instance_env, **resolved(services()["migrate"], generated())}
    migrate_env["PDP_DATABASE_URL"] = instance_env["PDP_DATABASE_URL"]
    command = services()["migrate"]["command"]
    assert "schema up to date" in run_pdp(command, migrate_env, tmp_path)
    key = add_key(instance_env, tmp_path, "deploy-test", ALL)
    assert port(instance_env["PDP_BIND"]) == 8000
    healthcheck = exec_form("HEALTHCHECK")
    compose_check = instances()["pdp1"]["healthcheck"]["test"][1:]
    with running(exec_form("CMD"), instance_env, tmp_path) as server:
        status, ready, _ = get(server.base_url + "/readyz", {})
        assert (status, ready["status"]) == (200, "ready"), ready
        server.api_key = key
        answer = server.check(user="nobody.here", service=ALL.split(",")[0])
        assert answer["allowed"] is False
        assert answer["reason"]["code"] == "UNKNOWN_USER"
        # nginx passes X-Request-Id on: the instance keeps it and answers with it.
        status, _, echoed = get(server.base_url + "/readyz", {"X-Request-Id": "deploy-test-1"})
        assert (status, echoed) == (200, "deploy-test-1")
        # The image's and compose's probes, pointed at this server's port.
        served_on = f"127.0.0.1:{port(server.base_url)}"
        assert probe(healthcheck, {**instance_env, "PDP_BIND": served_on}, tmp_path) == 0
        local_check = [a.replace("127.0.0.1:8000", served_on) for a in compose_check]
        assert probe(local_check, instance_env, tmp_path) == 0
    nobody = f"127.0.0.1:{free_port()}"
    assert probe(healthcheck, {**instance_env, "PDP_BIND": nobody}, tmp_path) != 0


@pytest.mark.e2e
def test_an_instance_refuses_the_example_secrets(
    instance_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**instance_env, **{k: v for k, v in env_example().items() if k in SECRETS}}
    run_pdp(["db", "upgrade"], env, tmp_path)
    done = subprocess.run(
        [*pdp_command(), "serve", "--bind", f"127.0.0.1:{free_port()}"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "PDP_ENV=production refuses to start" in done.stderr
    assert all(secret in done.stderr for secret in SECRETS), done.stderr
