"""Printing the one-stop slips as PDF: receipt and appointment, control, apology (BM-VP01)."""

from services.portal.printing.models import (
    ApologySlip,
    Channel,
    ControlSlip,
    DocumentForm,
    Issuer,
    ReceiptSlip,
    SlipDocument,
    SlipStep,
    Timeliness,
)
from services.portal.printing.render import (
    apology_html,
    apology_pdf,
    control_html,
    control_pdf,
    receipt_html,
    receipt_pdf,
    warm_up,
)
from services.portal.printing.timefmt import format_vn_date, format_vn_time

__all__ = [
    "ApologySlip",
    "Channel",
    "ControlSlip",
    "DocumentForm",
    "Issuer",
    "ReceiptSlip",
    "SlipDocument",
    "SlipStep",
    "Timeliness",
    "apology_html",
    "apology_pdf",
    "control_html",
    "control_pdf",
    "format_vn_date",
    "format_vn_time",
    "receipt_html",
    "receipt_pdf",
    "warm_up",
]
