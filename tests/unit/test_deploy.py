"""Docker cannot run here, so the compose file is checked against the code instead."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from shared.settings import SharedSettings, settings_table
from tools.devstack import ROOT
from tools.settings_doc import SETTINGS, markdown

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICE_SETTINGS: dict[str, type[BaseSettings]] = {
    name: cls for name, cls in SETTINGS if name in ("intake", "review", "notify", "audit", "portal")
}
"""The services' own settings (the others are shared, or a part of one: the portal's uploads)."""


def _env_names(cls: type[BaseSettings]) -> set[str]:
    return {var for var, _, _ in settings_table(cls)}


@pytest.mark.parametrize("name", sorted(SERVICE_SETTINGS))
def test_each_service_in_compose_matches_the_code(name: str) -> None:
    service: dict[str, Any] = COMPOSE["services"][name]
    context = ROOT / service["build"]["context"]
    dockerfile = context / service["build"]["dockerfile"]
    assert dockerfile.is_file()
    for copied in ("shared", "services", "deploy/roster.yaml", "uv.lock", "pyproject.toml"):
        assert copied in dockerfile.read_text()
        assert (context / copied).exists()

    assert service["command"] == ["python", "-m", f"services.{name}"]
    assert (ROOT / "services" / name / "__main__.py").is_file()

    settings = SERVICE_SETTINGS[name]
    env: dict[str, str] = service["environment"]
    known = _env_names(settings) | _env_names(SharedSettings)
    assert set(env) <= known, f"unknown settings: {set(env) - known}"
    port = int(env[f"MOTCUA_{name.upper()}_PORT"])
    assert port == settings.model_fields["port"].default
    assert env[f"MOTCUA_{name.upper()}_HOST"] == "0.0.0.0"
    published = [p.removeprefix("127.0.0.1:") for p in service["ports"]]
    assert f"{port}:{port}" in published
    if env.get("MOTCUA_PORTAL_DEVELOPMENT_SIGNIN") == "true":  # anyone may sign in as anyone
        assert service["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert f"127.0.0.1:{port}/readyz" in " ".join(service["healthcheck"]["test"])
    if name == "portal":
        # The portal keeps no database and uses no broker: it waits for the services it calls.
        assert set(service["depends_on"]) == {"intake", "review", "notify", "audit"}
        for other in service["depends_on"]:
            assert env[f"MOTCUA_PORTAL_{other.upper()}_URL"] == (
                f"http://{other}:{SERVICE_SETTINGS[other].model_fields['port'].default}"
            )
        return
    assert service["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert service["depends_on"]["mongodb"]["condition"] == "service_healthy"

    broker_user = COMPOSE["services"]["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_USER"]
    assert env["MOTCUA_AMQP_URL"].startswith(f"amqp://{broker_user}:")
    assert "@rabbitmq:5672/" in env["MOTCUA_AMQP_URL"]
    assert env["MOTCUA_MONGODB_URL"] == "mongodb://mongodb:27017/"


def test_compose_has_infrastructure_with_healthchecks_and_volumes() -> None:
    services = COMPOSE["services"]
    assert services["mongodb"]["image"].startswith("mongo:7")
    assert "management" in services["rabbitmq"]["image"]
    for infra in ("rabbitmq", "mongodb"):
        assert "healthcheck" in services[infra]
        volume = services[infra]["volumes"][0].split(":")[0]
        assert volume in COMPOSE["volumes"]
    notify_env = services["notify"]["environment"]
    assert notify_env["MOTCUA_NOTIFY_SMTP_HOST"] in services


def test_monitoring_assets_exist_and_scrape_every_service() -> None:
    for service in ("prometheus", "grafana"):
        for mount in COMPOSE["services"][service]["volumes"]:
            source = mount.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    scrape = (ROOT / "deploy/prometheus/prometheus.yml").read_text()
    for name, cls in SERVICE_SETTINGS.items():
        assert f"{name}:{cls.model_fields['port'].default}" in scrape
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/motcua-overview.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in ("motcua_events_published_total", "motcua_http_requests_total"):
        assert metric in exprs


# Settings whose README rows the lead pastes at merge (README.md is not the infra branch's to
# edit); the lead empties this set then.
def test_readme_lists_every_setting_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text()
    for row in markdown().splitlines()[2:]:
        assert row in readme, f"README.md lacks: {row}"


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme


def test_settings_doc_paths_are_relative() -> None:
    assert str(Path.home()) not in markdown()


def test_the_image_carries_every_file_a_setting_reads_by_default() -> None:
    """A default path under the project (the calendar, the national portal's status table…)
    must be copied into the image, or the service fails at start in a container."""
    copied = [
        part
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
        for part in line.split()[1:-1]
    ]
    missing = []
    for _, cls in SETTINGS:
        for name, field in cls.model_fields.items():
            default = field.default
            if not isinstance(default, Path) or not default.is_absolute():
                continue
            if not default.is_relative_to(ROOT) or ".run" in default.parts:
                continue
            relative = default.relative_to(ROOT).as_posix()
            if not any(relative == c or relative.startswith(c.rstrip("/") + "/") for c in copied):
                missing.append(f"{cls.__name__}.{name}: {relative}")
    assert missing == [], "add a COPY line to the Dockerfile"
