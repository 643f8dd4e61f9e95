"""The Prometheus alerting rules (deploy/prometheus/rules) are valid, wired into Prometheus's
configuration, and each alert is unit-tested by `promtool test rules` with at least one case
where it fires and one where it stays quiet; the Grafana dashboards' queries parse. Also the
metric names rules and dashboards read (`named_metrics`), which tests/e2e/test_metrics_named.py
checks against what the services export."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = sorted((DEPLOY / "rules").glob("*.yml"))
TESTS = sorted((DEPLOY / "tests").glob("*.yml"))
DASHBOARDS = sorted((DEPLOY.parent / "grafana" / "dashboards").glob("*.json"))
# Series Prometheus makes itself for every scrape target, not exported by anyone.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


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


def rule_exprs() -> dict[str, str]:
    """Each rule's expression, by rule name (alert or record)."""
    return {
        rule.get("alert") or rule["record"]: rule["expr"]
        for path in RULES
        for group in load(path)["groups"]
        for rule in group["rules"]
    }


def dashboard_exprs() -> dict[str, str]:
    """Each dashboard query, by `dashboard uid / panel title / refId`."""
    found = {}
    for path in DASHBOARDS:
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                found[f"{board['uid']} / {panel['title']} / {target['refId']}"] = target["expr"]
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals (label values)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    text = re.sub(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )  # label lists
    text = re.sub(r"\$\w+", " ", text)  # Grafana variables
    names = set(re.findall(r"(?<![\w.])([A-Za-z_:][\w:]*)\b(?!\s*\()", text))
    return {n for n in names if n.lower() not in KEYWORDS}


def named_metrics() -> dict[str, set[str]]:
    """Every metric a rule or dashboard reads, with where: recording rules' own outputs and
    Prometheus's per-target series left out."""
    recorded = {name for name in rule_exprs() if ":" in name}
    named: dict[str, set[str]] = {}
    for where, expr in {**rule_exprs(), **dashboard_exprs()}.items():
        for name in metric_names(expr) - recorded - SYNTHETIC:
            named.setdefault(name, set()).add(where)
    return named


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


def test_metric_names_are_read_out_of_promql() -> None:
    expr = (
        'sum by (unit, on_time) (rate(motcua_index_decided_total{on_time="true", q=~"a\\\\.b"}[5m]))'
        " / on(unit) group_left() scalar(motcua:target:ratio) > 0.5 and up == 0"
        " unless histogram_quantile(0.95, sum by (le) (rate(x_seconds_bucket[$__range])))"
    )
    assert metric_names(expr) == {
        "motcua_index_decided_total",
        "motcua:target:ratio",
        "up",
        "x_seconds_bucket",
    }
    assert metric_names("vector(0.95)") == set()


def test_every_dashboard_query_parses() -> None:
    """promtool checks each dashboard query as a recording rule (Grafana's $__range → 1h)."""
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    rules = [
        {"record": f"dashboard:q{i}", "expr": expr.replace("$__range", "1h")}
        for i, expr in enumerate(exprs.values())
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dashboards.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
        run = subprocess.run(
            [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
        )
    assert run.returncode == 0, run.stdout + run.stderr


def test_grafana_provisions_every_dashboard() -> None:
    provider = load(DEPLOY.parent / "grafana" / "provisioning" / "dashboards" / "motcua.yml")
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    uids = [json.loads(p.read_text(encoding="utf-8"))["uid"] for p in DASHBOARDS]
    assert sorted(uids) == ["motcua-index", "motcua-operations", "motcua-overview"]
