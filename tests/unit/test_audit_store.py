"""The pure parts of audit's MongoDB adapter: its declared indexes and the workarounds of two
nx-27017 0.8.1 defects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.audit.store import INDEXES, without_ids_in_compound_keys
from services.audit.timerange import TimeRange

AT = datetime(2026, 11, 2, 8, 0, 0, 250000, tzinfo=UTC)


def test_every_collection_is_declared_and_search_filters_lead_an_index() -> None:
    assert set(INDEXES) >= {"records", "pending", "chain", "heads", "seals", "leases"}
    firsts = {next(iter(m.document["key"])) for m in INDEXES["records"]}
    assert firsts == {
        "time",
        "dossier_code",
        "type",
        "actor",
        "procedure_code",
        "unit_id",
        "applicant_id_hmac",
    }


def test_nx_27017_defect_compound_keys_lose_their_id_there_only() -> None:
    """nx-27017 defect: a compound index naming `_id` refuses every insert."""
    kept = without_ids_in_compound_keys(INDEXES)
    for collection, models in kept.items():
        for model, declared in zip(models, INDEXES[collection], strict=True):
            keys = list(model.document["key"])
            assert "_id" not in keys or keys == ["_id"]
            assert keys == [k for k in declared.document["key"] if k != "_id"]


def test_nx_27017_defect_time_ranges_are_asked_to_the_second_and_cut_exactly() -> None:
    """nx-27017 defect: datetimes compare to the whole second."""
    window = TimeRange("t", after=AT, through=AT + timedelta(milliseconds=500))
    assert window.query() == {
        "t": {
            "$gte": AT.replace(microsecond=0),
            "$lt": AT.replace(microsecond=0) + timedelta(seconds=1),
        }
    }
    assert [
        window.holds({"t": AT + timedelta(milliseconds=ms)}) for ms in (-100, 0, 1, 500, 501)
    ] == [False, False, True, True, False]
    assert TimeRange("t").query() == {} and not TimeRange("t").holds({})
