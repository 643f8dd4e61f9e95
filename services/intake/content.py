"""What a file really is, by its bytes, whatever type the client claims (pure: no I/O).

A PDF starts with `%PDF-` and ends (within its last KiB) with `%%EOF`; a JPEG, PNG or WebP must
decode completely with Pillow, under a pixel limit that stops decompression bombs. Anything else
is refused, and so is a file whose claimed type is not the one its content shows: a PNG sent as
`application/pdf`, an HTML page named `.jpg`, a photo cut off halfway through its upload.

The refusals are `Problem`s (problem+json, Vietnamese and English), raised before anything is
stored, so intake's upload route answers them as they are.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator

from PIL import Image, ImageFile

from shared.problems import Problem

PDF = "application/pdf"
IMAGES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
NAMES = {PDF: "PDF", "image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WebP"}
EOF_WINDOW = 1024  # `%%EOF` may be followed by a line end or a little trailing garbage
MAX_PIXELS = 50_000_000  # a 50 Mpx photo is larger than any phone takes; beyond it, a bomb


class ContentRefused(Problem):
    """A file refused for what its bytes are (415) or because they do not decode (422)."""


def real_type(data: bytes, claimed: str, *, max_pixels: int = MAX_PIXELS) -> str:
    """The media type the content shows, once it matches `claimed` and decodes whole;
    ContentRefused otherwise."""
    found = sniff(data)
    if found != claimed:
        raise _mismatch(claimed, found)
    if found == PDF:
        if b"%%EOF" not in data[-EOF_WINDOW:]:
            raise _damaged(found)
    else:
        _decode(data, found, max_pixels)
    return found


def sniff(data: bytes) -> str | None:
    """The type the first bytes announce (their magic number), decodable or not."""
    if data.startswith(b"%PDF-"):
        return PDF
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _decode(data: bytes, media_type: str, max_pixels: int) -> None:
    """Decode the whole image (verify the structure, then every pixel), within `max_pixels`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=list(IMAGES)) as image:
                if IMAGES.get(image.format or "") != media_type:
                    raise _damaged(media_type)
                width, height = image.size
                if width * height > max_pixels:
                    raise _too_many_pixels(width, height, max_pixels)
                image.verify()
            with Image.open(io.BytesIO(data), formats=list(IMAGES)) as image, _whole_only():
                image.load()
    except ContentRefused:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise _too_many_pixels(0, 0, max_pixels) from exc
    except Exception as exc:  # Pillow's decoders raise OSError, SyntaxError, struct.error...
        raise _damaged(media_type) from exc


@contextlib.contextmanager
def _whole_only() -> Iterator[None]:
    """Pillow's decoders with truncated images refused, whatever the process set: WeasyPrint
    (imported by the portal) turns `LOAD_TRUNCATED_IMAGES` on for all at import."""
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before


def _name(media_type: str | None) -> str:
    return NAMES.get(media_type or "", media_type or "")


def _mismatch(claimed: str, found: str | None) -> ContentRefused:
    want = _name(claimed)
    extra = {"declared": claimed, "detected": found}
    if found is None:
        return ContentRefused(
            415,
            f"The file sent is not of the declared type (it is not a {want} file, nor any "
            "type accepted: PDF, JPEG, PNG, WebP).",
            f"Tệp gửi lên không đúng loại đã khai (không phải {want}, cũng không phải loại nào "
            "được nhận: PDF, JPEG, PNG, WebP).",
            code="content_mismatch",
            extra=extra,
        )
    is_ = _name(found)
    return ContentRefused(
        415,
        f"The file sent is not of the declared type (it is {is_}, not {want}).",
        f"Tệp gửi lên không đúng loại đã khai (là {is_}, không phải {want}).",
        code="content_mismatch",
        extra=extra,
    )


def _damaged(media_type: str) -> ContentRefused:
    name = _name(media_type)
    return ContentRefused(
        422,
        f"The {name} file is damaged or incomplete (it does not read to its end): "
        "please send it again.",
        f"Tệp {name} bị hỏng hoặc chưa gửi hết (không đọc được đến cuối tệp): vui lòng gửi lại.",
        code="file_damaged",
        extra={"media_type": media_type},
    )


def _too_many_pixels(width: int, height: int, limit: int) -> ContentRefused:
    return ContentRefused(
        422,
        f"The image has too many pixels (over {limit:,}): please send a smaller one.",
        f"Ảnh có quá nhiều điểm ảnh (trên {limit:,}): vui lòng gửi ảnh nhỏ hơn.",
        code="image_too_large",
        extra={"width": width, "height": height, "max_pixels": limit},
    )
