"""The benchmark's reading of the whole machine's CPU (/proc/stat): how busy it was, and how
much the host took for others (steal), so a level measured on a slower moment says so."""

from __future__ import annotations

import pytest

from benchmarks import probes


def test_machine_share_counts_busy_and_stolen_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("benchmarks.probes.os.cpu_count", lambda: 2)
    # user nice system idle iowait irq softirq steal (then guest fields, not counted)
    before = probes.machine_ticks("cpu  100 0 50 800 10 5 5 30 0 0\ncpu0 1 2 3\n")
    after = probes.machine_ticks("cpu  300 0 150 1000 10 15 15 110 0 0\ncpu0 1 2 3\n")
    assert before == (160, 30, 1000)
    busy, stolen = probes.machine_share(before, after)
    # 320 busy ticks and 80 stolen of 600 in all, on 2 cores.
    assert busy == pytest.approx(320 / 600 * 2)
    assert stolen == pytest.approx(80 / 600 * 2)


def test_machine_ticks_reads_this_machine() -> None:
    busy, steal, total = probes.machine_ticks()
    assert 0 <= busy <= total and 0 <= steal <= total
