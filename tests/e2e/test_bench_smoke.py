"""The end-to-end benchmark's short version: it completes and prints every figure (never its
speed: timings are not asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from shared import metrics
from tests.conftest import Isolation
from tests.e2e.harness import Services
from tools.devstack import ROOT

pytestmark = pytest.mark.e2e

LEGS = [
    "upload",
    "submit",
    "submit→assigned",
    "action receive",
    "action propose",
    "action approve",
    "decision→notified",
    "total",
]
FIGURES = [
    "dossiers/s end to end",
    "officer transitions/s",
    "peak RSS (VmHWM)",
    "CPU during the load (cores)",
    "database commands per dossier",
    "round trips per step",
    "database commands/s",
    "broker: persistent",
    "database: insert_one",
    "database: find_one by key",
    "Motcua as a share of bare",
    "### History templates",
    "### History load: 50 past dossiers",
    "### Cost against stored history",
    "chief's first page p50 / max",
    "the machine during the load",
    "journeys, ms per leg",
    "CPU ms per dossier (services, database)",
    "bare database gets/s",
]


def test_the_benchmark_runs_every_leg_with_history_and_prints_every_figure(
    isolation: Isolation,
) -> None:
    log_dir = Services.command_log_dir
    recording = {"MOTCUA_COMMAND_LOG_DIR": str(log_dir)} if log_dir else {}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.end_to_end",
            *("--count", "5", "--concurrency", "2", "--history", "0,50", "--templates", "5"),
            *("--probe", "2", "--idle-seconds", "2", "--timeout", "400"),
            *("--amqp-url", isolation.amqp_url, "--mongodb-url", isolation.mongodb_url),
            *("--database-prefix", isolation.database_prefix),
        ],
        cwd=ROOT,
        # The services it starts record their queries for the index-coverage test, as ours do.
        env={**os.environ, **recording},
        capture_output=True,
        text=True,
        timeout=520,
    )
    report = result.stdout
    assert result.returncode == 0, report[-4000:] + result.stderr[-4000:]
    for figure in FIGURES:
        assert figure in report, figure
    # Both levels: every dossier completed, every leg of both procedures with p50/p95/p99.
    assert report.count("| dossiers completed / failed | 5 / 0 |") == 2
    for procedure in ("all", "1.004194", "1.004222"):
        for leg in LEGS:
            if procedure == "1.004194" and leg == "action propose":
                continue  # one level: no proposal
            row = re.compile(
                rf"^\| {re.escape(procedure)} \| {leg} \| \d+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| "
                r"[\d.]+ \|$",
                re.M,
            )
            assert len(row.findall(report)) == 2, (procedure, leg)
    for service in ("intake", "review", "notify", "audit", "database"):
        assert re.search(rf"^\| {service} \| \d+ MB \| [\d.]+ \|$", report, re.M), service
    # The templates were snapshotted once audit had chained them (the settle outlasts its
    # grace): history holds chain links, not records still waiting in audit's live tail.
    assert re.search(r"^\| audit\.chain \| [1-9]\d* \| \d+ \|$", report, re.M), report[:3000]
    # History went in as cloned, the live collections did not grow, nothing was republished.
    assert "Events the services published meanwhile (must be 0): 0" in report
    assert "**≠**" not in report and "**moved**" not in report
    assert re.search(r"^\| 50 \| [\d.]+ \|", report, re.M)  # the curve's second level
    # Each level: the chief's first page (p50 / max ms), the idle database commands/s, the
    # CPU each dossier cost the services and the database, and the bare database's gets/s
    # then (the machine's speed at that level).
    curve = r"\| [\d.]+ / [\d.]+ \| [\d.]+ \| \d+, (\d+|n/a) \| \d+ \|$"
    assert len(re.findall(curve, report, re.M)) == 2, report[-3000:]
    if hasattr(metrics, "DB_COMMANDS"):  # the shared client counts its commands
        assert re.search(r"^\| 1\.004194 action receive \| [\d.]+ \|", report, re.M)
        assert "| intake | n/a |" not in report
