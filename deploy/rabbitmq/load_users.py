"""Import `definitions.json` (beside this file) with each service user's password, through the
management API: what the Docker Compose stack runs once RabbitMQ is up (`broker-users`).

    MOTCUA_BROKER_PASSWORD_INTAKE=… (REVIEW, NOTIFY, AUDIT) \
    MOTCUA_RABBITMQ_MANAGEMENT_USER=… MOTCUA_RABBITMQ_MANAGEMENT_PASSWORD=… \
    python deploy/rabbitmq/load_users.py --management-url http://rabbitmq:15672

RabbitMQ hashes a user's `password` on import (its salted SHA-256), so no hash is computed
here and no password is written to a file; the standard library is all it needs. Importing
again changes only the passwords.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.request
from pathlib import Path
from typing import Any

DEFINITIONS = Path(__file__).with_name("definitions.json")


def with_passwords(definitions: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """`definitions` whose users `motcua-<service>` carry `MOTCUA_BROKER_PASSWORD_<SERVICE>`;
    ValueError naming the first variable unset."""
    users = []
    for user in definitions["users"]:
        variable = "MOTCUA_BROKER_PASSWORD_" + user["name"].removeprefix("motcua-").upper()
        password = env.get(variable, "")
        if not password:
            raise ValueError(f"{variable} is not set (the password of {user['name']})")
        users.append(
            {k: v for k, v in user.items() if k != "password_hash"} | {"password": password}
        )
    return {**definitions, "users": users}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--management-url", required=True)
    args = parser.parse_args(argv)
    try:
        rendered = with_passwords(json.loads(DEFINITIONS.read_text()), dict(os.environ))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    login = ":".join(
        os.environ.get(f"MOTCUA_RABBITMQ_MANAGEMENT_{part}", "") for part in ("USER", "PASSWORD")
    )
    request = urllib.request.Request(
        args.management_url.rstrip("/") + "/api/definitions",
        data=json.dumps(rendered).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(login.encode()).decode(),
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        print(f"definitions imported with {len(rendered['users'])} users: HTTP {response.status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
