"""Audit's use cases, one module each: record (`recording`), settle (`settling`), seal
(`sealing`), the ledger keeper that runs them (`keeper`), verify (`verifying`), and read:
timeline, search, export, statistics (`reading`), and the statistics projection
(`projecting`). Each depends on the ports it needs
(`services.audit.ports`), never on the MongoDB adapter."""

from services.audit.handlers.keeper import LEASES_KEPT, LedgerLease, Wakeup, keep_ledger
from services.audit.handlers.projecting import (
    Projection,
    build_facts,
    facts_to_build,
    fold_facts,
    keep_building_facts,
)
from services.audit.handlers.recording import LEGACY_PAGE, adopt_legacy, record, record_of
from services.audit.handlers.sealing import seal
from services.audit.handlers.settling import ORPHAN_AGE, settle
from services.audit.handlers.verifying import (
    UnknownDossier,
    check_seal,
    check_seals,
    proof,
    verify_all,
    verify_dossier,
)
from services.audit.store import LEGACY

__all__ = [
    "LEASES_KEPT",
    "LEGACY",
    "LEGACY_PAGE",
    "ORPHAN_AGE",
    "LedgerLease",
    "Projection",
    "UnknownDossier",
    "Wakeup",
    "adopt_legacy",
    "build_facts",
    "check_seal",
    "check_seals",
    "facts_to_build",
    "fold_facts",
    "keep_building_facts",
    "keep_ledger",
    "proof",
    "record",
    "record_of",
    "seal",
    "settle",
    "verify_all",
    "verify_dossier",
]
