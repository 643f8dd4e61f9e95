import json
import logging
import subprocess
import sys

from shared.logging import JsonFormatter, correlated
from tools.devstack import ROOT


def _format(**extra: object) -> dict[str, object]:
    record = logging.LogRecord("motcua.test", logging.INFO, __file__, 1, "hello %s", ("Lan",), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return dict(json.loads(JsonFormatter("review").format(record)))


def test_log_lines_are_json_with_service_and_extra_fields() -> None:
    line = _format(dossier="G01.99-261128-0001")
    assert line["message"] == "hello Lan"
    assert line["service"] == "review"
    assert line["dossier"] == "G01.99-261128-0001"
    assert "correlation_id" not in line


def test_log_lines_carry_the_correlation_id_while_an_event_is_handled() -> None:
    with correlated("corr-123"):
        assert _format()["correlation_id"] == "corr-123"
    assert "correlation_id" not in _format()


def test_token_command_refuses_an_officer_not_on_the_roster() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.review", "token", "nobody"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no active officer 'nobody'" in result.stderr
    assert result.stdout == ""


def test_token_command_prints_a_token_with_the_roster_claims() -> None:
    import jwt

    result = subprocess.run(
        [sys.executable, "-m", "services.review", "token", "cb-badinh-tp"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    claims = jwt.decode(result.stdout.strip(), options={"verify_signature": False})
    assert (claims["sub"], claims["role"], claims["unit"]) == (
        "cb-badinh-tp",
        "chief",
        "CAP-BADINH",
    )
