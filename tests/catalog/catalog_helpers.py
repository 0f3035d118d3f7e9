"""Helpers of the catalogue tests (importable from the test modules; fixtures live in conftest.py)."""
import io
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[2]
DEMO_DATA = REPO / "demo_data"
STYLES_HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName"


def image_bytes(size=(64, 48), fmt="JPEG", colour=(200, 30, 60)):
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, fmt)
    return buffer.getvalue()


def noisy_jpeg(size=(200, 200)):
    """A JPEG whose pixel data is large enough to be cut in the middle."""
    buffer = io.BytesIO()
    Image.effect_noise(size, 80).convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def media_files(settings):
    root = Path(settings.MEDIA_ROOT)
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []
