"""The Prometheus alerting rules (deploy/prometheus/rules) are valid, wired into Prometheus's
configuration, and each alert is unit-tested by `promtool test rules` with at least one case
where it fires and one where it stays quiet."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = sorted((DEPLOY / "rules").glob("*.yml"))
TESTS = sorted((DEPLOY / "tests").glob("*.yml"))


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing (Debian's prometheus package: scripts/provision.sh)")
        pytest.skip("promtool is not installed (scripts/provision.sh installs it)")
    return found


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


def alert_names() -> set[str]:
    return {
        rule["alert"]
        for path in RULES
        for group in load(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def test_promtool_checks_the_rules() -> None:
    assert RULES, "no rule files"
    run = subprocess.run(
        [promtool(), "check", "rules", *map(str, RULES)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_promtool_unit_tests_pass() -> None:
    run = subprocess.run(
        [promtool(), "test", "rules", *(p.name for p in TESTS)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=DEPLOY / "tests",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("SUCCESS") == len(TESTS), run.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    tested_files: set[str] = set()
    for path in TESTS:
        spec = load(path)
        tested_files |= {(path.parent / f).resolve().name for f in spec["rule_files"]}
        for case in spec["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = alert_names()
    assert tested_files == {p.name for p in RULES}
    assert alerts - firing == set(), "alerts never seen firing"
    assert alerts - quiet == set(), "alerts never seen quiet"
    assert (firing | quiet) - alerts == set(), "tests of alerts that do not exist"


def test_prometheus_loads_the_rules_and_compose_mounts_them() -> None:
    config = load(DEPLOY / "prometheus.yml")
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    compose = load(DEPLOY.parents[1] / "docker-compose.yml")
    volumes = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/rules:/etc/prometheus/rules:ro" in volumes
    # Per-queue series (the queue alerts need the `queue` label) come from /metrics/per-object.
    [rabbit] = [job for job in config["scrape_configs"] if job["job_name"] == "rabbitmq"]
    assert rabbit["metrics_path"] == "/metrics/per-object"
