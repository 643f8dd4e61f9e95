"""The one-stop slips as PDF (BM-VP01): receipt and appointment, supplement, control, apology."""

from services.portal.printing.models import (
    ApologySlip,
    Channel,
    ControlSlip,
    DocumentForm,
    Issuer,
    ReceiptSlip,
    SlipDocument,
    SlipStep,
    SupplementSlip,
    Timeliness,
)
from services.portal.printing.render import (
    apology_html,
    apology_pdf,
    control_html,
    control_pdf,
    receipt_html,
    receipt_pdf,
    supplement_html,
    supplement_pdf,
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
    "SupplementSlip",
    "Timeliness",
    "apology_html",
    "apology_pdf",
    "control_html",
    "control_pdf",
    "format_vn_date",
    "format_vn_time",
    "receipt_html",
    "receipt_pdf",
    "supplement_html",
    "supplement_pdf",
    "warm_up",
]
