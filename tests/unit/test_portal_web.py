"""The portal's frame: security headers, CSRF, the session cookie, immutable static files,
languages, error pages, and how the services' problems reach the page."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote

import httpx
import pytest
from fastapi import APIRouter, Form, Request
from fastapi.responses import PlainTextResponse, Response

from services.portal import app as portal_app
from services.portal import csrf, session
from services.portal.app import create_app
from services.portal.clients import ApiProblem, reply
from services.portal.i18n import Catalogue
from services.portal.settings import PortalSettings

probe = APIRouter()


@probe.get("/probe/sign-in")
async def probe_sign_in(request: Request) -> Response:
    session.sign_in(
        request,
        session.SignedInOfficer("cb-1", "Nguyễn Văn An", "officer", "u-1", "tok", 4e9, via="dev"),
    )
    return PlainTextResponse(csrf.token(request))


@probe.get("/probe/me")
async def probe_me(officer: session.Officer) -> Response:
    return PlainTextResponse(officer.name)


@probe.post("/probe/form")
async def probe_form(_: csrf.Checked) -> Response:
    return PlainTextResponse("done")


@probe.get("/probe/crash")
async def probe_crash() -> Response:
    raise RuntimeError("a bug")


@probe.post("/probe/named")
async def probe_named(_: csrf.Checked, name: Annotated[str, Form()]) -> Response:
    return PlainTextResponse(name)


@probe.get("/probe/problem")
async def probe_problem() -> Response:
    raise ApiProblem(409, "Hồ sơ đã được tiếp nhận.", code="not_allowed")


@pytest.fixture
async def client(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setattr(portal_app, "ROUTERS", [*portal_app.ROUTERS, probe])
    app = create_app(PortalSettings(public_url="http://portal.test"))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://portal.test") as c,
    ):
        yield c


async def test_every_page_carries_the_security_headers(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'self'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in page.headers  # plain HTTP here


async def test_pages_have_no_inline_script(client: httpx.AsyncClient) -> None:
    page = (await client.get("/")).text
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert scripts, "htmx is loaded"
    assert all("src=" in attrs and not body.strip() for attrs, body in scripts)
    assert not re.search(r"\son[a-z]+=", page), "no inline event handler"


async def test_static_files_have_immutable_names(client: httpx.AsyncClient) -> None:
    page = (await client.get("/")).text
    css = re.search(r'href="(/static/portal\.[0-9a-f]{12}\.css)"', page)
    assert css
    asset = await client.get(css.group(1))
    assert asset.status_code == 200
    assert "immutable" in asset.headers["cache-control"]
    assert asset.headers["content-type"].startswith("text/css")
    assert (await client.get("/static/portal.css")).status_code == 404


async def test_a_page_behind_sign_in_redirects_there_and_comes_back(
    client: httpx.AsyncClient,
) -> None:
    away = await client.get("/probe/me?tab=mine")
    assert away.status_code == 303
    assert away.headers["location"] == "/signin?next=%2Fprobe%2Fme%3Ftab%3Dmine"
    await client.get("/probe/sign-in")
    assert (await client.get("/probe/me")).text == "Nguyễn Văn An"


async def test_the_session_cookie_is_httponly_and_samesite(client: httpx.AsyncClient) -> None:
    answer = await client.get("/probe/sign-in")
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{session.COOKIE}=")
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    assert "secure" not in cookie.lower()


def test_the_cookie_is_secure_over_tls() -> None:
    options = session.options(PortalSettings(public_url="https://motcua.example.vn"))
    assert options["https_only"] is True


async def test_a_form_without_its_csrf_token_is_refused(client: httpx.AsyncClient) -> None:
    token = (await client.get("/probe/sign-in")).text
    refused = await client.post("/probe/form", data={"x": "1"})
    assert refused.status_code == 403
    assert "mã bảo vệ" in refused.text
    changed = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]  # a whole byte off
    wrong = await client.post("/probe/form", data={csrf.FIELD: changed})
    assert wrong.status_code == 403
    assert (await client.post("/probe/form", data={csrf.FIELD: token})).text == "done"
    by_header = await client.post("/probe/form", headers={"X-CSRF-Token": token})
    assert by_header.text == "done"


async def test_each_page_carries_another_mask_of_one_token(client: httpx.AsyncClient) -> None:
    first = (await client.get("/probe/sign-in")).text
    pages = [(await client.get("/")).text for _ in range(2)]
    tokens = [re.search(r'name="csrf_token" value="([^"]+)"', p) for p in pages]
    assert all(tokens) and len({t.group(1) for t in tokens if t} | {first}) == 3  # BREACH
    for masked in [first, *(t.group(1) for t in tokens if t)]:  # every one of them works
        assert (await client.post("/probe/form", data={csrf.FIELD: masked})).text == "done"


async def test_a_form_posted_from_another_site_is_refused(client: httpx.AsyncClient) -> None:
    token = (await client.get("/probe/sign-in")).text
    answer = await client.post(
        "/probe/form", data={csrf.FIELD: token}, headers={"Origin": "https://evil.example"}
    )
    assert answer.status_code == 403


async def test_an_api_problem_shows_its_vietnamese_message(client: httpx.AsyncClient) -> None:
    page = await client.get("/probe/problem")
    assert page.status_code == 409
    assert "Hồ sơ đã được tiếp nhận." in page.text
    assert page.headers["content-type"].startswith("text/html")


async def test_english_on_request_and_remembered(client: httpx.AsyncClient) -> None:
    english = await client.get("/?lang=en")
    assert english.headers["content-language"] == "en"
    assert "Sign in" in english.text
    assert (await client.get("/")).headers["content-language"] == "en"
    assert "Đăng nhập" in (await client.get("/?lang=vi")).text


async def test_an_unknown_page_is_an_html_404(client: httpx.AsyncClient) -> None:
    page = await client.get("/no/such/page")
    assert page.status_code == 404
    assert "Không tìm thấy trang này." in page.text
    box = page.text.split('<div class="problem" role="alert">', 1)[1].split("</div>", 1)[0]
    assert "404" in box  # the status inside the problem box, under its message


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("/tasks?scope=mine", "/tasks?scope=mine"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        (None, "/"),
    ],
)
def test_only_local_paths_are_returned_to(given: str | None, kept: str) -> None:
    assert session.safe_next(given) == kept


def test_an_expired_officer_is_signed_out() -> None:
    officer = session.SignedInOfficer("cb-1", "A", "officer", "u-1", "tok", expires_at=1.0)
    assert officer.expired


def test_a_problem_answer_becomes_an_api_problem_with_its_fields() -> None:
    body = {
        "title": "Dữ liệu không hợp lệ",
        "status": 422,
        "detail": "Thiếu số điện thoại.",
        "code": "validation_failed",
        "errors": [{"field": "applicant.phone", "message": "bắt buộc"}],
    }
    answer = httpx.Response(
        422, content=json.dumps(body).encode(), headers={"content-type": "application/problem+json"}
    )
    with pytest.raises(ApiProblem) as caught:
        reply(answer, "intake", "vi")
    assert caught.value.detail == "Thiếu số điện thoại."
    assert caught.value.errors[0]["field"] == "applicant.phone"


def test_a_service_error_page_is_not_its_stack_trace() -> None:
    with pytest.raises(ApiProblem) as caught:
        reply(httpx.Response(502, text="<html>Bad gateway</html>"), "review", "vi")
    assert caught.value.status == 503
    assert "review" in caught.value.detail


def _texts(folder: Path, lang: str, part: str, texts: dict[str, str]) -> None:
    (folder / lang).mkdir(exist_ok=True)
    (folder / lang / f"{part}.json").write_text(json.dumps(texts), encoding="utf-8")


def test_every_text_exists_in_both_languages(tmp_path: Path) -> None:
    _texts(tmp_path, "vi", "common", {"a": "một", "b": "hai"})
    _texts(tmp_path, "en", "common", {"a": "one"})
    with pytest.raises(ValueError, match="b"):
        Catalogue(tmp_path)
    Catalogue()  # the portal's own catalogue is complete


def test_a_text_defined_by_two_parts_is_refused(tmp_path: Path) -> None:
    _texts(tmp_path, "vi", "common", {"a": "một"})
    _texts(tmp_path, "vi", "queues", {"a": "khác"})
    _texts(tmp_path, "en", "common", {"a": "one"})
    with pytest.raises(ValueError, match="twice"):
        Catalogue(tmp_path)


def test_texts_are_nfc(tmp_path: Path) -> None:
    _texts(tmp_path, "vi", "common", {"a": "Nguye\u0302\u0303n"})
    _texts(tmp_path, "en", "common", {"a": "x"})
    assert Catalogue(tmp_path).translator("vi")("a") == "Nguyễn"


def _session_of(cookie: str) -> dict[str, Any]:
    payload = cookie.split(".")[0]
    return dict(json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4))))


async def test_the_token_in_the_cookie_is_sealed(client: httpx.AsyncClient) -> None:
    answer = await client.get("/probe/sign-in")
    stored = _session_of(answer.cookies[session.COOKIE])["officer"]
    assert stored["name"] == "Nguyễn Văn An" and stored["token"] != "tok"
    assert (await client.get("/probe/me")).text == "Nguyễn Văn An"  # the portal opens it


async def test_a_cookie_sealed_under_another_secret_signs_nobody_in() -> None:
    other = create_app(PortalSettings(public_url="http://portal.test"))
    other.state.session_cipher = session.cipher(PortalSettings(session_secret="another-" * 5))
    probe_app = portal_app.create_app(PortalSettings(public_url="http://portal.test"))
    for app in (other, probe_app):
        app.include_router(probe)
    made = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=other), base_url="http://portal.test"
    )
    used = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=probe_app), base_url="http://portal.test"
    )
    async with made, used:
        cookie = (await made.get("/probe/sign-in")).cookies[session.COOKIE]
        used.cookies.set(session.COOKIE, cookie)
        assert (await used.get("/probe/me")).status_code == 303  # to sign-in


async def test_a_crash_page_carries_the_security_headers(client: httpx.AsyncClient) -> None:
    page = await client.get("/probe/crash")
    assert page.status_code == 500
    assert "a bug" not in page.text and "Hệ thống gặp lỗi" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"


async def test_a_form_missing_a_field_is_a_vietnamese_page(client: httpx.AsyncClient) -> None:
    token = (await client.get("/probe/sign-in")).text
    page = await client.post("/probe/named", data={csrf.FIELD: token})
    assert page.status_code == 422
    assert page.headers["content-type"].startswith("text/html")
    assert "Biểu mẫu gửi lên thiếu hoặc sai: name" in page.text


async def test_a_method_not_allowed_is_named_in_the_page_language(
    client: httpx.AsyncClient,
) -> None:
    page = await client.delete("/")
    assert page.status_code == 405 and "Phương thức không được hỗ trợ" in page.text


async def test_coming_back_after_sign_in_keeps_the_query_as_it_was(
    client: httpx.AsyncClient,
) -> None:
    away = await client.get("/probe/me?q=0912%20345%20678")
    assert away.headers["location"] == "/signin?next=%2Fprobe%2Fme%3Fq%3D0912%2520345%2520678"
    assert unquote(away.headers["location"].split("next=")[1]) == "/probe/me?q=0912%20345%20678"


async def test_a_large_body_is_refused_before_it_is_read(client: httpx.AsyncClient) -> None:
    token = (await client.get("/probe/sign-in")).text
    answer = await client.post(
        "/probe/named", data={csrf.FIELD: token, "name": "x" * (portal_app.FORM_BYTES + 1)}
    )
    assert answer.status_code == 413


@pytest.mark.parametrize(
    "where",
    [
        {"public_url": "https://motcua.example.vn"},
        {"oidc_discovery_url": "https://id.example.vn/.well-known/openid-configuration"},
    ],
)
def test_the_development_sign_in_is_refused_in_a_real_deployment(where: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="DEVELOPMENT_SIGNIN must be off"):
        PortalSettings.model_validate({"development_signin": True, **where})


@pytest.mark.parametrize("segment", ["..", "%2E%2E", "."])
async def test_a_document_path_cannot_climb_intakes_path(
    client: httpx.AsyncClient, segment: str
) -> None:
    await client.get("/probe/sign-in")
    answer = await client.get(f"/documents/G01.99-261201-0001/{segment}")
    assert answer.status_code in (404, 422)


async def test_an_htmx_request_that_fails_loads_the_whole_page(client: httpx.AsyncClient) -> None:
    answer = await client.get("/probe/problem?tab=2", headers={"HX-Request": "true"})
    assert answer.status_code == 204
    assert answer.headers["hx-redirect"] == "http://portal.test/probe/problem?tab=2"
    whole = await client.get("/probe/problem?tab=2")  # what the browser then loads
    assert whole.status_code == 409 and "Hồ sơ đã được tiếp nhận." in whole.text
