"""The Delivery aggregate's decisions (pure): claim, outcomes, retries, resends, the log's pages."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.notify.domain import (
    Delivery,
    GiveUp,
    Retry,
    after_failure,
    claim,
    decode_cursor,
    encode_cursor,
    failed,
    log_key,
    log_page,
    new_delivery,
    outcome_key,
    resend_id,
    retrying,
    sent,
)
from services.notify.messages import SendError
from services.notify.routing import ChannelRoute, Planned
from tests.factories import approved_event, submitted_event

NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
PLANNED = Planned("e1:applicant:sms", "applicant", "sms", route=ChannelRoute(template="approved"))


def fresh(**changes: object) -> Delivery:
    event = approved_event(submitted_event())
    return replace(new_delivery(event, PLANNED, "+849*****678", now=NOW), **changes)  # type: ignore[arg-type]


def test_a_new_delivery_is_claimed_for_its_first_try_under_a_lease() -> None:
    decision = claim(fresh(), now=NOW, lease=LEASE, tries=3)
    assert decision.kind == "send"
    d = decision.delivery
    assert (d.status, d.attempts, d.lease_until) == ("sending", 1, NOW + LEASE)
    assert d.check_at is not None and d.lease_until is not None
    assert d.check_at > d.lease_until  # the sweep waits longer than the lease
    assert (d.template, d.recipient_key, d.dossier_code) == (
        "approved",
        "applicant",
        d.trigger.subject,
    )


def test_a_try_under_way_is_busy_until_its_lease_ends_then_taken_over_or_exhausted() -> None:
    holding = replace(claim(fresh(), now=NOW, lease=LEASE, tries=2).delivery, version=1)
    busy = claim(holding, now=NOW + timedelta(seconds=20), lease=LEASE, tries=2)
    assert (busy.kind, busy.wait) == ("busy", 40.0)
    taken = claim(holding, now=NOW + LEASE, lease=LEASE, tries=2)
    assert (taken.kind, taken.delivery.attempts) == ("send", 2)
    last = replace(taken.delivery, version=2)
    assert claim(last, now=NOW + 2 * LEASE, lease=LEASE, tries=2).kind == "exhausted"


def test_a_retry_is_not_taken_before_it_is_due_and_an_outcome_is_final() -> None:
    tried = replace(claim(fresh(), now=NOW, lease=LEASE, tries=3).delivery, version=1)
    waiting = retrying(tried, reason="HTTP 503", next_at=NOW + LEASE, now=NOW)
    assert claim(waiting, now=NOW, lease=LEASE, tries=3).kind == "not_due"
    assert claim(waiting, now=NOW + LEASE, lease=LEASE, tries=3).delivery.attempts == 2
    done = sent(tried, provider_id="p1", now=NOW, source="urn:notify")
    assert claim(done, now=NOW, lease=LEASE, tries=3).kind == "finished"
    [event] = done.outbox
    assert (event.type, event.data.provider_message_id) == ("notification.sent", "p1")  # type: ignore[attr-defined]


def test_a_replay_reopens_a_failed_delivery_once_and_its_outcome_is_a_new_event() -> None:
    tried = replace(claim(fresh(), now=NOW, lease=LEASE, tries=1).delivery, version=1)
    gave_up = failed(tried, reason="HTTP 400", permanent=True, now=NOW, source="urn:notify")
    assert claim(gave_up, now=NOW, lease=LEASE, tries=1).kind == "finished"
    again = claim(gave_up, now=NOW, lease=LEASE, tries=1, reopen=1)
    assert (again.kind, again.delivery.attempts, again.delivery.base) == ("send", 2, 1)
    failed_again = failed(again.delivery, reason="x", permanent=True, now=NOW, source="u")
    assert claim(failed_again, now=NOW, lease=LEASE, tries=1, reopen=1).kind == "finished"
    assert outcome_key(gave_up) != outcome_key(failed_again)
    assert gave_up.outbox[0].id != failed_again.outbox[0].id


@pytest.mark.parametrize(
    ("error", "tries_made", "expected"),
    [
        (SendError("HTTP 503", permanent=False), 1, Retry(1.0)),
        (SendError("HTTP 401", permanent=False, slow=True), 1, Retry(4.0)),
        (
            SendError("HTTP 503", permanent=False),
            3,
            GiveUp("gave up after 3 tries: HTTP 503", False),
        ),
        (SendError("HTTP 400", permanent=True), 1, GiveUp("HTTP 400", True)),
    ],
)
def test_a_failure_is_retried_while_tries_are_left(
    error: SendError, tries_made: int, expected: Retry | GiveUp
) -> None:
    delivery = fresh(attempts=tries_made)
    assert after_failure(delivery, error, str(error), tries=3, delays=[1.0, 2.0, 4.0]) == expected


def test_a_resend_waits_for_the_message_s_last_delivery_and_numbers_itself() -> None:
    done = sent(fresh(attempts=1), provider_id="p", now=NOW, source="u")
    assert resend_id(done, done, []) == "e1:applicant:sms:resend1"
    first = replace(done, id="e1:applicant:sms:resend1", resend_of=done.id)
    assert resend_id(first, done, [first]) == "e1:applicant:sms:resend2"
    under_way = replace(first, status="sending", outbox=())
    assert resend_id(done, done, [under_way]) is None
    assert resend_id(done, replace(done, status="retrying"), []) is None


def test_the_log_is_paged_oldest_first_and_a_delivery_counts_once() -> None:
    older = fresh(id="a", version=3)
    newer = fresh(id="b", created_at=NOW + timedelta(seconds=1), version=1)
    page, after = log_page([replace(older, version=2), newer], [older], limit=1)
    assert page == [older] and after == log_key(older)
    page, after = log_page([newer], [], limit=1)
    assert page == [newer] and after is None
    assert decode_cursor(encode_cursor(log_key(older))) == log_key(older)
    for bad in ("nope", encode_cursor("2026|"), encode_cursor("yesterday|a")):
        with pytest.raises(ValueError, match="not a cursor"):
            decode_cursor(bad)
