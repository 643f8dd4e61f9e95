"""End to end: audit as an OS process fed over RabbitMQ; its API searched, exported, proven;
and a whole run of the four services leaves no full personal ID in any log or audit document."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pymongo import AsyncMongoClient

from shared.storage import Document
from tests.amqp import publish_all
from tests.conftest import Isolation
from tests.e2e.conftest import service_env
from tests.e2e.flows import assigned_officer, decide, inspector_headers, submit, token
from tests.e2e.flows import wait_for_types as wait_for_timeline
from tests.e2e.harness import Mailbox, Services, eventually
from tests.factories import VALID_FORM, dossier_events

pytestmark = pytest.mark.e2e
AUTH = inspector_headers()


@pytest.fixture
def audit_alone(isolation: Isolation, mailbox: Mailbox, tmp_path: Path) -> Iterator[Services]:
    """Only audit, chaining and sealing every fraction of a second."""
    stack = Services(env=service_env(isolation, mailbox), logs=tmp_path)
    try:
        stack.start(
            "audit",
            MOTCUA_AUDIT_CHAIN_GRACE_SECONDS="0.5",
            MOTCUA_AUDIT_SETTLE_INTERVAL_SECONDS="0.2",
            MOTCUA_AUDIT_SEAL_INTERVAL_SECONDS="0.3",
            MOTCUA_AUDIT_EXPORT_PAGE_SIZE="3",
        )
        stack.wait_ready("audit")
        yield stack
    finally:
        stack.stop_all()


def get(services: Services, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{services.url('audit')}{path}", params=params, headers=AUTH, timeout=30)


# --- an independent verifier: RFC 8785, SHA-256, RFC 9162 inclusion, Ed25519 -------------------


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def root_from_path(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes | None:
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = sha(b"\x01" + p + r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = sha(b"\x01" + r + p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def check_proof(proof: dict[str, Any]) -> None:
    record, link, seal = proof["record"], proof["link"], proof["seal"]
    assert link["record_id"] == record["_id"]
    assert link["record_hash"] == hashlib.sha256(rfc8785.dumps(record)).hexdigest()
    fields = ("dossier_code", "seq", "record_id", "record_hash", "prev_hash", "settled_at")
    link_hash = hashlib.sha256(rfc8785.dumps({f: link[f] for f in fields})).hexdigest()
    assert link_hash == link["hash"]
    leaf = sha(b"\x00" + bytes.fromhex(link_hash))
    path = [bytes.fromhex(p) for p in proof["path"]]
    root = root_from_path(proof["leaf_index"], proof["tree_size"], leaf, path)
    assert root is not None and root.hex() == seal["root"]
    body = {
        f: seal[f]
        for f in (
            "seq",
            "period_start",
            "period_end",
            "count",
            "root",
            "prev_seal_hash",
            "sealed_at",
            "public_key",
        )
    }
    message = rfc8785.dumps(body)
    assert hashlib.sha256(message).hexdigest() == seal["hash"]
    Ed25519PublicKey.from_public_bytes(bytes.fromhex(seal["public_key"])).verify(
        bytes.fromhex(seal["signature"]), message
    )


async def test_shuffled_events_are_chained_in_order_searched_exported_and_proven(
    audit_alone: Services, isolation: Isolation
) -> None:
    events = [e for code in ("E2E-1", "E2E-2") for e in dossier_events(code)]
    random.Random(7).shuffle(events)
    await publish_all(isolation.amqp_url, events)
    ordered = sorted(events, key=lambda e: (e.time, e.id))

    async def sealed() -> bool:
        for event in events:
            proof = get(audit_alone, f"/v1/audit/records/{event.id}/proof")
            if proof.status_code != 200:
                return False
        return True

    await eventually(sealed, timeout=30)
    for code in ("E2E-1", "E2E-2"):
        verdict = get(audit_alone, f"/v1/audit/dossiers/{code}/verify").json()
        assert verdict == {"dossier_code": code, "ok": True, "broken": None}
        shown = get(audit_alone, f"/v1/audit/dossiers/{code}").json()["events"]
        assert [e["id"] for e in shown] == [e.id for e in ordered if e.subject == code]
        assert [(e["actor"], e["from_state"], e["to_state"]) for e in shown][:3] == [
            ("citizen", None, "submitted"),
            ("system", "submitted", "assigned"),
            ("o1", "receiving", "checking"),
        ]
    assert get(audit_alone, "/v1/audit/verify").json() == {"ok": True, "broken": None}

    # Every proof checks against its signed root; the newest seal is public and signed alike.
    latest = httpx.get(f"{audit_alone.url('audit')}/v1/audit/seals/latest").json()
    for event in events:
        proof = get(audit_alone, f"/v1/audit/records/{event.id}/proof").json()
        check_proof(proof)
        assert proof["seal"]["public_key"] == latest["public_key"]
        assert proof["seal"]["seq"] <= latest["seq"]
    # The operator's copy of the latest seal pins it: there and unchanged, or the check fails.
    kept = f"{latest['seq']}:{latest['hash']}"
    assert get(audit_alone, "/v1/audit/verify", expect_seal=kept).json()["ok"] is True
    missing = get(audit_alone, "/v1/audit/verify", expect_seal=f"{latest['seq'] + 99}:{'0' * 64}")
    assert missing.json()["broken"]["kind"] == "deleted"
    assert missing.json()["broken"]["seal"] == latest["seq"] + 99
    bad = get(audit_alone, "/v1/audit/verify", expect_seal="latest")
    assert (bad.status_code, bad.json()["code"]) == (422, "bad_expected_seal")

    # Search a time range a page of 3 at a time: exactly the records in it, each once.
    since, until = ordered[0].time.isoformat(), ordered[-1].time.isoformat()
    expected = [e.id for e in ordered if e.time < ordered[-1].time]
    found: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"since": since, "until": until, "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = get(audit_alone, "/v1/audit/records", **params).json()
        found += [r["_id"] for r in page["records"]]
        assert "_hmac" not in json.dumps(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert found == expected and len(expected) == 6

    by_person = get(
        audit_alone, "/v1/audit/records", personal_id=VALID_FORM["applicant"]["personal_id"]
    )
    assert sorted(r["dossier_code"] for r in by_person.json()["records"]) == ["E2E-1", "E2E-2"]
    by_actor = get(audit_alone, "/v1/audit/records", actor="o1", dossier_code="E2E-2").json()
    assert [r["type"] for r in by_actor["records"]] == ["dossier.received", "dossier.approved"]

    jsonl = get(audit_alone, "/v1/audit/export", since=since, until=until, format="jsonl")
    assert "_hmac" not in jsonl.text  # keyed hashes stay inside audit
    assert jsonl.headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(line)["_id"] for line in jsonl.text.splitlines()] == expected
    exported = get(audit_alone, "/v1/audit/export", since=since, until=until, format="csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["_id"] for r in rows] == expected
    assert {r["dossier_code"] for r in rows} == {"E2E-1", "E2E-2"}

    assert httpx.get(f"{audit_alone.url('audit')}/v1/audit/records").status_code == 401
    stats = httpx.get(
        f"{audit_alone.url('audit')}/v1/audit/statistics",
        params={"since": "2026-11-02", "until": "2026-11-03"},
    ).json()
    [row] = stats["rows"]
    assert (row["procedure_code"], row["unit_id"], row["decided"]) == ("1.004194", "U", 2)
    # A unit's rows, a procedure's (the console's unit page): from the same projection.
    for name, value, expected in (
        ("unit_id", "U", [row]),
        ("unit_id", "U9", []),
        ("procedure_code", "1.004194", [row]),
    ):
        only = httpx.get(
            f"{audit_alone.url('audit')}/v1/audit/statistics",
            params={"since": "2026-11-02", "until": "2026-11-03", name: value},
        )
        assert only.json()["rows"] == expected, (name, value)
    too_long = httpx.get(
        f"{audit_alone.url('audit')}/v1/audit/statistics",
        params={"since": "2025-11-02", "until": "2026-11-04"},
    )
    assert (too_long.status_code, too_long.json()["code"]) == (422, "period_too_long")


TWELVE_DIGITS = re.compile(r"(?<![\w-])\d{12}(?![\w-])")


def squeezed(text: str) -> str:
    """`text` with spaces, dots, dashes and underscores between digits removed: an identifier
    written `001 099 012 345` or `0912.345.678` is found as a plain run of digits."""
    return re.sub(r"(?<=\d)[\s.\-_]+(?=\d)", "", text)


async def test_no_log_line_or_audit_document_holds_a_full_personal_id(
    services: Services,
    mailbox: Mailbox,
    isolation: Isolation,
    mongo: AsyncMongoClient[Document],
) -> None:
    personal_id = VALID_FORM["applicant"]["personal_id"]
    phone = VALID_FORM["applicant"]["phone"]
    code = submit(services)
    task_id, officer_id = await assigned_officer(services, code)
    approved = decide(services, task_id, token(officer_id), "approve", "Hồ sơ hợp lệ")
    assert approved.status_code == 200, approved.text
    await wait_for_timeline(services, code, "dossier.approved", "notification.sent")
    await mailbox.wait(1)
    services.stop_all()  # every log line is written

    logs = sorted(services.logs.glob("*.log"))
    assert {p.stem for p in logs} == {"intake", "review", "notify", "audit"}
    for path in logs:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            assert personal_id not in squeezed(line), f"{path.name}:{number}: {line}"
            assert phone[1:] not in squeezed(line), f"{path.name}:{number}: {line}"
            assert not TWELVE_DIGITS.search(line), f"{path.name}:{number}: {line}"

    db = mongo[isolation.database("audit")]
    names = await db.list_collection_names()
    assert "records" in names
    seen = 0
    for name in names:
        async for doc in db[name].find():
            text = json.dumps(doc, default=str, ensure_ascii=False)
            plain = squeezed(text)
            assert personal_id not in plain and phone[1:] not in plain, f"{name}: {text}"
            assert not TWELVE_DIGITS.search(text), f"{name}: {text}"
            seen += 1
    assert seen >= 5


async def test_audit_started_on_an_old_database_builds_its_statistics_once(
    isolation: Isolation, mailbox: Mailbox, tmp_path: Path, mongo: AsyncMongoClient[Document]
) -> None:
    """Records stored before `dossier_facts` existed: audit builds it in the background at
    start (statistics answer 503 problem+json meanwhile), then answers what the records say."""
    from tests.unit.test_audit_facts import mixed_dossiers

    db = mongo[isolation.database("audit")]
    records = mixed_dossiers()
    await db["records"].insert_many([dict(r) for r in records])
    stack = Services(env=service_env(isolation, mailbox), logs=tmp_path)
    url = ""
    try:
        stack.start("audit")
        stack.wait_ready("audit")
        url = f"{stack.url('audit')}/v1/audit/statistics"
        params = {"since": "2026-11-02", "until": "2026-11-07"}

        def answered() -> httpx.Response | None:
            got = httpx.get(url, params=params, timeout=10)
            if got.status_code == 503:
                assert got.json()["code"] == "statistics_being_built"
                return None
            return got

        stats = await eventually(answered, timeout=60, interval=0.2)
        assert stats.status_code == 200, stats.text
        by_unit = {(r["procedure_code"], r["unit_id"]): r for r in stats.json()["rows"]}
        assert (by_unit["P1", "U1"]["received"], by_unit["P1", "U1"]["decided"]) == (6, 9)
        state = await db["upgrades"].find_one({"_id": "dossier_facts"})
        assert state is not None and state["done"] is True
        assert await db["dossier_facts"].count_documents({"_id": {"$gte": ""}}) == 18
    finally:
        stack.stop_all()
    assert "statistics projection built: 18 dossiers" in (tmp_path / "audit.log").read_text()
