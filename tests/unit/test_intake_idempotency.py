"""What a retry with an Idempotency-Key does, decided from the key's record alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.intake.idempotency import (
    LEASE,
    KeyRecord,
    KeyReused,
    Next,
    StillRunning,
    fingerprint,
    next_step,
)

NOW = datetime(2026, 12, 1, 2, tzinfo=UTC)


def test_the_same_body_in_any_key_order_has_the_same_fingerprint() -> None:
    assert fingerprint({"a": 1, "b": [1, "ư"]}) == fingerprint({"b": [1, "ư"], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_a_retry_replays_waits_or_takes_over() -> None:
    claimed = KeyRecord("k", "h", NOW - timedelta(seconds=1))
    assert next_step(claimed, "h", NOW) is Next.WAIT
    assert next_step(KeyRecord("k", "h", NOW, answer={"code": "x"}), "h", NOW) is Next.REPLAY
    assert next_step(claimed, "h", NOW + LEASE) is Next.TAKE_OVER
    answered_late = KeyRecord("k", "h", NOW - 2 * LEASE, answer={"code": "x"})
    assert next_step(answered_late, "h", NOW) is Next.REPLAY


def test_another_body_is_a_conflict_and_a_vanished_key_still_running() -> None:
    with pytest.raises(KeyReused):
        next_step(KeyRecord("k", "h", NOW, answer={"code": "x"}), "other", NOW)
    with pytest.raises(StillRunning):
        next_step(None, "h", NOW)
