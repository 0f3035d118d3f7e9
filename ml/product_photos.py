"""Catalogue product photos for training and evaluating the article embedder (no TensorFlow here).

- ``read_styles(csv)`` reads the Kaggle ``styles.csv`` (id, gender, masterCategory, subCategory,
  articleType, baseColour, ...) into ``Product`` records, skipping rows with no image.
- ``is_held_out(id)`` / ``split_ids(ids)``: the fixed 20 % hold-out shared by training and
  evaluation. It is a hash of the id with a fixed seed, so one id is always on the same side,
  whatever subset or order of the CSV is read.
- ``letterbox(image, size)``: resize keeping the aspect ratio and pad to a square on white, the
  embedder's preprocessing for any photo size or framing.
- ``augment_like_a_crop(image, rng, size)``: training augmentation imitating article crops from
  model and street photos (random resized crops, scale and padding on varied backgrounds,
  flips, brightness/contrast jitter that keeps the colour identity).
- ``augment_reshot(image, rng, size)``: training augmentation imitating another photographer's
  shot of the product (cut out of the studio background onto a wall or an out-of-focus scene, in a
  portrait or square frame, smaller and off-centre, under a colour cast, JPEG-compressed).
- ``cut_out_mask(image)``: the article's mask on a studio photo, without a white rim.
"""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HOLD_OUT_FRACTION = 0.2
HOLD_OUT_SEED = "buy-the-look-embedder-v1"
WHITE = (255, 255, 255)


@dataclass(frozen=True)
class Product:
    id: str
    gender: str
    master_category: str
    sub_category: str
    article_type: str
    base_colour: str
    image_path: Path

    @property
    def gender_article_type(self) -> str:
        return f"{self.gender}|{self.article_type}"


def read_styles(styles_csv, images_dir, require_image: bool = True) -> list[Product]:
    """Products of ``styles_csv`` whose ``<images_dir>/<id>.jpg`` exists (sorted by id)."""
    styles_csv, images_dir = Path(styles_csv), Path(images_dir)
    if not styles_csv.is_file():
        raise FileNotFoundError(f"styles CSV not found: {styles_csv}")
    if not images_dir.is_dir():
        raise FileNotFoundError(f"images directory not found: {images_dir}")
    products = []
    with open(styles_csv, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"id", "gender", "articleType", "baseColour"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{styles_csv}: missing column(s) {', '.join(sorted(missing))}")
        for row in reader:
            pid = (row.get("id") or "").strip()
            if not pid:
                continue
            path = images_dir / f"{pid}.jpg"
            if require_image and not path.exists():
                continue
            products.append(
                Product(
                    id=pid,
                    gender=(row.get("gender") or "").strip(),
                    master_category=(row.get("masterCategory") or "").strip(),
                    sub_category=(row.get("subCategory") or "").strip(),
                    article_type=(row.get("articleType") or "").strip(),
                    base_colour=(row.get("baseColour") or "").strip(),
                    image_path=path,
                )
            )
    products.sort(key=lambda p: (len(p.id), p.id))
    return products


def is_held_out(product_id, fraction: float = HOLD_OUT_FRACTION, seed: str = HOLD_OUT_SEED) -> bool:
    digest = hashlib.sha256(f"{seed}:{product_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < fraction


def split_ids(products, fraction: float = HOLD_OUT_FRACTION):
    """(train, held_out) lists of products, by the fixed id hash."""
    train, held = [], []
    for p in products:
        (held if is_held_out(p.id, fraction) else train).append(p)
    return train, held


def letterbox(image: Image.Image, size: int, fill=WHITE) -> Image.Image:
    """Resize so the longer side is ``size`` and pad to ``size`` x ``size`` (centred, on ``fill``)."""
    image = image.convert("RGB")
    w, h = image.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if (nw, nh) != (w, h):
        image = image.resize((nw, nh), Image.BILINEAR)
    if (nw, nh) == (size, size):
        return image
    canvas = Image.new("RGB", (size, size), fill)
    canvas.paste(image, ((size - nw) // 2, (size - nh) // 2))
    return canvas


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    kind = rng.random()
    if kind < 0.45:
        return Image.new("RGB", (size, size), WHITE)
    if kind < 0.75:  # a plain light/grey/beige studio or wall colour
        base = rng.integers(150, 256)
        tint = rng.integers(-15, 16, size=3)
        colour = tuple(int(np.clip(base + t, 0, 255)) for t in tint)
        return Image.new("RGB", (size, size), colour)
    # textured clutter: smoothed noise around a random grey level (street, shop interior)
    level = rng.integers(60, 220)
    grey = rng.normal(level, 40, size=(size // 8 + 1, size // 8 + 1, 1))
    tint = rng.normal(0, 8, size=(size // 8 + 1, size // 8 + 1, 3))  # low chroma: no colour cast
    noise = (grey + tint).clip(0, 255).astype(np.uint8)
    return Image.fromarray(noise).resize((size, size), Image.BILINEAR).filter(ImageFilter.GaussianBlur(2))


def _foreground_mask(image: Image.Image, work: int = 64) -> Image.Image:
    """255 where the article is: everything but the near-white region connected to the border.

    The flood fill runs on a ``work``-pixel thumbnail (PIL's fill is pure Python) and is scaled back.
    """
    small = image.resize((work, work), Image.BOX)
    arr = np.asarray(small, dtype=np.int16)
    light = Image.fromarray(((arr.min(axis=2) >= 238) * 255).astype(np.uint8)).copy()
    w = h = work
    for seed in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1), (w // 2, 0), (w // 2, h - 1), (0, h // 2), (w - 1, h // 2)):
        if light.getpixel(seed) == 255:
            ImageDraw.floodfill(light, seed, 128)
    foreground = ((np.asarray(light) != 128) * 255).astype(np.uint8)
    return Image.fromarray(foreground).filter(ImageFilter.MaxFilter(3)).resize(image.size, Image.BILINEAR)


def augment_like_a_crop(image: Image.Image, rng: np.random.Generator, size: int) -> Image.Image:
    """One random training view of a catalogue photo, looking like an article crop."""
    image = image.convert("RGB")
    w, h = image.size
    # 1. random resized crop (keep most of the article: crops of a detector box are tight but whole)
    area = rng.uniform(0.55, 1.0)
    ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw = int(round(min(w, np.sqrt(area * w * h * ratio))))
    ch = int(round(min(h, np.sqrt(area * w * h / ratio))))
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    image = image.crop((x0, y0, x0 + cw, y0 + ch))
    # 2. aspect change as a differently framed shop photo / box
    if rng.random() < 0.3:
        stretch = np.exp(rng.uniform(-0.2, 0.2))
        image = image.resize((max(8, int(cw * stretch)), max(8, int(ch / stretch))), Image.BILINEAR)
    if rng.random() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    # 3. scale inside a square canvas on a varied background
    scale = rng.uniform(0.7, 1.0)
    iw, ih = image.size
    fit = size * scale / max(iw, ih)
    nw, nh = max(4, int(iw * fit)), max(4, int(ih * fit))
    image = image.resize((nw, nh), Image.BILINEAR)
    canvas = _background(rng, size)
    if canvas.getpixel((0, 0)) != WHITE and rng.random() < 0.7:
        # product shots are on white: drop the near-white background so the new one shows through
        mask = _foreground_mask(image)
    else:
        mask = None
    canvas.paste(image, (int(rng.integers(0, size - nw + 1)), int(rng.integers(0, size - nh + 1))), mask)
    # 4. photometric jitter that keeps the colour name
    return photometric_jitter(canvas, rng)


def cut_out_mask(image: Image.Image) -> Image.Image:
    """The article of a studio photo as a soft mask: the coarse studio-background mask, minus the near-white
    pixels along its edge (so a pasted cut-out has no white rim)."""
    coarse = _foreground_mask(image)
    band = 2 * max(1, min(image.size) // 30) + 1
    inner = np.asarray(coarse.filter(ImageFilter.MinFilter(band))) > 127
    light = np.asarray(image, dtype=np.int16).min(axis=2) >= 215
    keep = inner | ((np.asarray(coarse) > 127) & ~light)
    return Image.fromarray((keep * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8))


def jpeg_roundtrip(image: Image.Image, quality: int) -> Image.Image:
    """``image`` as it comes back from a JPEG of ``quality`` (RGB)."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


RESHOT_ASPECTS = (3 / 4, 2 / 3, 4 / 5, 1.0, 5 / 4)


def augment_reshot(image: Image.Image, rng: np.random.Generator, size: int) -> Image.Image:
    """One random training view of a catalogue photo as another photographer's shot of the product, letterboxed
    to ``size`` as the embedder sees any photo: a mild random crop and flip; the article cut out of the studio
    background onto white (15 %), a plain wall (40 %) or a blurred low-chroma scene; 45–95 % of a portrait,
    square or landscape frame of 160–520 px, anywhere in it; per-channel white balance, brightness, contrast,
    sometimes blur; a JPEG of quality 25–90 (80 %)."""
    image = image.convert("RGB")
    w, h = image.size
    area = rng.uniform(0.75, 1.0)
    cw, ch = int(round(w * np.sqrt(area))), int(round(h * np.sqrt(area)))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    image = image.crop((x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    height = int(rng.integers(160, 521))
    width = max(16, int(height * RESHOT_ASPECTS[int(rng.integers(len(RESHOT_ASPECTS)))]))
    kind = rng.random()
    if kind < 0.15:
        canvas = Image.new("RGB", (width, height), WHITE)
    elif kind < 0.55:
        level = rng.integers(80, 245)
        colour = tuple(int(np.clip(level + t, 0, 255)) for t in rng.integers(-25, 26, size=3))
        canvas = Image.new("RGB", (width, height), colour)
    else:
        cell = int(rng.integers(6, 16))
        level = rng.integers(40, 215)
        grey = rng.normal(level, rng.uniform(25, 55), size=(height // cell + 1, width // cell + 1, 1))
        tint = rng.normal(0, rng.uniform(4, 14), size=(height // cell + 1, width // cell + 1, 3))
        noise = (grey + tint).clip(0, 255).astype(np.uint8)
        canvas = Image.fromarray(noise).resize((width, height), Image.BILINEAR).filter(
            ImageFilter.GaussianBlur(rng.uniform(2, 8)))
    scale = rng.uniform(0.45, 0.95) * min(width / image.width, height / image.height)
    product = image.resize((max(8, round(image.width * scale)), max(8, round(image.height * scale))), Image.BILINEAR)
    position = (int(rng.integers(0, width - product.width + 1)), int(rng.integers(0, height - product.height + 1)))
    canvas.paste(product, position, None if kind < 0.15 else cut_out_mask(product))
    arr = np.asarray(canvas, dtype=np.float32) * rng.uniform(0.88, 1.12, size=3)
    mean = arr.mean()
    arr = (arr - mean) * rng.uniform(0.8, 1.2) + mean * rng.uniform(0.8, 1.2)
    view = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    if rng.random() < 0.2:
        view = view.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    if rng.random() < 0.8:
        view = jpeg_roundtrip(view, int(rng.integers(25, 91)))
    return letterbox(view, size)


def photometric_jitter(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Brightness, contrast, mild saturation and sometimes blur: changes that keep the colour name."""
    arr = np.asarray(image, dtype=np.float32)
    arr = arr * rng.uniform(0.8, 1.2)
    mean = arr.mean()
    arr = (arr - mean) * rng.uniform(0.8, 1.2) + mean
    grey = arr.mean(axis=2, keepdims=True)
    arr = grey + (arr - grey) * rng.uniform(0.85, 1.15)
    arr = arr.clip(0, 255).astype(np.uint8)
    out = Image.fromarray(arr)
    if rng.random() < 0.2:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    return out
