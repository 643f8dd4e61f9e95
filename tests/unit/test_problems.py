import httpx
from fastapi import FastAPI
from pydantic import BaseModel

from shared import problems


class Body(BaseModel):
    n: int


def _app() -> FastAPI:
    app = FastAPI()
    problems.install(app)

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    @app.post("/x")
    async def x(body: Body) -> dict[str, int]:
        raise problems.Problem(409, "Busy.", "Đang bận.", code="busy", extra={"allowed": []})

    return app


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://t")


async def test_validation_errors_are_problem_json_with_field_entries() -> None:
    async with _client() as client:
        response = await client.post("/x", json={"n": "many"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["errors"] == [
        {"field": "n", "code": "int_parsing", "message": body["errors"][0]["message"]}
    ]
    assert body["status"] == 422


async def test_messages_follow_accept_language() -> None:
    async with _client() as client:
        vi = await client.post(
            "/x", json={"n": 1}, headers={"Accept-Language": "vi-VN,vi;q=0.9,en;q=0.5"}
        )
        en = await client.post("/x", json={"n": 1}, headers={"Accept-Language": "en-US"})
    assert vi.json()["detail"] == "Đang bận." and vi.headers["content-language"] == "vi"
    assert en.json()["detail"] == "Busy." and en.headers["content-language"] == "en"
    assert vi.json()["allowed"] == [] and vi.status_code == 409


async def test_unknown_routes_are_problem_json_too() -> None:
    async with _client() as client:
        response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_an_unexpected_error_is_problem_json_too() -> None:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/crash")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "internal_error"
    assert "boom" not in response.text  # no internals leak to the caller
