"""The event catalogue as an AsyncAPI 3.0 document, generated from the event models and the
partner projections (shared/contracts/projections.py); never written by hand.

One channel per event type on the broker (topic exchange `motcua.events`, routing key = the
type), whose message is the CloudEvents envelope with the event's data; and one webhook channel
per event type whose message is the partner projection without personal data, signed per
Standard Webhooks. `docs/asyncapi.yaml` is this document; `python -m shared.contracts asyncapi
--write docs/asyncapi.yaml` regenerates it, and a test fails when the two differ.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from shared.contracts.envelope import CONTENT_TYPE, Event
from shared.contracts.projections import PERSONAL_DATA, strip_personal

ASYNCAPI_VERSION = "3.0.0"
CATALOGUE_VERSION = "1.0.0"
EXCHANGE = "motcua.events"  # shared.messaging.EXCHANGE, kept here so contracts import no broker
WEBHOOK_CONTENT_TYPE = "application/json"
SCHEMAS = "#/components/schemas/"

WEBHOOK_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "Standard Webhooks headers (https://www.standardwebhooks.com/).",
    "required": ["webhook-id", "webhook-timestamp", "webhook-signature"],
    "properties": {
        "webhook-id": {
            "type": "string",
            "description": "The message id, the same on every retry of one delivery "
            "(deduplicate on it).",
        },
        "webhook-timestamp": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "Unix seconds when this attempt was signed; reject stale ones.",
        },
        "webhook-signature": {
            "type": "string",
            "description": "Space-separated `v1,<base64 HMAC-SHA256>` signatures of "
            "`<webhook-id>.<webhook-timestamp>.<body>` with the key of the `whsec_` secret; "
            "during a secret rotation's overlap, one per secret (either verifies).",
        },
    },
}


def _channel_id(event_type: str, webhook: bool = False) -> str:
    base = event_type.replace(".", "-").replace("_", "-")
    return f"webhook-{base}" if webhook else base


class _Schemas:
    """Collects named JSON Schemas under components/schemas, rewriting pydantic's `$defs`
    references; a name reused for a different schema is an error, never a silent overwrite."""

    def __init__(self) -> None:
        self.named: dict[str, Any] = {}

    def add(self, name: str, schema: dict[str, Any], suffix: str = "") -> str:
        """Add a model's schema (with its `$defs`) under `name`; return the `$ref` to it. With a
        suffix (a projection), a definition the projection changed, or one that refers to a
        changed one, is renamed `<name><suffix>`; an unchanged one is shared."""
        schema = json.loads(json.dumps(schema))
        defs: dict[str, Any] = schema.pop("$defs", {})
        plain = {d: d for d in defs}
        changed = {d for d in defs if suffix and self.named.get(d) != _relink(defs[d], plain)}
        while True:  # a definition that refers to a changed one changes too
            more = {d for d in defs if d not in changed and _refers(defs[d], changed)}
            if not more:
                break
            changed |= more
        renamed = {d: f"{d}{suffix}" if d in changed else d for d in defs}
        for def_name, def_schema in defs.items():
            self._put(renamed[def_name], _relink(def_schema, renamed))
        return self._put(name, _relink(schema, renamed))

    def _put(self, name: str, schema: Any) -> str:
        if name in self.named and self.named[name] != schema:
            raise ValueError(f"two different schemas named {name}")
        self.named[name] = schema
        return SCHEMAS + name


def _relink(schema: Any, renamed: Mapping[str, str]) -> Any:
    if isinstance(schema, list):
        return [_relink(item, renamed) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
            out[key] = SCHEMAS + renamed[value.removeprefix("#/$defs/")]
        else:
            out[key] = _relink(value, renamed)
    return out


def _refers(schema: Any, names: set[str]) -> bool:
    text = json.dumps(schema)
    return any(f'"#/$defs/{name}"' in text for name in names)


def _summary(model: type[Event]) -> str:
    return " ".join((model.__doc__ or model.event_type).split())


def _partner_schema(model: type[Event]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="serialization")
    strip_personal(schema)
    schema["title"] = f"{model.__name__}Partner"
    schema["description"] = (
        f"{_summary(model)} What a partner without the `{PERSONAL_DATA}` scope receives: no "
        "personal field (none of those the full message marks as personal)."
    )
    return schema


def build(event_types: Mapping[str, type[Event]]) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of `event_types` (the registry's, or a test's variant)."""
    schemas = _Schemas()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event_type, model in sorted(event_types.items()):
        for webhook in (False, True):
            channel = _channel_id(event_type, webhook)
            if webhook:
                ref = schemas.add(f"{model.__name__}Partner", _partner_schema(model), "Partner")
                message = {
                    "name": f"{event_type} (webhook)",
                    "title": f"{event_type} to a partner",
                    "summary": _summary(model),
                    "contentType": WEBHOOK_CONTENT_TYPE,
                    "headers": {"$ref": SCHEMAS + "WebhookHeaders"},
                    "payload": {"$ref": ref},
                }
                channels[channel] = {
                    "address": None,
                    "title": f"Partner webhook: {event_type}",
                    "description": "POSTed to each partner endpoint subscribed to this type "
                    f"and unit; without the `{PERSONAL_DATA}` scope, the projection.",
                    "servers": [{"$ref": "#/servers/partner"}],
                    "messages": {channel: {"$ref": f"#/components/messages/{channel}"}},
                    "bindings": {"http": {"bindingVersion": "0.3.0"}},
                }
            else:
                schema = model.model_json_schema(mode="serialization")
                ref = schemas.add(model.__name__, schema)
                message = {
                    "name": event_type,
                    "title": event_type,
                    "summary": _summary(model),
                    "contentType": CONTENT_TYPE,
                    "correlationId": {"location": "$message.payload#/correlationid"},
                    "payload": {"$ref": ref},
                    "bindings": {"amqp": {"messageType": event_type, "bindingVersion": "0.3.0"}},
                }
                channels[channel] = {
                    "address": event_type,
                    "title": event_type,
                    "description": f"Routing key `{event_type}` on the topic exchange "
                    f"`{EXCHANGE}`.",
                    "servers": [{"$ref": "#/servers/broker"}],
                    "messages": {channel: {"$ref": f"#/components/messages/{channel}"}},
                    "bindings": {
                        "amqp": {
                            "is": "routingKey",
                            "exchange": {
                                "name": EXCHANGE,
                                "type": "topic",
                                "durable": True,
                                "autoDelete": False,
                                "vhost": "/",
                            },
                            "bindingVersion": "0.3.0",
                        }
                    },
                }
            messages[channel] = message
            operations[f"send-{channel}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{channel}"},
                "summary": "Notify POSTs it to each subscribed partner"
                if webhook
                else f"Published on `{EXCHANGE}`",
                "messages": [{"$ref": f"#/channels/{channel}/messages/{channel}"}],
            }
            if not webhook:  # persistent, mandatory, confirmed (shared/messaging.py)
                operations[f"send-{channel}"]["bindings"] = {
                    "amqp": {"deliveryMode": 2, "mandatory": True, "bindingVersion": "0.3.0"}
                }
    schemas.named["WebhookHeaders"] = WEBHOOK_HEADERS
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Motcua events",
            "version": CATALOGUE_VERSION,
            "description": "Every event Motcua publishes: a CloudEvents 1.0 envelope in "
            "structured JSON on the topic exchange `motcua.events` (routing key = type), and "
            "what partners receive of it by webhook. Fields marked `x-personal` are personal "
            f"data, sent only to partners holding the `{PERSONAL_DATA}` scope. Generated from "
            "shared/contracts: do not edit by hand.",
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "broker": {
                "host": "rabbitmq:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "The RabbitMQ broker the services share.",
            },
            "partner": {
                "host": "partner.example",
                "protocol": "https",
                "description": "Each partner's own endpoint, registered with notify.",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": dict(sorted(schemas.named.items())), "messages": messages},
    }


def dump(document: Mapping[str, Any]) -> str:
    """The document as YAML text (what docs/asyncapi.yaml holds)."""
    return yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True, width=100)


def generate() -> dict[str, Any]:
    """The catalogue of the registered event types."""
    from shared.contracts.registry import EVENT_TYPES

    return build(EVENT_TYPES)


def differences(expected: Any, actual: Any, path: str = "") -> Iterator[str]:
    """Where two documents differ, as `path: what` lines (a removed field names itself)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in expected.keys() - actual.keys():
            yield f"{path}/{key}: missing from the generated document"
        for key in actual.keys() - expected.keys():
            yield f"{path}/{key}: not in the committed document"
        for key in expected.keys() & actual.keys():
            yield from differences(expected[key], actual[key], f"{path}/{key}")
    elif expected != actual:
        yield f"{path}: {json.dumps(expected)[:80]} != {json.dumps(actual)[:80]}"
