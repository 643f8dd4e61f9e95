"""RFC 9457 problem details (application/problem+json), in Vietnamese or English."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)

TITLES: dict[int, tuple[str, str]] = {
    400: ("Bad request", "Yêu cầu không hợp lệ"),
    401: ("Authentication required", "Cần xác thực"),
    403: ("Forbidden", "Không có quyền thực hiện"),
    404: ("Not found", "Không tìm thấy"),
    405: ("Method not allowed", "Phương thức không được hỗ trợ"),
    409: ("Conflict", "Xung đột trạng thái"),
    413: ("Request too large", "Yêu cầu quá lớn"),
    422: ("Invalid input", "Dữ liệu không hợp lệ"),
    500: ("Internal error", "Lỗi hệ thống"),
    429: ("Too many requests", "Quá nhiều yêu cầu"),
    503: ("Service unavailable", "Dịch vụ tạm thời không sẵn sàng"),
}


class Problem(Exception):
    """An error answered as problem+json; `detail` is given in English and Vietnamese."""

    def __init__(
        self,
        status: int,
        detail: str,
        detail_vi: str,
        *,
        code: str,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.detail_vi = detail_vi
        self.code = code
        self.extra = extra or {}
        self.headers = headers


def wants_vietnamese(request: Request) -> bool:
    """True when Accept-Language prefers Vietnamese over English."""
    header = request.headers.get("accept-language", "")
    for part in header.split(","):
        lang = part.split(";")[0].strip().lower()
        if lang.startswith("vi"):
            return True
        if lang.startswith("en"):
            return False
    return False


def problem_response(
    request: Request,
    status: int,
    *,
    code: str,
    detail: str,
    detail_vi: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    vi = wants_vietnamese(request)
    title_en, title_vi = TITLES.get(status, ("Error", "Lỗi"))
    body: dict[str, Any] = {
        "type": f"urn:motcua:problem:{code}",
        "title": title_vi if vi else title_en,
        "status": status,
        "detail": detail_vi if vi else detail,
        "instance": request.url.path,
        "code": code,
    }
    body.update(extra or {})
    if isinstance(body.get("errors"), list):
        body["errors"] = [_localised(e, vi) for e in body["errors"]]
    response = JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)
    response.headers["content-language"] = "vi" if vi else "en"
    return response


def _localised(error: Any, vietnamese: bool) -> Any:
    """Keep the message in the client's language: `message_vi` replaces `message` for vi."""
    if not isinstance(error, dict) or "message_vi" not in error:
        return error
    localised = {k: v for k, v in error.items() if k != "message_vi"}
    if vietnamese:
        localised["message"] = error["message_vi"]
    return localised


def field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    """One entry per invalid field: its dotted path, a machine code and a message."""
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        errors.append(
            {
                "field": ".".join(loc) or "body",
                "code": str(err.get("type", "invalid")),
                "message": str(err.get("msg", "invalid value")),
            }
        )
    return errors


def install(app: FastAPI) -> None:
    """Answer every error of `app` as problem+json."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(
            request,
            exc.status,
            code=exc.code,
            detail=exc.detail,
            detail_vi=exc.detail_vi,
            extra=exc.extra,
            headers=exc.headers,
        )

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = field_errors(exc)
        fields = ", ".join(e["field"] for e in errors)
        return problem_response(
            request,
            422,
            code="validation_failed",
            detail=f"The request has invalid fields: {fields}.",
            detail_vi=f"Yêu cầu có trường không hợp lệ: {fields}.",
            extra={"errors": errors},
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        title_en, title_vi = TITLES.get(exc.status_code, ("Error", "Lỗi"))
        detail = exc.detail if isinstance(exc.detail, str) else title_en
        return problem_response(
            request,
            exc.status_code,
            code=f"http_{exc.status_code}",
            detail=detail,
            detail_vi=title_vi,
            headers=dict(exc.headers or {}),
        )

    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return problem_response(
            request,
            500,
            code="internal_error",
            detail="Something went wrong on our side; nothing was changed unless the answer "
            "says so. Please try again.",
            detail_vi="Hệ thống gặp lỗi; vui lòng thử lại.",
        )

    app.add_exception_handler(Exception, on_crash)
    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
