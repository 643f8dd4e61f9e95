"""Pages rendered on the server with Jinja2 (autoescaped): every template gets the signed-in
officer, the CSRF token, the language and its texts, and the immutable URLs of static files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.portal import csrf, i18n, session
from services.portal.assets import Assets

HERE = Path(__file__).resolve().parent / "templates"


class Pages:
    def __init__(self, assets: Assets, catalogue: i18n.Catalogue, default_language: str) -> None:
        self.env = Environment(
            loader=FileSystemLoader(HERE),
            autoescape=select_autoescape(["html", "xml", "svg"]),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals["asset"] = assets.url
        self.catalogue = catalogue
        self.default_language = default_language

    def language(self, request: Request) -> str:
        return i18n.language(request, self.default_language)

    def render(
        self,
        request: Request,
        template: str,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        lang = self.language(request)
        html = self.env.get_template(template).render(
            request=request,
            officer=session.current_officer(request),
            csrf_token=csrf.token(request),
            csrf_field=csrf.FIELD,
            lang=lang,
            other_lang="en" if lang == "vi" else "vi",
            t=self.catalogue.translator(lang),
            **context,
        )
        response = HTMLResponse(html, status_code=status, headers=headers)
        response.headers["Content-Language"] = lang
        if request.query_params.get("lang") in i18n.LANGUAGES:
            response.set_cookie(
                i18n.COOKIE, lang, max_age=365 * 86400, httponly=True, samesite="lax"
            )
        return response
