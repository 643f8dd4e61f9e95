"""Prometheus metrics common to every service, labelled by service."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PUBLISHED = Counter(
    "motcua_events_published_total",
    "Events published and confirmed by the broker.",
    ["service", "type"],
)
EVENTS_CONSUMED = Counter(
    "motcua_events_consumed_total",
    "Messages taken from a queue, by outcome (handled, retried, dead_lettered).",
    ["service", "queue", "type", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "motcua_event_handler_seconds", "Time to handle one consumed event.", ["service", "type"]
)
HTTP_REQUESTS = Counter(
    "motcua_http_requests_total",
    "HTTP requests answered.",
    ["service", "method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "motcua_http_request_seconds", "HTTP request latency.", ["service", "method", "route"]
)
OUTBOX_PENDING = Counter(
    "motcua_outbox_republished_total",
    "Outgoing events published by the outbox relay after the first try failed.",
    ["service", "type"],
)
DB_COMMANDS = Counter(
    "motcua_db_commands_total",
    "Commands sent to the database (round trips), by the shared client.",
    ["service", "command", "collection"],
)
READY = Gauge(
    "motcua_ready",
    "1 while the service's readiness check passes (check: broker, database), else 0; as of the "
    "last /readyz, or measured by the scrape when /readyz was not asked for a while.",
    ["service", "check"],
)
DOSSIERS_SUBMITTED = Counter(
    "motcua_dossiers_submitted_total",
    "Dossiers filed (each once, not their retries), by procedure and channel (online, desk, post)"
    ": the online share of the public-service index (QĐ 766).",
    ["procedure", "channel"],
)
