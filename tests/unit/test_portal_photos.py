"""photos.py: a phone's JPEG turned upright, capped in size, stripped of metadata (GPS), and
re-encoded until under the document's limit."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image

from services.portal.photos import MAX_SIDE, PhotoTooLarge, fit_photo

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def camera_jpeg(
    size: tuple[int, int] = (4000, 3000), *, orientation: int = 1, gps: bool = True
) -> bytes:
    """A photo as a phone writes it: noisy pixels (so it compresses like a real one), EXIF
    with the camera's turn and where it was taken, and a comment."""
    rng = random.Random(7)
    small = Image.new("RGB", (size[0] // 8, size[1] // 8))
    small.putdata(
        [
            (rng.randrange(256), rng.randrange(256), rng.randrange(256))
            for _ in range(small.width * small.height)
        ]
    )
    picture = small.resize(size, Image.Resampling.BILINEAR)
    picture.paste((255, 0, 0), (0, 0, size[0] // 4, size[1] // 4))  # a red top-left corner
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "PhoneMaker"
    if gps:
        exif[GPS_IFD] = {1: "N", 2: (21.0, 1.0, 30.0), 3: "E", 4: (105.0, 51.0, 0.0)}
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=95, exif=exif.tobytes(), comment=b"taken at home")
    return out.getvalue()


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_a_camera_photo_is_capped_stripped_and_brought_under_the_limit() -> None:
    original = camera_jpeg()
    assert len(original) > 2 * 1024 * 1024 and opened(original).getexif().get(GPS_IFD)
    fitted = fit_photo(original, "image/jpeg", max_bytes=1024 * 1024)
    assert fitted.changed and fitted.media_type == "image/jpeg"
    assert len(fitted.data) <= 1024 * 1024
    image = opened(fitted.data)
    assert image.format == "JPEG" and max(image.size) == MAX_SIDE == 2000
    assert image.size == (2000, 1500) == fitted.size
    assert not image.getexif() and image.getexif().get(GPS_IFD) is None
    assert not {"exif", "comment", "icc_profile", "xmp"} & set(image.info)


def test_the_exif_turn_is_applied_to_the_pixels() -> None:
    # Orientation 6: the camera was held upright, the pixels lie on their side (turned 90° left).
    fitted = fit_photo(camera_jpeg((800, 600), orientation=6), "image/jpeg", max_bytes=10**6)
    image = opened(fitted.data)
    assert image.size == (600, 800)  # now portrait
    red, green, blue = image.convert("RGB").getpixel((image.width - 10, 10))  # type: ignore[misc]
    assert red > 200 and green < 60 and blue < 60  # the red corner is now top-right
    assert not image.getexif()


def test_the_quality_steps_down_then_the_size_until_it_fits() -> None:
    original = camera_jpeg((2000, 1500))
    generous = fit_photo(original, "image/jpeg", max_bytes=5 * 1024 * 1024)
    tight = fit_photo(original, "image/jpeg", max_bytes=150 * 1024)
    assert len(tight.data) <= 150 * 1024 < len(generous.data)
    assert max(tight.size) <= 2000
    with pytest.raises(PhotoTooLarge):
        fit_photo(original, "image/jpeg", max_bytes=2000)


def test_a_small_clean_upright_jpeg_and_other_files_are_kept_byte_for_byte() -> None:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (10, 120, 30)).save(out, "JPEG", quality=80)
    clean = out.getvalue()
    assert fit_photo(clean, "image/jpeg", max_bytes=10**6).data == clean
    assert not fit_photo(clean, "image/jpeg", max_bytes=10**6).changed
    pdf = b"%PDF-1.4\n%%EOF\n"
    assert fit_photo(pdf, "application/pdf", max_bytes=1).data == pdf
    broken = clean[: len(clean) // 2]  # intake refuses it as damaged, with its own message
    assert fit_photo(broken, "image/jpeg", max_bytes=10**6).data == broken


def test_a_small_photo_with_gps_is_still_stripped() -> None:
    fitted = fit_photo(camera_jpeg((640, 480)), "image/jpeg", max_bytes=10**6)
    assert fitted.changed and not opened(fitted.data).getexif()
    assert fitted.size == (640, 480)
