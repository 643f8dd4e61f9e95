"""The role vocabulary is one module: tokens, review's directory and workflows all use it."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import get_args

import pytest
from pydantic import ValidationError

from services.review.roster import Officer, Role
from services.review.workflow import ROLES as WORKFLOW_ROLES
from services.review.workflow import load_all
from shared import auth, roles


def test_every_role_has_a_vietnamese_name_and_the_directory_knows_the_staff_roles() -> None:
    assert set(get_args(Role)) == roles.STAFF_ROLES
    assert WORKFLOW_ROLES == roles.ACTORS
    for role in roles.ROLES | roles.ACTORS:
        assert roles.name_vi(role) != role
    for workflow in load_all().by_version.values():
        for action in workflow.definition.actions:
            assert set(action.roles) <= roles.ACTORS


def test_a_token_naming_a_role_outside_the_vocabulary_is_refused() -> None:
    def token(role: str) -> str:
        claims = auth.OfficerClaims("x1", role, "U")
        return auth.issue(claims, secret="s" * 32, issuer="motcua", ttl=timedelta(minutes=1))

    verifier = auth.TokenVerifier(algorithm="HS256", issuer="motcua", secret="s" * 32)

    assert asyncio.run(verifier.verify(token("inspector"))).role == "inspector"
    with pytest.raises(auth.InvalidToken, match="unknown role"):
        asyncio.run(verifier.verify(token("superuser")))


def test_an_officer_of_the_directory_cannot_hold_a_role_outside_it() -> None:
    with pytest.raises(ValidationError, match="role"):
        Officer.model_validate({"id": "x", "name": "X", "role": "inspector", "unit": "U"})
