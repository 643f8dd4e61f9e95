"""The submission's OpenAPI description, built from the catalogue: one schema per procedure
(a discriminated union on `procedure_code`) and one complete valid example each."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from services.intake.catalogue import Catalogue, Procedure
from services.intake.submission import NOTIFY_CHANNELS

REF = "#/components/schemas/{model}"


def submission_schema(procedure: Procedure, components: dict[str, Any]) -> dict[str, Any]:
    """The procedure's form schema plus the submission's own fields; nested models go to
    `components`."""
    schema = copy.deepcopy(procedure.model.model_json_schema(ref_template=REF))
    components.update(schema.pop("$defs", {}))
    schema["properties"] = {
        "procedure_code": {"const": procedure.code, "type": "string"},
        "notify_by": {
            "type": "array",
            "items": {"enum": list(NOTIFY_CHANNELS)},
            "default": ["sms"],
            "description": "Channels the citizen chooses for notifications.",
        },
        "applicant_kind": {
            "enum": procedure.applicant_kinds,
            "default": 1,
            "description": "1 citizen, 2 enterprise, 3 state agency, 4 organisation.",
        },
        **schema["properties"],
    }
    schema["required"] = ["procedure_code", *schema.get("required", [])]
    schema.pop("examples", None)
    return schema


def example(procedure: Procedure) -> dict[str, Any]:
    """A complete valid submission for `procedure`."""
    body: dict[str, Any] = {"procedure_code": procedure.code, "notify_by": ["sms"]}
    body.update(copy.deepcopy(procedure.example))
    if procedure.example.get("applicant", {}).get("email"):
        body["notify_by"] = ["sms", "email"]
    if 1 not in procedure.applicant_kinds:
        body["applicant_kind"] = procedure.applicant_kinds[0]
    return body


def install(app: FastAPI, catalogue: Catalogue) -> None:
    """Describe POST /v1/dossiers by the catalogue in the app's OpenAPI document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        components = document.setdefault("components", {}).setdefault("schemas", {})
        refs = []
        for procedure in catalogue:
            name = "Submission_" + procedure.code.replace(".", "_").replace("-", "_")
            components[name] = submission_schema(procedure, components)
            refs.append({"$ref": REF.format(model=name)})
        body = document["paths"]["/v1/dossiers"]["post"]["requestBody"]
        body["content"]["application/json"] = {
            "schema": {
                "oneOf": refs,
                "discriminator": {"propertyName": "procedure_code"},
            },
            "examples": {
                procedure.code: {"summary": procedure.name_en, "value": example(procedure)}
                for procedure in catalogue
            },
        }
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
