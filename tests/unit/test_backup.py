"""The backup's rules that need no database: which collections it reads and in what order,
the audit cut, restore's order of a GridFS bucket, and a backup checked against its manifest."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bson
import pytest

from tools import backup

NOW = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)


def test_a_dump_reads_declared_collections_and_not_the_servers_own() -> None:
    listed = ["dossiers", "attachments_files", "attachments_chunks", "system.views", "extra"]
    names = backup.collections_of("intake", listed)
    assert {"dossiers", "attachments.files", "attachments.chunks", "counters", "extra"} <= names
    assert not names & {"attachments_files", "attachments_chunks", "system.views"}


def test_references_are_read_before_what_they_point_into() -> None:
    order = backup.read_order("audit", backup.collections_of("audit", ["leases"]))
    assert order.index("leases") < order.index("seals")  # unnamed ones first
    for first, then in [("seals", "chain"), ("heads", "chain"), ("pending", "chain")]:
        assert order.index(first) < order.index(then)
    assert order[-1] == "records"
    review = backup.read_order("review", backup.collections_of("review", []))
    assert review.index("tasks") < review.index("tasks_history") < review.index("outbox_pending")
    intake = backup.read_order("intake", backup.collections_of("intake", []))
    assert intake.index("attachments.files") < intake.index("attachments.chunks")
    assert intake.index("dossiers") < intake.index("counters")
    assert backup.DUMP_ORDER == ("audit", "notify", "review", "intake")  # downstream first


def test_restore_writes_a_buckets_chunks_before_its_files() -> None:
    names = ["dossiers", "attachments.files", "attachments.chunks", "counters"]
    assert backup.restore_order(names) == [
        "dossiers",
        "attachments.chunks",
        "attachments.files",
        "counters",
    ]


def test_the_audit_cut_leaves_out_only_a_record_that_arrived_after_the_markers_were_read() -> None:
    cut = backup.AuditCut()
    cut.start("seals", NOW)
    cut.start("pending", NOW)
    cut.saw("pending", {"_id": "waiting", "recorded_at": NOW})
    cut.start("chain", NOW + timedelta(seconds=1))
    cut.saw("chain", {"record_id": "chained-late", "settled_at": NOW + timedelta(seconds=1)})
    cut.saw("chain", {"record_id": "chained-long-ago", "settled_at": NOW - timedelta(days=9)})
    old = NOW - timedelta(days=10)
    recent = NOW + timedelta(seconds=2)
    assert cut.keeps("records", {"_id": "chained-long-ago", "recorded_at": old})
    assert cut.keeps("records", {"_id": "waiting", "recorded_at": NOW})
    assert cut.keeps("records", {"_id": "chained-late", "recorded_at": recent})
    assert not cut.keeps("records", {"_id": "arrived-during-the-dump", "recorded_at": recent})
    assert cut.keeps("chain", {"record_id": "x"}) and cut.left_out == 1
    # Audit's clock may be behind this tool's: within CLOCK_SLACK a record is still checked.
    behind = NOW - backup.CLOCK_SLACK + timedelta(seconds=1)
    assert not cut.keeps("records", {"_id": "late-clock", "recorded_at": behind})


def _backup(folder: Path, docs: list[dict[str, object]]) -> Path:
    (folder / "intake").mkdir(parents=True)
    data = b"".join(bson.encode(d) for d in docs)
    (folder / "intake" / "dossiers.bson").write_bytes(data)
    manifest = {
        "format": backup.FORMAT,
        "services": {
            "intake": {
                "collections": {
                    "dossiers": {"count": len(docs), "sha256": hashlib.sha256(data).hexdigest()}
                }
            }
        },
    }
    (folder / backup.MANIFEST).write_text(json.dumps(manifest))
    return folder / "intake" / "dossiers.bson"


def test_check_refuses_an_altered_or_truncated_backup(tmp_path: Path) -> None:
    path = _backup(tmp_path, [{"_id": "G01-1"}, {"_id": "G01-2"}])
    assert backup.check(tmp_path)["services"]["intake"]
    path.write_bytes(path.read_bytes().replace(b"G01-2", b"G01-3"))
    with pytest.raises(backup.BackupError, match="the manifest says 2"):
        backup.check(tmp_path)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(backup.BackupError, match="truncated"):
        backup.check(tmp_path)
    (tmp_path / backup.MANIFEST).unlink()
    with pytest.raises(backup.BackupError, match=r"manifest\.json is missing"):
        backup.check(tmp_path)


def test_a_dump_goes_into_a_new_folder_only(tmp_path: Path) -> None:
    assert backup.new_folder(tmp_path / "new").is_dir()
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    with pytest.raises(backup.BackupError, match="not empty"):
        backup.new_folder(tmp_path / "used")


def test_the_latest_seal_of_a_dump(tmp_path: Path) -> None:
    seals = tmp_path / "seals.bson"
    assert backup.latest_seal(seals) is None
    seals.write_bytes(
        b"".join(bson.encode({"_id": n, "seq": n, "hash": f"h{n}"}) for n in (0, 2, 1))
    )
    assert backup.latest_seal(seals) == {"seq": 2, "hash": "h2"}
