"""The short run of `make chaos` (benchmarks/chaos.py): a 3-node RabbitMQ cluster, two replicas
of every service, the end-to-end load, and meanwhile the node leading the queues stopped and
the database restarted (`make chaos` also kills every replica in turn; a replica killed is
already tested in test_faults.py and the replica tests, within the suite's time budget). Fails on any dossier
or event lost or duplicated, and if a fault's phase carried no dossier (it would prove nothing).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tools.devstack import ROOT

pytestmark = pytest.mark.e2e

FAULTS = ("broker", "database")


def rows(table: str) -> dict[str, list[str]]:
    """The fault table's rows: first cell (the fault, without its detail) → the other cells."""
    found = {}
    for line in table.splitlines():
        if line.startswith("| ") and not line.startswith("| fault") and "---" not in line:
            cells = [c.strip() for c in line.strip("|").split("|")]
            found[re.sub(r" \(.*\)$", "", cells[0]).strip("*")] = cells[1:]
    return found


def test_no_dossier_lost_or_duplicated_while_parts_fail() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.chaos",
            "--faults",
            ",".join(FAULTS),
            "--phase-seconds",
            "4",
            "--down-seconds",
            "1",
            "--concurrency",
            "4",
            "--drain",
            "60",
            "--settle",
            "30",
            "--timeout",
            "240",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=330,
        check=False,
    )
    report = f"{done.stdout}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, report
    table = rows(done.stdout)
    assert set(FAULTS) | {"none", "overall"} <= set(table), report
    for fault in FAULTS:
        submitted, assigned, decided, notified, audited, lost = table[fault][:6]
        assert int(submitted) >= 1, f"{fault}: no dossier during the fault\n{report}"
        assert submitted == assigned == decided == notified == audited, report
        assert lost == "0", report
        assert table[fault][6] == "0 / 0", report  # duplicated per dossier / per event
    overall = table["overall"]
    assert overall[5] == "**0**" and overall[6] == "**0 / 0**", report
