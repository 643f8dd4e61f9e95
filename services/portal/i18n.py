"""Vietnamese by default, English on request: `?lang=en` (kept in a cookie) picks the language;
texts live in `locales/<lang>/<part>.json` (one file per part of the portal), looked up by key,
with `{name}` placeholders."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Request

LANGUAGES = ("vi", "en")
COOKIE = "lang"
HERE = Path(__file__).resolve().parent / "locales"


class Catalogue:
    """Every text of the pages in each language; a key missing in one language is a start-up
    error, not an English word on a Vietnamese page."""

    def __init__(self, folder: Path = HERE) -> None:
        self.texts: dict[str, dict[str, str]] = {}
        for lang in LANGUAGES:
            texts: dict[str, str] = {}
            for path in sorted((folder / lang).glob("*.json")):
                raw = json.loads(path.read_text(encoding="utf-8"))
                twice = set(raw) & set(texts)
                if twice:
                    raise ValueError(f"{path}: texts defined twice: {sorted(twice)}")
                texts.update({k: unicodedata.normalize("NFC", v) for k, v in raw.items()})
            self.texts[lang] = texts
        keys = [set(t) for t in self.texts.values()]
        missing = keys[0].union(*keys[1:]) - keys[0].intersection(*keys[1:])
        if missing:
            raise ValueError(f"texts missing in a language: {sorted(missing)}")

    def translator(self, lang: str) -> Callable[..., str]:
        texts = self.texts[lang]

        def t(key: str, **values: Any) -> str:
            text = texts.get(key)
            if text is None:
                raise KeyError(f"no text {key!r}")
            return text.format(**values) if values else text

        return t


def language(request: Request, default: str) -> str:
    """The page's language: `?lang=`, else the cookie, else the portal's default."""
    for value in (request.query_params.get("lang"), request.cookies.get(COOKIE)):
        if value in LANGUAGES:
            return value
    return default
