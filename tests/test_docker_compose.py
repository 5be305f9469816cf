"""docker-compose.yml, checked statically (no Docker engine runs where the tests run)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from loader.devdb.provision import TIMESCALEDB_IMAGE

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_every_image_is_pinned_to_an_exact_version() -> None:
    for name, service in SERVICES.items():
        image = service.get("image")
        assert image, f"service {name} has no image"
        repo, _, tag = image.partition(":")
        assert tag and tag != "latest", f"{name}: image {image} is not pinned"
        assert re.search(r"\d", tag), f"{name}: tag {tag} names no version"


def test_database_is_the_official_community_image_the_harness_uses() -> None:
    assert SERVICES["timescaledb"]["image"] == TIMESCALEDB_IMAGE
    assert SERVICES["timescaledb"]["image"].startswith("timescale/timescaledb:")


def test_long_running_services_have_healthchecks_and_the_database_a_named_volume() -> None:
    db = SERVICES["timescaledb"]
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    volume = db["volumes"][0].split(":")[0]
    assert volume in COMPOSE["volumes"], "the database must keep its data in a named volume"
    for name, service in SERVICES.items():
        if service.get("restart") not in ("no", None) and name != "timescaledb":
            assert "healthcheck" in service or "depends_on" in service, name


def test_every_dependency_on_the_database_waits_for_it_to_be_healthy() -> None:
    for name, service in SERVICES.items():
        depends = service.get("depends_on", {})
        assert not isinstance(depends, list), f"{name}: depends_on needs conditions"
        for target, rule in depends.items():
            assert target in SERVICES, f"{name} depends on unknown service {target}"
            if target == "timescaledb":
                assert rule["condition"] == "service_healthy", name
            if target == "migrate":
                assert rule["condition"] == "service_completed_successfully", name


def test_migrate_service_runs_the_readme_command_once() -> None:
    migrate = SERVICES["migrate"]
    command = " ".join(migrate["command"])
    assert "yoyo apply --batch" in command
    assert "yoyo apply --batch" in (REPO / "README.md").read_text()
    assert migrate.get("restart") == "no"
    url = COMPOSE["x-database-url"]["DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://"), "yoyo needs the psycopg 3 driver named"
