"""Docker cannot run here, so the compose file is checked against the code instead."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from shared.settings import SharedSettings, settings_table
from tools.devstack import BROKER_DEFINITIONS, BROKER_SERVICES, ROOT, broker_user
from tools.settings_doc import SETTINGS, markdown


def _load_users() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "load_users", BROKER_DEFINITIONS.parent / "load_users.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


load_users = _load_users()
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

    assert service["depends_on"]["broker-users"]["condition"] == "service_completed_successfully"
    # Its own broker user, with the password broker-users gives that user (same default).
    user, variable = broker_user(name), f"MOTCUA_BROKER_PASSWORD_{name.upper()}"
    given = COMPOSE["services"]["broker-users"]["environment"][variable]
    assert env["MOTCUA_AMQP_URL"] == f"amqp://{user}:{given}@rabbitmq:5672/"
    assert env["MOTCUA_MONGODB_URL"] == "mongodb://mongodb:27017/"


def test_compose_loads_one_broker_user_per_service() -> None:
    setup = COMPOSE["services"]["broker-users"]
    assert setup["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    source, target = setup["volumes"][0].split(":")[:2]
    assert (ROOT / source / "definitions.json").is_file()
    script = next(part for part in setup["command"] if part.endswith(".py"))
    assert script.startswith(target) and (ROOT / source / Path(script).name).is_file()
    admin = COMPOSE["services"]["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_USER"]
    assert setup["environment"]["MOTCUA_RABBITMQ_MANAGEMENT_USER"] == admin
    users = {u["name"] for u in json.loads(BROKER_DEFINITIONS.read_text())["users"]}
    assert users == {broker_user(s) for s in BROKER_SERVICES}
    for service in BROKER_SERVICES:  # no service connects as the administrator
        url = COMPOSE["services"][service]["environment"]["MOTCUA_AMQP_URL"]
        assert not url.startswith(f"amqp://{admin}:")


def test_broker_users_get_the_passwords_given_and_nothing_else_changes() -> None:
    definitions = json.loads(BROKER_DEFINITIONS.read_text())
    env = {f"MOTCUA_BROKER_PASSWORD_{s.upper()}": f"pw-{s}" for s in BROKER_SERVICES}
    rendered = load_users.with_passwords(definitions, env)
    assert {u["name"]: u["password"] for u in rendered["users"]} == {
        broker_user(s): f"pw-{s}" for s in BROKER_SERVICES
    }
    assert all("password_hash" not in u for u in rendered["users"])
    assert {k: v for k, v in rendered.items() if k != "users"} == {
        k: v for k, v in definitions.items() if k != "users"
    }
    with pytest.raises(ValueError, match="MOTCUA_BROKER_PASSWORD_AUDIT"):
        load_users.with_passwords(definitions, {**env, "MOTCUA_BROKER_PASSWORD_AUDIT": ""})


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


def copied_into_image() -> list[str]:
    """The sources of the Dockerfile's COPY lines."""
    return [
        part
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
        for part in line.split()[1:-1]
    ]


def test_the_image_carries_every_file_a_setting_reads_by_default() -> None:
    """A default path under the project (the calendar, the national portal's status table…)
    must be copied into the image, or the service fails at start in a container."""
    copied = copied_into_image()
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


def test_the_image_carries_every_tool_the_operations_guide_runs() -> None:
    """`python -m tools.X` in docs/operations.md runs in a pod: tools/X.py must be copied."""
    copied = copied_into_image()
    guide = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    run = set(re.findall(r"python -m tools\.([a-z_]+)", guide))
    assert {"setup", "backup"} <= run
    missing = sorted(t for t in run if f"tools/{t}.py" not in copied and "tools/" not in copied)
    assert missing == [], "add them to the Dockerfile's COPY of tools/"


def test_compose_publishes_every_port_on_loopback_only() -> None:
    """A trial stack on a desk PC must not open the broker's admin, the database or audit to
    the office network."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    published = {
        name: port
        for name, service in compose["services"].items()
        for port in service.get("ports", [])
    }
    assert published, "the stack publishes its ports"
    assert {n: p for n, p in published.items() if not str(p).startswith("127.0.0.1:")} == {}
    admin = compose["services"]["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_PASS"]
    assert admin.startswith("${MOTCUA_RABBITMQ_ADMIN_PASSWORD")
