"""Every name the national portal (DVCQG) uses: paths, fields, answer codes. Nothing else in
services/notify/national spells a portal name, so a change on the portal's side is one edit here.

Modelled on public implementations (OpenCPS's DVCQGIntegrationActionImpl and
SyncLocalDataToDVCQGService of HuanVu201/DichVuCong_KhoaLuan_PASETO). Assumed, not verified
against the portal's current specification:
- a login call (`LOGIN_PATH`) answers a session token; calls carry it as a bearer header;
- add, update and progress are three JSON POSTs with the dossier fields below;
- answers carry `error_code`: "0" ok, `EXISTS_CODE` on an add of a known dossier, `EXPIRED_CODE`
  when the token is no longer valid (an HTTP 401 means the same);
- dates are `yyyyMMddHHmmss` in Asia/Ho_Chi_Minh.
"""

from __future__ import annotations

from typing import Any

LOGIN_PATH = "/api/login"
PATHS = {
    "add": "/api/hoso/them-moi",
    "update": "/api/hoso/cap-nhat",
    "progress": "/api/hoso/tien-do",
}
ANSWER_CODE = "error_code"
OK_CODE = "0"
EXISTS_CODE = "HS_EXISTS"
EXPIRED_CODE = "TOKEN_EXPIRED"
TOKEN = "session"


def login_body(username: str, password: str) -> dict[str, Any]:
    return {"username": username, "password": password}


def dossier_body(
    *,
    code: str,
    procedure_code: str,
    channel: int,
    applicant_kind: int,
    received_at: str,
    promised_at: str | None,
    status: int,
    documents: list[dict[str, Any]],
    fee: int | None,
    applicant_name: str | None,
) -> dict[str, Any]:
    """The add/update body of one dossier (dates already in the portal's format)."""
    return {
        "MaHoSo": code,
        "MaTTHC": procedure_code,
        "KenhThucHien": channel,
        "LoaiDoiTuong": applicant_kind,
        "ChuHoSo": applicant_name or "",
        "NgayTiepNhan": received_at,
        "NgayHenTra": promised_at or "",
        "TrangThaiHoSo": status,
        "TaiLieuNop": [{"TenTepDinhKem": str(d.get("name", d.get("type", "")))} for d in documents],
        "DanhSachLePhi": [] if not fee else [{"TenPhiLePhi": "Lệ phí", "MucPhi": fee}],
    }


def progress_body(*, code: str, who: str, when: str, what: str, status: int) -> dict[str, Any]:
    """One step of a dossier's processing (quá trình xử lý)."""
    return {
        "MaHoSo": code,
        "NguoiXuLy": who,
        "ThoiDiemXuLy": when,
        "NoiDungXuLy": what,
        "TrangThai": status,
    }


def answer_code(answer: Any) -> str:
    if isinstance(answer, dict):
        return str(answer.get(ANSWER_CODE, ""))
    return ""
