"""Photos from a phone camera, made to fit a document's size limit before intake sees them
(pure: bytes in, bytes out).

A phone's JPEG is often 3-8 MB, 4000 px wide, lying on its side (the camera records the turn
in EXIF instead of turning the pixels) and carrying where it was taken (GPS) in its metadata.
`fit_photo` turns it upright, caps its longest side, drops every metadata block and re-encodes it,
stepping the JPEG quality down (then the size) until it is under the limit. A JPEG already
small, upright and without metadata is kept byte for byte (no needless second compression).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from PIL import Image, ImageOps

JPEG = "image/jpeg"
MAX_SIDE = 2000  # px: a document stays legible, and a 2000 px JPEG is ~0.3-1 MB
QUALITIES = (85, 75, 65, 55, 45, 35)
SHRINK = 0.75  # when the lowest quality is still too large, the side shrinks by this much
MIN_SIDE = 400  # below this a scanned page is not legible any more: give up instead
PRIVATE = ("exif", "xmp", "XML:com.adobe.xmp", "comment", "photoshop", "iptc", "mp")


class PhotoTooLarge(Exception):
    """Even at the lowest quality and smallest legible size, the photo is over the limit."""


@dataclass(frozen=True)
class Fitted:
    data: bytes
    media_type: str
    changed: bool
    size: tuple[int, int]


def fit_photo(data: bytes, media_type: str, *, max_bytes: int, max_side: int = MAX_SIDE) -> Fitted:
    """`data` made to fit `max_bytes` when it is a JPEG; any other file as it came (intake
    checks its content and size). Raises PhotoTooLarge if a JPEG cannot be brought under."""
    if media_type != JPEG:
        return Fitted(data, media_type, changed=False, size=(0, 0))
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
            if not _needs_work(image, len(data), max_bytes, max_side):
                return Fitted(data, JPEG, changed=False, size=image.size)
            ratio = min(1.0, max_side / max(image.size))  # decode at 1/2, 1/4... when enough
            image.draft("RGB", (math.ceil(image.width * ratio), math.ceil(image.height * ratio)))
            image.load()
            upright = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError):
        return Fitted(data, media_type, changed=False, size=(0, 0))  # intake says it's damaged
    if upright.mode != "RGB":
        upright = upright.convert("RGB")
    upright.info.clear()  # Pillow would write a kept comment or ICC profile back
    side = min(max_side, max(upright.size))
    while True:
        scaled = _scaled(upright, side)
        for quality in QUALITIES:
            out = _encode(scaled, quality)
            if len(out) <= max_bytes:
                return Fitted(out, JPEG, changed=True, size=scaled.size)
        if side * SHRINK < MIN_SIDE:
            raise PhotoTooLarge(f"{len(data)} bytes cannot fit {max_bytes}")
        side = int(side * SHRINK)


def _needs_work(image: Image.Image, length: int, max_bytes: int, max_side: int) -> bool:
    orientation = image.getexif().get(0x0112, 1)  # EXIF Orientation: 1 is upright
    private = any(key in image.info for key in PRIVATE)
    return length > max_bytes or max(image.size) > max_side or orientation != 1 or private


def _scaled(image: Image.Image, side: int) -> Image.Image:
    if max(image.size) <= side:
        return image
    copy = image.copy()
    copy.thumbnail((side, side), Image.Resampling.LANCZOS)
    return copy


def _encode(image: Image.Image, quality: int) -> bytes:
    """JPEG with no EXIF, XMP, comment or ICC profile: only the pixels."""
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, optimize=True, progressive=True)
    return out.getvalue()
