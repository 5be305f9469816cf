"""docker-compose.yml, checked statically (no Docker engine runs where the tests run)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from loader import __version__
from loader.devdb.provision import TIMESCALEDB_IMAGE
from loader.simulate import ANOMALIES

REPO = Path(__file__).resolve().parent.parent
COMPOSE_TEXT = (REPO / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
TSFLEET_SERVICES = ("migrate", "alert-runner", "consumer", "simulate")
VARIABLE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def with_defaults(value: str) -> str:
    """The value as compose gives it with an empty .env: ${X:-d} -> d, ${X:?msg} -> REQUIRED."""
    def substitute(match: re.Match[str]) -> str:
        op = match["op"] or ""
        if op.endswith("-"):
            return match["arg"]
        return "REQUIRED" if op.endswith("?") else ""
    return VARIABLE.sub(substitute, value.replace("$$", "\0")).replace("\0", "$")


def command_text(service: dict) -> str:
    parts = []
    for key in ("entrypoint", "command"):
        value = service.get(key) or []
        parts.append(value if isinstance(value, str) else " ".join(value))
    return " ".join(parts)


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: with_defaults(str(v)) for k, v in env.items()}


def test_every_image_is_pinned_to_an_exact_version() -> None:
    for name, service in SERVICES.items():
        image = service.get("image")
        assert image, f"service {name} has no image"
        repo, _, tag = image.partition(":")
        assert tag and tag != "latest", f"{name}: image {image} is not pinned"
        assert re.search(r"\d+\.\d+", tag), f"{name}: tag {tag} names no version"


def test_one_tsfleet_image_built_once_and_tagged_with_the_package_version() -> None:
    images = {SERVICES[name]["image"] for name in TSFLEET_SERVICES}
    assert images == {f"tsfleet:{__version__}"}
    assert all(SERVICES[name].get("build") == "." for name in TSFLEET_SERVICES)
    dockerfile = (REPO / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert bases and all(re.match(r"python:\d+\.\d+\.\d+-slim-bookworm$", b) for b in bases)
    assert re.search(r"^USER\s+(?!root)\w+", dockerfile, flags=re.MULTILINE), "runs as root"


def test_nothing_is_installed_when_a_container_starts() -> None:
    for name, service in SERVICES.items():
        text = command_text(service)
        assert not re.search(r"\b(pip|pip3|apt-get|apk)\b", text), f"{name} installs at start"
        assert "/src" not in text and "cp -r" not in text, name
    for name in TSFLEET_SERVICES:
        mounts = " ".join(SERVICES[name].get("volumes", []))
        assert "./:" not in mounts, f"{name} mounts the checkout instead of using the image"


def test_database_is_the_official_community_image_the_harness_uses() -> None:
    assert SERVICES["timescaledb"]["image"] == TIMESCALEDB_IMAGE
    assert SERVICES["timescaledb"]["image"].startswith("timescale/timescaledb:")
    readme = (REPO / "README.md").read_text()
    assert TIMESCALEDB_IMAGE.split(":")[1].split("-")[0] in readme, "README: tested versions"


def test_no_service_but_migrate_connects_as_a_superuser_or_the_owner() -> None:
    owner_users = {"postgres", "tsfleet_owner",
                   environment(SERVICES["timescaledb"]).get("POSTGRES_USER", "postgres")}
    owner_password = SERVICES["timescaledb"]["environment"]["POSTGRES_PASSWORD"]
    connecting = []
    for name, service in SERVICES.items():
        raw = service.get("environment") or {}
        env = environment(service)
        if "DATABASE_URL" in env:
            connecting.append(name)
            user = urlsplit(env["DATABASE_URL"]).username
            assert user, f"{name}: DATABASE_URL names no user"
            assert urlsplit(env["DATABASE_URL"]).password is None, f"{name}: password in URL"
            if name == "migrate":
                assert user in owner_users, "migrate must run as the owner"
            else:
                assert user not in owner_users, f"{name} connects as {user}"
        if name not in ("migrate", "timescaledb"):
            assert "POSTGRES_PASSWORD" not in " ".join(map(str, raw.values())), name
            assert raw.get("PGPASSWORD") != owner_password, name
    assert set(TSFLEET_SERVICES) <= set(connecting)
    datasource = yaml.safe_load(
        (REPO / "grafana/provisioning/datasources/tsfleet.yaml").read_text())["datasources"][0]
    assert datasource["user"] not in owner_users
    assert datasource["user"] == environment(SERVICES["migrate"])["TSFLEET_GRAFANA_DB_USER"]


def test_migrate_creates_every_login_the_other_services_use() -> None:
    migrate = environment(SERVICES["migrate"])
    assert "tsfleet migrate" in command_text(SERVICES["migrate"])
    assert "tsfleet logins --require-all" in command_text(SERVICES["migrate"])
    assert SERVICES["migrate"].get("restart") == "no"
    for name in ("alert-runner", "consumer", "simulate"):
        user = urlsplit(environment(SERVICES[name])["DATABASE_URL"]).username
        assert user in migrate.values(), f"migrate does not create {name}'s login {user}"
        password = SERVICES[name]["environment"]["PGPASSWORD"]
        assert password in SERVICES["migrate"]["environment"].values(), name


def test_every_published_port_is_bound_to_localhost_by_default() -> None:
    published = 0
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            published += 1
            assert isinstance(port, str), f"{name}: write ports as HOST_IP:HOST:CONTAINER"
            parts = with_defaults(port).split(":")
            assert len(parts) == 3 and parts[0] == "127.0.0.1", f"{name}: {port}"
    assert published >= 3


def test_no_password_has_a_default_and_env_example_documents_every_variable() -> None:
    example = (REPO / ".env.example").read_text()
    documented = dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", example, flags=re.MULTILINE))
    used = {m["name"] for m in VARIABLE.finditer(COMPOSE_TEXT)}
    assert used - set(documented) == set(), "document these in .env.example"
    for match in VARIABLE.finditer(COMPOSE_TEXT):
        if "PASSWORD" in match["name"]:
            assert match["op"] == ":?", f"${{{match['name']}}} must be required, no default"
    assert {k: v for k, v in documented.items() if "PASSWORD" in k and v} == {}
    assert ".env" in (REPO / ".gitignore").read_text().split()


def test_database_healthcheck_asks_over_tcp() -> None:
    test = " ".join(SERVICES["timescaledb"]["healthcheck"]["test"])
    assert re.search(r"pg_isready .*-h 127\.0\.0\.1", test)


def test_long_running_services_have_healthchecks_and_the_database_a_named_volume() -> None:
    db = SERVICES["timescaledb"]
    volume = db["volumes"][0].split(":")[0]
    assert volume in COMPOSE["volumes"], "the database must keep its data in a named volume"
    for name, service in SERVICES.items():
        if service.get("restart") not in ("no", None):
            assert "healthcheck" in service, name
    for name in ("alert-runner", "consumer"):
        assert SERVICES[name]["healthcheck"]["test"] == ["CMD", "tsfleet", "health"], name
    assert "TSFLEET_NATS_URL" in SERVICES["consumer"]["environment"], "health checks NATS too"


def test_every_dependency_waits_for_health_or_completion() -> None:
    for name, service in SERVICES.items():
        depends = service.get("depends_on", {})
        assert not isinstance(depends, list), f"{name}: depends_on needs conditions"
        for target, rule in depends.items():
            assert target in SERVICES, f"{name} depends on unknown service {target}"
            expected = ("service_completed_successfully"
                        if SERVICES[target].get("restart") == "no" else "service_healthy")
            assert rule["condition"] == expected, f"{name} -> {target}"
    assert "migrate" in SERVICES["grafana"]["depends_on"], "Grafana's login comes from migrate"


def test_nats_requires_a_user_and_streams_have_retention_limits() -> None:
    config = (REPO / "nats/nats-server.conf").read_text()
    assert re.search(r"authorization\s*\{[^}]*user:\s*\$NATS_USER[^}]*password:\s*\$NATS_PASSWORD",
                     config)
    consumer_url = environment(SERVICES["consumer"])["TSFLEET_NATS_URL"]
    assert urlsplit(consumer_url).username and urlsplit(consumer_url).password
    setup = (REPO / "nats/ensure-streams.sh").read_text()
    for stream in ("TELEMETRY", "TELEMETRY_DLQ", "TELEMETRY_ASSET"):
        assert re.search(rf"^ensure {stream} ", setup, flags=re.MULTILINE), stream
    assert setup.count('--max-age "$TSFLEET_STREAM_MAX_AGE"') == 2  # add and edit
    assert setup.count('--max-bytes "$TSFLEET_STREAM_MAX_BYTES"') == 2
    streaming = (REPO / "docs/streaming.md").read_text()
    assert "TSFLEET_STREAM_MAX_AGE" in streaming and "TSFLEET_STREAM_MAX_BYTES" in streaming
    assert "--no-create-streams" in command_text(SERVICES["consumer"])


def test_the_demo_profile_runs_simulate_as_the_ingest_login_and_nothing_else_is_in_it() -> None:
    profiled = {name: service["profiles"] for name, service in SERVICES.items()
                if "profiles" in service}
    assert profiled == {"simulate": ["demo"]}, "`docker compose up` without --profile: no demo"
    simulate = SERVICES["simulate"]
    assert urlsplit(environment(simulate)["DATABASE_URL"]).username == \
        environment(SERVICES["migrate"])["TSFLEET_INGEST_DB_USER"]
    assert simulate["environment"]["PGPASSWORD"] == \
        SERVICES["migrate"]["environment"]["TSFLEET_INGEST_DB_PASSWORD"]
    assert simulate["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert simulate["healthcheck"]["test"] == ["CMD", "tsfleet", "health"]


def test_the_simulate_command_line_is_one_the_command_accepts() -> None:
    """Parsed by the real click command (with compose's defaults substituted): live mode,
    now-relative, with enough history that every planted anomaly is under way at start."""
    from loader.commands.simulate import simulate

    argv = [with_defaults(str(part)) for part in SERVICES["simulate"]["command"]]
    assert argv[:2] == ["tsfleet", "simulate"]
    context = simulate.make_context("simulate", argv[2:])
    params = context.params
    assert params["follow"] is True and params["until"] is None and params["start"] is None
    assert params["nats_servers"] is None  # the normalized stream cannot carry quality flags
    latest_onset = max(anomaly.starts_after for anomaly in ANOMALIES)
    assert params["backfill"] >= latest_onset + timedelta(minutes=15)
    stale_after = 5 * 60  # seeded stale_device max_age: a slower interval looks silent
    assert params["interval"].total_seconds() < stale_after / 2
