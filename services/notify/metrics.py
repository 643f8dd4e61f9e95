"""Notify's own metrics (alert rules are written over these exact names); the partner
endpoints' are in endpoint_delivery.py, the national-portal sync's in national/metrics.py."""

from __future__ import annotations

from prometheus_client import Counter

UNREADABLE = Counter(
    "motcua_notify_unreadable_deliveries_total",
    "Stored deliveries the sweep could not read (each sighting; one is looked at again every "
    "hour): an operator must repair or remove the document named in notify's log.",
)
