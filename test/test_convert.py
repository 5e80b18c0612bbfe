"""Camera messages → RGB arrays: CompressedImage (JPEG, PNG) decoded, anything malformed refused with a reason."""

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage

from icub_guard.core.errors import InputError
from icub_guard.ros.convert import MAX_SIDE, compressed_to_rgb


def _encoded(ext: str, rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, rgb[:, :, ::-1])
    assert ok
    return buf.tobytes()


@pytest.fixture
def rgb():
    img = np.zeros((30, 40, 3), np.uint8)
    img[:, :20] = (200, 30, 10)  # red on the left, blue on the right: RGB order is checked
    img[:, 20:] = (10, 30, 200)
    return img


def test_jpeg_and_png_decode_to_rgb(rgb):
    png = compressed_to_rgb(CompressedImage(format="png", data=_encoded(".png", rgb)))
    assert np.array_equal(png, rgb)  # lossless
    jpeg = compressed_to_rgb(CompressedImage(format="jpeg", data=_encoded(".jpg", rgb)))
    assert jpeg.shape == (30, 40, 3) and np.abs(jpeg.astype(int) - rgb).mean() < 8


def _png_declaring(w: int, h: int, real: bytes) -> bytes:
    return real[:16] + w.to_bytes(4, "big") + h.to_bytes(4, "big") + real[24:]


def test_malformed_compressed_images_are_refused_with_a_reason(rgb):
    png, jpeg = _encoded(".png", rgb), _encoded(".jpg", rgb)
    cases = {b"": "empty", b"GIF89a....": "neither JPEG nor PNG", png[:20]: "IHDR",
             _png_declaring(100_000, 100_000, png): f"1..{MAX_SIDE}",  # a decompression bomb's header
             _png_declaring(0, 30, png): f"1..{MAX_SIDE}", jpeg[:2] + b"\x00" * 20: "marker",
             jpeg[:200]: "could not be decoded", png[:60] + b"\x00" * 100: "could not be decoded"}
    for data, why in cases.items():
        with pytest.raises(InputError, match=why):
            compressed_to_rgb(CompressedImage(format="png", data=data))
