"""`python -m shared.contracts schemas OUTDIR` writes one JSON Schema per event type;
`python -m shared.contracts asyncapi [--write docs/asyncapi.yaml]` prints (or writes) the
AsyncAPI 3.0 event catalogue."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shared.contracts import asyncapi
from shared.contracts.registry import EVENT_TYPES


def write_schemas(outdir: Path) -> list[Path]:
    """Write `<type>.schema.json` for every registered event type; return the paths."""
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type, model in sorted(EVENT_TYPES.items()):
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"urn:motcua:event:{event_type}"
        path = outdir / f"{event_type}.schema.json"
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shared.contracts")
    sub = parser.add_subparsers(dest="command", required=True)
    schemas = sub.add_parser("schemas", help="write one JSON Schema per event type")
    schemas.add_argument("outdir", type=Path)
    catalogue = sub.add_parser("asyncapi", help="print or write the AsyncAPI 3.0 catalogue")
    catalogue.add_argument("--write", type=Path, metavar="FILE", help="e.g. docs/asyncapi.yaml")
    args = parser.parse_args(argv)
    if args.command == "asyncapi":
        text = asyncapi.dump(asyncapi.generate())
        if args.write is None:
            print(text, end="")
        else:
            args.write.write_text(text, encoding="utf-8")
            print(args.write)
        return
    for path in write_schemas(args.outdir):
        print(path)


if __name__ == "__main__":
    main()
