"""What a dossier's attachments must be: references parsed from a request, then checked
against the procedure's document list and the stored files (pure rules, no I/O)."""

from __future__ import annotations

from typing import Any

from services.intake.catalogue import Procedure
from services.intake.messages import entry

RECORDED = ("id", "size", "media_type", "sha256")  # what a dossier records of each attachment


def references(raw: Any, limit: int) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Parse `attachments` of a submission: ([{document_type, id}], errors)."""
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        return [], [entry("attachments", "list_type")]
    if len(raw) > limit:
        return [], [entry("attachments", "too_long")]
    refs, errors = [], []
    for i, item in enumerate(raw):
        if (
            not isinstance(item, dict)
            or set(item) != {"document_type", "id"}
            or not all(isinstance(v, str) for v in item.values())
        ):
            errors.append(entry(f"attachments.{i}", "attachment_shape"))
            continue
        refs.append({"document_type": item["document_type"], "id": item["id"]})
    return refs, errors


def check(
    procedure: Procedure,
    refs: list[dict[str, str]],
    files: dict[str, dict[str, Any]],
    *,
    require: bool = True,
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The attachments as recorded on the dossier, and the errors: unknown files, documents
    the procedure does not take, wrong media types, files too large, required ones missing."""
    specs = {d.type: d for d in procedure.documents}
    recorded, errors = [], []
    for i, ref in enumerate(refs):
        spec = specs.get(ref["document_type"])
        meta = files.get(ref["id"])
        if spec is None:
            errors.append(entry(f"attachments.{i}.document_type", "unknown_document"))
        elif meta is None:
            errors.append(entry(f"attachments.{i}.id", "unknown_attachment"))
        elif meta["media_type"] not in spec.media_types:
            errors.append(entry(f"attachments.{i}.id", "media_type_not_allowed"))
        elif meta["size"] > spec.max_bytes:
            errors.append(entry(f"attachments.{i}.id", "attachment_too_large"))
        else:
            recorded.append({"document_type": spec.type, **{k: meta[k] for k in RECORDED}})
    if require:
        given = {r["document_type"] for r in refs}
        for spec in procedure.documents:
            if spec.required and spec.type not in given:
                errors.append(entry(f"attachments[{spec.type}]", "missing_document"))
    return recorded, errors
