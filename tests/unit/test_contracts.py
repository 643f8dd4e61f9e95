import json
from pathlib import Path

import pytest

from shared.contracts import (
    EVENT_TYPES,
    DossierAssigned,
    DossierSubmitted,
    UndecodableEvent,
    decode,
    derived_id,
)
from shared.contracts.__main__ import main as contracts_cli
from tests.factories import submitted_event


def test_an_event_round_trips_through_its_wire_form() -> None:
    event = submitted_event()
    decoded = decode(event.to_json())
    assert decoded == event
    assert type(decoded).__name__ == "DossierSubmitted"


def test_the_envelope_is_cloudevents_1_0_structured_json() -> None:
    body = json.loads(submitted_event().to_json())
    for attribute in ("id", "source", "type", "specversion", "time", "subject", "data"):
        assert attribute in body
    assert body["specversion"] == "1.0"
    assert body["datacontenttype"] == "application/json"
    assert body["correlationid"] == body["id"]  # a submission starts its own correlation


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json at all", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({"type": "dossier.teleported"}).encode(), "unknown event type"),
        (
            json.dumps({"type": "dossier.submitted", "id": "x"}).encode(),
            "invalid dossier.submitted",
        ),
    ],
)
def test_undecodable_messages_say_why(body: bytes, reason: str) -> None:
    with pytest.raises(UndecodableEvent, match=reason):
        decode(body)


def test_unknown_fields_from_newer_producers_are_ignored() -> None:
    body = json.loads(submitted_event().to_json())
    body["newattribute"] = "x"
    body["data"]["new_field"] = 1
    assert decode(json.dumps(body)).id == body["id"]


def test_derived_events_get_the_same_id_on_every_redelivery() -> None:
    cause = submitted_event()
    assert derived_id(cause.id, "dossier.assigned") == derived_id(cause.id, "dossier.assigned")
    assert derived_id(cause.id, "dossier.assigned") != derived_id(cause.id, "dossier.approved")
    assert derived_id(cause.id, "x", "email") != derived_id(cause.id, "x", "sms")


def test_derived_event_carries_correlation_and_causation() -> None:
    cause = submitted_event()
    data = {
        "dossier_code": cause.subject,
        "task_id": "t",
        "procedure_code": "1.004194",
        "unit_id": "u",
        "officer_id": "o",
        "assigned_at": cause.time,
    }
    event = DossierAssigned.caused_by(cause, source="urn:review", data=data, time=cause.time)
    assert event.causationid == cause.id
    assert event.correlationid == cause.correlationid
    assert event.subject == cause.subject


def test_schemas_command_writes_one_schema_per_event_type(tmp_path: Path) -> None:
    contracts_cli(["schemas", str(tmp_path)])
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(f"{t}.schema.json" for t in EVENT_TYPES)
    schema = json.loads((tmp_path / "dossier.submitted.schema.json").read_text())
    assert schema["properties"]["type"]["const"] == "dossier.submitted"
    assert "applicant" in json.dumps(schema)
    assert set(EVENT_TYPES) >= {
        "dossier.submitted",
        "dossier.assigned",
        "dossier.approved",
        "dossier.rejected",
        "notification.sent",
        "notification.failed",
    }


def test_event_times_are_kept_to_the_millisecond_the_database_stores() -> None:
    from shared.clock import utcnow

    data = submitted_event().data
    assert DossierSubmitted.create(source="s", subject="c", data=data).time.microsecond % 1000 == 0
    assert utcnow().microsecond % 1000 == 0
