"""Dossier status codes as the national public-service portal counts them."""

from enum import IntEnum


class PortalStatus(IntEnum):
    """Trạng thái hồ sơ on the national portal; every internal state maps onto one of these."""

    NEW = 1  # Mới đăng ký
    RECEIVED = 2  # Được tiếp nhận
    REFUSED = 3  # Không được tiếp nhận
    IN_PROCESS = 4  # Đang xử lý
    SUPPLEMENT_REQUESTED = 5  # Yêu cầu bổ sung giấy tờ
    PAYMENT_REQUESTED = 6  # Yêu cầu thực hiện nghĩa vụ tài chính
    WITHDRAWN = 7  # Công dân yêu cầu rút hồ sơ
    STOPPED = 8  # Dừng xử lý
    DECIDED = 9  # Đã xử lý xong
    DELIVERED = 10  # Đã trả kết quả


class Channel(IntEnum):
    """Kênh thực hiện: how the dossier was submitted."""

    DESK = 1
    ONLINE = 2
    POST = 3
