"""Every name the national portal (DVCQG) uses: paths, services, fields, answer codes. Nothing
else in services/notify/national spells a portal name, so a change on the portal's side is one
edit here.

Modelled on two public implementations, read for this adapter:
- OpenCPS's `DVCQGIntegrationActionImpl` (VietOpenCPS/opencps-v2): a login POST of
  `{username, password}` answers `{"session": …, "error_code": 0}`; every call then POSTs to one
  integration endpoint `{"session", "madonvi", "service", "data": [...]}` with the service
  `DongBoHoSoMC` (add, or update with `"isUpdating": "True"`) or `CapNhatTienDoHoSoMC`
  (progress steps); every value is a string, dates `yyyyMMddHHmmss` in Asia/Ho_Chi_Minh.
- `SyncLocalDataToDVCQGService` (HuanVu201/DichVuCong_KhoaLuan_PASETO): the same field names
  (`MaHoSo`, `MaTTHC`, `KenhThucHien`, `LoaiDoiTuong` 1 citizen / 2 business / 3 state body /
  4 other, `NgayTiepNhan`, `NgayHenTra`, `TrangThaiHoSo`, `TaiLieuNop`, `DanhSachLePhi` with
  `TenPhiLePhi`, `MaPhiLePhi`, `HinhThucThu`, `Gia`, `LoaiPhiLePhi`); answers
  `{error_code, message}`, an add of a known dossier answered with a message saying it
  "đã tồn tại" (exists), after which it sends the update; states 5, 6 and 8 collapsed to 9.

Assumed, not verified against the portal's current specification (none is public): the two
paths (operators set them: `MOTCUA_NOTIFY_DVCQG_AUTH_PATH`, `…_INTEGRATION_PATH`); "0" and "00"
both meaning success (OpenCPS checks "00" after a sync, 0 after login; HuanVu "0");
`EXPIRED_CODE` (or HTTP 401) when the session is no longer valid.
"""

from __future__ import annotations

from typing import Any, Literal

Kind = Literal["add", "update", "progress"]

LOGIN_PATH = "/api/auth"
INTEGRATION_PATH = "/api/integration"
"""Defaults of the settings `auth_path` and `integration_path`."""
SERVICE = {"add": "DongBoHoSoMC", "update": "DongBoHoSoMC", "progress": "CapNhatTienDoHoSoMC"}
UPDATING = {"add": "False", "update": "True"}
"""`isUpdating` of a DongBoHoSoMC call: an add or an update of a dossier the portal knows."""
ANSWER_CODE = "error_code"
MESSAGE = "message"
OK_CODES = frozenset({"0", "00"})
EXISTS_WORDS = "đã tồn tại"
EXPIRED_CODE = "-401"
TOKEN = "session"
ONE_STOP = "Cán bộ một cửa"
"""Who a step was done by when the event names nobody (HuanVu's own default)."""


def login_body(username: str, password: str) -> dict[str, Any]:
    return {"username": username, "password": password}


def envelope(kind: Kind, token: str, unit_code: str, item: dict[str, Any]) -> dict[str, Any]:
    """One call of `kind` carrying one dossier (or one step) in its `data` list."""
    body: dict[str, Any] = {
        TOKEN: token,
        "madonvi": unit_code,
        "service": SERVICE[kind],
        "data": [item],
    }
    if kind in UPDATING:
        body["isUpdating"] = UPDATING[kind]
    return body


def kind_of(body: dict[str, Any]) -> Kind:
    """The operation an envelope carries (the loopback stand-in reads calls with it)."""
    if body.get("service") == SERVICE["progress"]:
        return "progress"
    return "update" if body.get("isUpdating") == UPDATING["update"] else "add"


def dossier_body(
    *,
    code: str,
    procedure_code: str,
    channel: int,
    applicant_kind: int,
    received_at: str,
    submitted_at: str,
    promised_at: str | None,
    status: int,
    documents: list[dict[str, Any]],
    fee: int | None,
    applicant_name: str | None,
    unit: str | None,
    procedure_name: str | None,
) -> dict[str, Any]:
    """The DongBoHoSoMC item of one dossier (dates already in the portal's format). No personal
    ID, phone or e-mail: the portal gets what it shows the citizen, not our records."""
    return {
        "MaHoSo": code,
        "MaTTHC": procedure_code,
        "TenTTHC": procedure_name or "",
        "KenhThucHien": str(channel),
        "LoaiDoiTuong": str(applicant_kind),
        "ChuHoSo": applicant_name or "",
        "NgayNopHoSo": submitted_at,
        "NgayTiepNhan": received_at,
        "NgayHenTra": promised_at or "",
        "TrangThaiHoSo": str(status),
        "HinhThuc": "0",
        "DonViXuLy": unit or "",
        "TaiLieuNop": [
            {
                "TepDinhKemId": str(d.get("id", "")),
                "TenTepDinhKem": str(d.get("name") or d.get("document_type") or ""),
                "MaThanhPhanHoSo": str(d.get("document_type", "")),
            }
            for d in documents
        ],
        "DanhSachLePhi": []
        if not fee
        else [
            {
                "TenPhiLePhi": "Lệ phí",
                "MaPhiLePhi": "1",
                "HinhThucThu": "1",
                "Gia": str(fee),
                "LoaiPhiLePhi": "1",
            }
        ],
    }


def progress_body(*, code: str, who: str, when: str, what: str, status: int) -> dict[str, Any]:
    """One CapNhatTienDoHoSoMC item: a step of a dossier's processing (quá trình xử lý)."""
    return {
        "MaHoSo": code,
        "NguoiXuLy": who,
        "ChucDanh": "",
        "ThoiDiemXuLy": when,
        "PhongBanXuLy": "",
        "NoiDungXuLy": what,
        "TrangThai": str(status),
        "NgayBatDau": "",
        "NgayKetThucTheoQuyDinh": "",
    }


def answer_code(answer: Any) -> str:
    if isinstance(answer, dict):
        return str(answer.get(ANSWER_CODE, ""))
    return ""


def says_exists(answer: Any) -> bool:
    """An add refused because the portal has the dossier already (HuanVu reads the message)."""
    return isinstance(answer, dict) and EXISTS_WORDS in str(answer.get(MESSAGE, "")).lower()
