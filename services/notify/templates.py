"""Messages from Jinja2 template files: `<template>/<channel>.<lang>.j2`.

An e-mail template defines the blocks `subject` and `text`; its HTML part is the text put
through `_layout/email.html.j2`, which autoescapes, so nothing a citizen or officer typed
becomes markup. An SMS template is plain text (made ASCII by the SMS channel). A Zalo template
renders the JSON object of `template_data` (use `|tojson` for values).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


class UnknownTemplate(LookupError):
    """No template file for this template name, channel and language."""


@dataclass(frozen=True)
class Rendered:
    subject: str = ""
    text: str = ""
    html: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def vn_date(value: datetime | date | str | None) -> str:
    """`dd/mm/yyyy` in Vietnam's time zone; empty for no date."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        value = value.astimezone(VIETNAM).date()
    return value.strftime("%d/%m/%Y")


def vnd(amount: int | None) -> str:
    """`10000` → `10.000 đồng`."""
    return "" if amount is None else f"{amount:,} đồng".replace(",", ".")


class Templates:
    def __init__(self, directory: Path, *, default_language: str = "vi") -> None:
        self.directory = directory
        self.default_language = default_language
        self.env = Environment(
            loader=FileSystemLoader(directory),
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self.env.filters["vn_date"] = vn_date
        self.env.filters["vnd"] = vnd

    def _template_name(self, template: str, channel: str, language: str) -> str:
        for lang in dict.fromkeys([language, self.default_language]):
            name = f"{template}/{channel}.{lang}.j2"
            if (self.directory / name).is_file():
                return name
        raise UnknownTemplate(f"no template {template}/{channel}.{language}.j2")

    def language_of(self, template: str, channel: str, language: str) -> str:
        """The language `render` uses for `language`: it, or the default when it has no file."""
        name = self._template_name(template, channel, language)
        return name.rpartition(".j2")[0].rpartition(".")[2]

    def exists(self, template: str, channel: str, language: str) -> bool:
        try:
            self._template_name(template, channel, language)
        except UnknownTemplate:
            return False
        return True

    def render(
        self, template: str, channel: str, context: dict[str, Any], *, language: str = ""
    ) -> Rendered:
        name = self._template_name(template, channel, language or self.default_language)
        try:
            tmpl = self.env.get_template(name)
        except TemplateNotFound as exc:
            raise UnknownTemplate(str(exc)) from exc
        if channel == "email":
            ctx = tmpl.new_context(context)
            subject = "".join(tmpl.blocks["subject"](ctx)).strip()
            text = "".join(tmpl.blocks["text"](ctx)).strip() + "\n"
            paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
            html = self.env.get_template("_layout/email.html.j2").render(
                subject=subject, paragraphs=paragraphs
            )
            return Rendered(subject=subject, text=text, html=html)
        rendered = tmpl.render(context).strip()
        if channel == "zalo":
            data = json.loads(rendered)
            if not isinstance(data, dict):
                raise ValueError(f"{name} does not render a JSON object")
            return Rendered(data=data)
        return Rendered(text=rendered)
