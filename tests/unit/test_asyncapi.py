"""The AsyncAPI catalogue: committed = generated from the models, valid per the official parser,
and a model's breaking change (a removed field) shows as a difference that names the field."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI
from pydantic import create_model

from services.notify.catalogue_api import router
from shared.contracts import EVENT_TYPES, DossierWithdrawn, EventData
from shared.contracts.asyncapi import build, differences, dump, generate

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "asyncapi.yaml"
NODE_TOOLS = ROOT / "tools" / "node"
REGENERATE = (
    "regenerate it: .venv/bin/python -m shared.contracts asyncapi --write docs/asyncapi.yaml"
)

VALIDATE_JS = """
import { Parser } from "@asyncapi/parser";
import { readFileSync } from "node:fs";
const parser = new Parser();
const out = {};
for (const file of process.argv.slice(1)) {
  const { diagnostics } = await parser.parse(readFileSync(file, "utf8"));
  out[file] = diagnostics.filter(d => d.severity === 0)
    .map(d => `${d.path.join("/")}: ${d.message}`);
}
console.log(JSON.stringify(out));
"""


def committed() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))
    return document


def test_the_committed_document_is_the_generated_one() -> None:
    diff = sorted(differences(committed(), generate()))
    assert not diff, f"docs/asyncapi.yaml is stale; {REGENERATE}\n" + "\n".join(diff[:20])
    assert COMMITTED.read_text(encoding="utf-8") == dump(generate()), REGENERATE


def _without(model: type[DossierWithdrawn], field: str) -> type[DossierWithdrawn]:
    """A copy of an event model whose data lacks `field` (same names, so the same schemas)."""
    data_model = model.model_fields["data"].annotation
    assert isinstance(data_model, type) and issubclass(data_model, EventData)
    fields: Any = {
        name: (info.annotation, info)
        for name, info in data_model.model_fields.items()
        if name != field
    }
    data = create_model(data_model.__name__, __base__=EventData, **fields)
    copy: type[DossierWithdrawn] = create_model(
        model.__name__, __base__=model, __doc__=model.__doc__, data=(data, ...)
    )
    return copy


def test_a_removed_field_fails_the_comparison_and_names_the_field() -> None:
    unchanged = {**EVENT_TYPES, "dossier.withdrawn": _without(DossierWithdrawn, "nothing")}
    assert not list(differences(committed(), build(unchanged)))  # the copy itself is faithful
    broken = {**EVENT_TYPES, "dossier.withdrawn": _without(DossierWithdrawn, "reason")}
    diff = list(differences(committed(), build(broken)))
    assert diff
    assert any(
        line.startswith("/components/schemas/DossierWithdrawnData/properties/reason:")
        for line in diff
    ), diff
    assert all("reason" in line for line in diff), diff


def test_partners_messages_carry_no_personal_property() -> None:
    document = generate()
    schemas = document["components"]["schemas"]
    for message_id, message in document["components"]["messages"].items():
        name = message["payload"]["$ref"].rsplit("/", 1)[-1]
        reachable = _reachable(schemas, name)
        text = json.dumps([schemas[n] for n in reachable])
        if message_id.startswith("webhook-"):
            assert '"x-personal":' not in text, message_id
            assert message["headers"]["$ref"].endswith("/WebhookHeaders")
        elif message_id == "dossier-submitted":
            assert '"personal_id"' in text and '"x-personal":' in text
    headers = schemas["WebhookHeaders"]["properties"]
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}


def _reachable(schemas: dict[str, Any], name: str) -> set[str]:
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        text = json.dumps(schemas[current])
        todo += [part.split('"', 1)[0] for part in text.split('"#/components/schemas/')[1:]]
    return seen


def test_one_broker_channel_and_one_webhook_channel_per_event_type() -> None:
    channels = generate()["channels"]
    addresses = {c["address"] for c in channels.values() if c["address"]}
    assert addresses == set(EVENT_TYPES)
    assert len(channels) == 2 * len(EVENT_TYPES)
    submitted = channels["dossier-submitted"]["bindings"]["amqp"]
    assert submitted["exchange"]["name"] == "motcua.events"


def test_the_official_parser_accepts_it_and_refuses_a_broken_one(tmp_path: Path) -> None:
    if not (NODE_TOOLS / "node_modules" / "@asyncapi" / "parser").is_dir():
        pytest.fail("@asyncapi/parser is not installed: run scripts/provision.sh")
    broken = generate()
    del broken["info"]
    broken["channels"]["dossier-paid"]["messages"]["dossier-paid"] = {"$ref": "#/nowhere"}
    broken_file = tmp_path / "broken.yaml"
    broken_file.write_text(dump(broken), encoding="utf-8")
    run = subprocess.run(
        ["node", "--input-type=module", "-e", VALIDATE_JS, str(COMMITTED), str(broken_file)],
        cwd=NODE_TOOLS,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    errors = json.loads(run.stdout)
    assert errors[str(COMMITTED)] == []
    assert errors[str(broken_file)], "the parser accepted a document without info"


async def test_notify_serves_it() -> None:
    app = FastAPI()
    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://notify") as client:
        as_json = await client.get("/v1/asyncapi")
        as_yaml = await client.get("/v1/asyncapi", headers={"accept": "application/yaml"})
    assert as_json.status_code == 200
    assert as_json.json() == committed()
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    assert as_yaml.text == COMMITTED.read_text(encoding="utf-8")
