"""End to end: a backup taken while dossiers are being filed restores into fresh databases with
every dossier, task and delivery back, and audit's whole log verifies against the seal kept
outside the database (`python -m tools.backup`, `python -m services.audit verify`)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from shared.storage import Document, mongo_client
from tests.conftest import Isolation
from tests.e2e.conftest import service_env
from tests.e2e.flows import assigned_officer, decide, inspector_headers, status, submit, token
from tests.e2e.flows import wait_for_types as wait_for_timeline
from tests.e2e.harness import Mailbox, Services, eventually
from tools import backup
from tools.devstack import ROOT

pytestmark = pytest.mark.e2e
SERVICES = ("intake", "review", "notify", "audit")


@pytest.fixture
def stack(isolation: Isolation, mailbox: Mailbox, tmp_path: Path) -> Iterator[Services]:
    """The four services, audit chaining and sealing every fraction of a second."""
    services = Services(env=service_env(isolation, mailbox), logs=tmp_path)
    try:
        for name in ("intake", "review", "notify"):
            services.start(name)
        services.start(
            "audit",
            MOTCUA_AUDIT_CHAIN_GRACE_SECONDS="0.3",
            MOTCUA_AUDIT_SETTLE_INTERVAL_SECONDS="0.2",
            MOTCUA_AUDIT_SEAL_INTERVAL_SECONDS="0.5",
        )
        for name in SERVICES:
            services.wait_ready(name)
        yield services
    finally:
        services.stop_all()


@pytest.fixture
async def restored_prefix(isolation: Isolation) -> AsyncIterator[str]:
    """A database prefix of its own for the restore (its databases dropped after)."""
    prefix = f"r{uuid.uuid4().hex[:10]}_"
    yield prefix
    client = mongo_client(isolation.mongodb_url)
    try:
        for service in SERVICES:
            await client.drop_database(f"{prefix}{service}")
    finally:
        await client.close()


def run(isolation: Isolation, prefix: str, *args: str) -> tuple[int, dict[str, Any]]:
    """A command as an operator types it, against `prefix`'s databases; its exit code and the
    JSON it printed last."""
    env = {
        **os.environ,
        "MOTCUA_MONGODB_URL": isolation.mongodb_url,
        "MOTCUA_DATABASE_PREFIX": prefix,
    }
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"{args} printed nothing: {done.stderr[-3000:]}"
    return done.returncode, json.loads(lines[-1])


async def ids(client: AsyncMongoClient[Document], database: str, collection: str) -> set[Any]:
    return {d["_id"] async for d in client[database][collection].find({}, {"_id": 1})}


async def field_values(
    client: AsyncMongoClient[Document], database: str, collection: str, name: str
) -> set[Any]:
    return {d.get(name) async for d in client[database][collection].find({}, {name: 1})}


async def test_a_backup_under_load_restores_every_dossier_and_the_log_verifies(
    stack: Services, isolation: Isolation, restored_prefix: str, tmp_path: Path
) -> None:
    # A dossier all the way: filed, decided, the citizen told, audited and sealed.
    finished = [submit(stack)]
    for dossier in finished:
        task_id, officer = await assigned_officer(stack, dossier)
        assert decide(stack, task_id, token(officer)).status_code == 200
    for dossier in finished:
        await wait_for_timeline(stack, dossier, "dossier.approved", "notification.sent")

    def seal_over_everything() -> dict[str, Any] | None:
        # The operator keeps the newest seal outside the database (a file, a ticket, a print).
        verdict = httpx.get(
            f"{stack.url('audit')}/v1/audit/verify", headers=inspector_headers(), timeout=30
        ).json()
        latest = httpx.get(f"{stack.url('audit')}/v1/audit/seals/latest", timeout=30)
        return latest.json() if verdict["ok"] and latest.status_code == 200 else None

    kept = await eventually(seal_over_everything, timeout=30)

    # More citizens file while the backup runs: some dossiers are in flight when it reads.
    in_flight: list[str] = []
    load = threading.Thread(target=lambda: in_flight.extend(submit(stack) for _ in range(3)))
    load.start()
    out = tmp_path / "backup"
    code, dumped = await asyncio.to_thread(
        run, isolation, isolation.database_prefix, "tools.backup", "dump", "--out", str(out)
    )
    load.join(timeout=60)
    assert code == 0, dumped
    assert dumped["latest_seal"]["seq"] >= kept["seq"]
    counts = dumped["counts"]
    assert counts["intake"]["attachments.files"] >= 2 and counts["intake"]["attachments.chunks"]

    # Restored into databases of their own: the same documents, and the same bytes.
    restored = await backup.restore(isolation.mongodb_url, restored_prefix, out)
    for service, entry in restored["restored"].items():
        for name, got in entry["collections"].items():
            assert got == {"count": counts[service][name], "same_bytes": True}, (service, name)

    client = mongo_client(isolation.mongodb_url)
    try:
        db = {s: f"{restored_prefix}{s}" for s in SERVICES}
        dossiers = await ids(client, db["intake"], "dossiers")
        assert set(finished) <= dossiers
        tasks = await field_values(client, db["review"], "tasks", "dossier_code")
        closed = await field_values(client, db["review"], "tasks_history", "dossier_code")
        assert set(finished) <= tasks | closed <= dossiers  # read downstream first
        deliveries = await field_values(client, db["notify"], "delivery_history", "dossier_code")
        deliveries |= await field_values(client, db["notify"], "deliveries", "dossier_code")
        assert set(finished) <= deliveries <= dossiers
        audited = await field_values(client, db["audit"], "records", "dossier_code")
        assert set(finished) <= audited <= dossiers
    finally:
        await client.close()

    # The whole log verifies against the seal kept outside, in the restored database.
    code, verdict = await asyncio.to_thread(
        run,
        isolation,
        restored_prefix,
        "services.audit",
        "verify",
        "--expect-seal",
        f"{kept['seq']}:{kept['hash']}",
    )
    assert (code, verdict) == (0, {"ok": True}), verdict

    # A second restore over the restored data is refused.
    with pytest.raises(backup.BackupError, match="not restoring over data"):
        await backup.restore(isolation.mongodb_url, restored_prefix, out)
    # Forced, it drops what is there first: the backup's documents, none twice.
    again = await backup.restore(isolation.mongodb_url, restored_prefix, out, force=True)
    assert again["restored"] == restored["restored"]
    assert in_flight  # the load did file while the dump read

    # Intake started on the restored databases: a citizen finds their dossier, and the next
    # dossier filed takes a new code (the day's counter came back with the dossiers).
    stack.stop_all()
    stack.start("intake", MOTCUA_DATABASE_PREFIX=restored_prefix)
    stack.wait_ready("intake")
    assert status(stack, finished[0])["code"] == finished[0]
    assert submit(stack) not in dossiers
