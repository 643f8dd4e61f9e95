"""A real service process started in production mode with the development defaults stops before
it serves, naming the settings to set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_audit_refuses_to_start_with_development_defaults() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
    env["MOTCUA_ENV"] = "production"
    env["MOTCUA_AUDIT_PORT"] = "1"  # never bound: the process must stop before serving
    done = subprocess.run(
        [sys.executable, "-m", "services.audit"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 78, done.stderr
    for setting in (
        "MOTCUA_JWT_SECRET",
        "MOTCUA_AMQP_URL",
        "MOTCUA_AUDIT_HMAC_KEY",
        "MOTCUA_AUDIT_SIGNING_KEY",
        "MOTCUA_AUDIT_TRUSTED_PUBLIC_KEYS",
    ):
        assert setting in done.stderr
