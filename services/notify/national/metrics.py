"""The national-portal sync's metrics (alert rules are written over these exact names)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

REQUESTS = Counter(
    "motcua_dvcqg_requests_total",
    "Calls to the national portal, by operation (add, update, progress, login) and outcome.",
    ["operation", "outcome"],
)
BACKLOG = Gauge("motcua_dvcqg_backlog", "Dossiers with operations waiting for the portal.")
LAST_SUCCESS = Gauge(
    "motcua_dvcqg_last_success_timestamp_seconds", "When a portal call last went through."
)
