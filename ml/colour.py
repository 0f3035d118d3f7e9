"""An article's colour, read from its own pixels and named in the catalogue's ``baseColour`` words.

``ColourReader().read(image, boxes, person_mask=None) -> [Colour]``: for each box (normalised x1, y1, x2,
y2; ``None`` = the whole image) the garment's pixels are chosen —

- in a photo of a person (the person mask of ``ml.segment.PersonSegmenter`` covers enough of the box): the
  person's pixels inside the box, skin excluded (unless the garment itself is skin-coloured, i.e. nearly
  everything would go);
- otherwise (a product photographed alone): the pixels that differ from the photo's background, estimated
  from its border;

weighted towards the box centre (neighbouring garments bleed into the box edges) and counted in a CIELAB
histogram (6 lightness × 10 a* × 10 b* bins, each pixel shared between neighbouring bins). A small network (one hidden layer of 512, run in numpy) fitted on
the catalogue's training side (``python -m ml.colour fit``, ``ml/weights/colour-mlp.npz``; the fixed product
split's hold-out is never seen) turns the histogram into probabilities of the catalogue's colour words (``WORDS``), so "Blue"
means what this catalogue's photographers call blue. ``Colour.names``: the likely words with their
probabilities; ``Colour.descriptor``: the square roots of the probabilities (unit length, so the cosine of two
descriptors is the Bhattacharyya coefficient of the two distributions: 1 = the same colour). The descriptor
is what the recommender stores next to each article vector.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

MODEL_FILE = Path(__file__).resolve().parent / "weights" / "colour-mlp.npz"

#: The catalogue's colour words the reader names (every ``baseColour`` with at least 15 products on the
#: training side of the shared catalogue); rarer words (Teal, Rust, …) are named by their nearest of these.
#: Their number is the stored descriptor's dimension (``recommender.conf.COLOUR_DIM``): part of the schema.
WORDS = (
    "Black", "White", "Blue", "Grey", "Brown", "Red", "Green", "Navy Blue", "Purple", "Pink", "Beige", "Maroon",
    "Yellow", "Olive", "Silver", "Steel", "Orange", "Cream", "Gold", "Tan", "Charcoal", "Khaki", "Magenta",
    "Off White", "Copper", "Lavender",
)
#: What each word means in plain sRGB: synthetic swatches of these (shaded, noisy) are added to the training
#: photos so that a plain red garment is called red whatever the catalogue's labelling habits.
SWATCHES = {
    "Black": (22, 22, 24), "White": (246, 246, 246), "Blue": (45, 90, 175), "Grey": (128, 128, 130),
    "Brown": (110, 72, 45), "Red": (200, 30, 40), "Green": (40, 130, 60), "Navy Blue": (28, 36, 70),
    "Purple": (104, 52, 126), "Pink": (236, 144, 172), "Beige": (214, 196, 162), "Maroon": (108, 24, 38),
    "Yellow": (242, 210, 50), "Olive": (108, 108, 52), "Silver": (192, 192, 196), "Steel": (118, 128, 140),
    "Orange": (240, 122, 40), "Cream": (240, 228, 192), "Gold": (200, 164, 80), "Tan": (198, 150, 102),
    "Charcoal": (60, 62, 66), "Khaki": (190, 174, 125), "Magenta": (200, 36, 130), "Off White": (238, 234, 220),
    "Copper": (178, 104, 64), "Lavender": (188, 172, 220),
}
#: Colour words that name no colour of their own (never produced, never learned from).
NOT_COLOURS = {"multi", "na", "metallic", "skin", ""}
#: CIELAB histogram bins: lightness 0..100, a* and b* −100..100 (clipped).
L_BINS, AB_BINS, AB_RANGE = 6, 10, 100.0
FEATURES = L_BINS * AB_BINS * AB_BINS
#: How much a shop's own colour word for its product counts against the colour read from its photo
#: (``with_known_colour``): measured with ``python -m ml.evaluate retrieval --shop-colours`` (COLOUR.md).
SHOP_COLOUR_TRUST = 0.7
#: A colour is named when the reader gives it at least this probability (the main colour always is).
NAME_MIN_SHARE = 0.15
MAX_PIXELS = 4096


# ----------------------------------------------------------------------------------------------
# CIELAB
# ----------------------------------------------------------------------------------------------
def srgb_to_lab(rgb) -> np.ndarray:
    """sRGB (..., 3) in 0..255 → CIELAB (D65), float32."""
    c = np.asarray(rgb, dtype=np.float32) / 255.0
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = np.array([[0.4124564, 0.3575761, 0.1804375],
                  [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]], dtype=np.float32)
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883], dtype=np.float32)
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    lab = np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)
    return lab.astype(np.float32)


def lab_histogram(pixels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Square roots of the weighted shares of the pixels in each CIELAB bin (``FEATURES`` values)."""
    lab = srgb_to_lab(pixels)
    # each pixel is shared between the two nearest bin centres of each axis (trilinear): nearby colours give
    # nearby histograms, with no jump at a bin edge
    positions = [np.clip(lab[:, 0] / 100.0 * L_BINS - 0.5, 0, L_BINS - 1),
                 np.clip((lab[:, 1] + AB_RANGE) / (2 * AB_RANGE) * AB_BINS - 0.5, 0, AB_BINS - 1),
                 np.clip((lab[:, 2] + AB_RANGE) / (2 * AB_RANGE) * AB_BINS - 0.5, 0, AB_BINS - 1)]
    sizes = (L_BINS, AB_BINS, AB_BINS)
    histogram = np.zeros(FEATURES, dtype=np.float64)
    lows = [np.floor(p).astype(int) for p in positions]
    fractions = [p - low for p, low in zip(positions, lows)]
    for corner in range(8):
        index, share = 0, weights.astype(np.float64)
        for axis in range(3):
            up = (corner >> axis) & 1
            cell = np.minimum(lows[axis] + up, sizes[axis] - 1)
            share = share * (fractions[axis] if up else 1.0 - fractions[axis])
            index = index * sizes[axis] + cell
        histogram += np.bincount(index, weights=share, minlength=FEATURES)
    return np.sqrt(histogram / max(float(histogram.sum()), 1e-12)).astype(np.float32)


def swatch_features(per_word: int = 40, pixels: int = 1500, seed: int = 0):
    """(features, labels) of synthetic swatches of each word: its sRGB more or less vivid, shaded ×0.75–1.15, noisy."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for label, word in enumerate(WORDS):
        base = np.asarray(SWATCHES[word], dtype=np.float32)
        for _ in range(per_word):
            grey = base.mean()
            saturated = grey + (base - grey) * rng.uniform(0.8, 1.35)  # a more or less vivid version
            shade = rng.uniform(0.75, 1.15, (pixels, 1)) * rng.uniform(0.9, 1.1)
            rgb = np.clip(saturated * shade + rng.normal(0, 6, (pixels, 3)), 0, 255).astype(np.uint8)
            rows.append(lab_histogram(rgb, np.ones(pixels, dtype=np.float32)))
            labels.append(label)
    return np.stack(rows), np.asarray(labels)


@dataclass(frozen=True)
class Colour:
    """The colours of one article: ``names`` (colour word, probability) of its likely colours, most likely first;
    ``probabilities`` over ``WORDS``; ``descriptor`` their square roots (unit length: the cosine of two
    descriptors is the Bhattacharyya coefficient of the two distributions)."""

    names: tuple
    probabilities: np.ndarray = field(repr=False, compare=False)
    descriptor: np.ndarray = field(repr=False, compare=False)
    pixels: int = 0

    @property
    def main(self) -> str:
        return self.names[0][0] if self.names else ""


class ColourReader:
    """Reads the colours of articles: garment pixels → CIELAB histogram → probabilities of the colour words
    (a one-hidden-layer network fitted on the catalogue's training side, ``ml/weights/colour-mlp.npz``)."""

    method = "lab-histogram-mlp-1"

    def __init__(self, model_path: str | Path | None = None, segmenter=None):
        path = Path(model_path) if model_path else MODEL_FILE
        if not path.exists():
            raise FileNotFoundError(f"colour model missing: {path} (python -m ml.colour fit …)")
        with np.load(path) as data:
            if tuple(str(w) for w in data["words"]) != WORDS or data["w1"].shape[0] != FEATURES:
                raise ValueError(f"{path}: made for other colour words or bins than ml.colour's")
            self.layers = [(data[f"w{i}"].astype(np.float32), data[f"b{i}"].astype(np.float32)) for i in (1, 2)]
            self.version = f"{self.method}-{str(data['digest'])}"
        self.words = WORDS
        self.segmenter = segmenter
        if self.segmenter is None:
            from ml.segment import PersonSegmenter

            self.segmenter = PersonSegmenter()

    @property
    def dim(self) -> int:
        return len(self.words)

    def person_mask(self, image: Image.Image) -> np.ndarray:
        return self.segmenter.mask(image)

    def read(self, image: Image.Image, boxes, person_mask: np.ndarray | None = None, *, find_person: bool = True):
        """One ``Colour`` per box (``None`` = whole image). ``find_person``: run the segmenter when no mask is given."""
        rgb = np.asarray(image.convert("RGB") if image.mode != "RGB" else image)
        if person_mask is None and find_person:
            person_mask = self.person_mask(image)
        background = _border_colour(rgb)
        return [self.describe_pixels(*garment_pixels(rgb, box, person_mask, background)) for box in boxes]

    def logits(self, features: np.ndarray) -> np.ndarray:
        (w1, b1), (w2, b2) = self.layers
        return np.maximum(features @ w1 + b1, 0.0) @ w2 + b2

    def describe_pixels(self, pixels: np.ndarray, weights: np.ndarray) -> Colour:
        if len(pixels) == 0 or float(weights.sum()) <= 0:
            empty = np.zeros(self.dim, dtype=np.float32)
            return Colour(names=(), probabilities=empty, descriptor=empty, pixels=0)
        probabilities = softmax(self.logits(lab_histogram(pixels, weights)))
        descriptor = np.sqrt(probabilities)
        descriptor /= max(float(np.linalg.norm(descriptor)), 1e-12)
        order = np.argsort(-probabilities)
        names = tuple((self.words[i], round(float(probabilities[i]), 3)) for i in order[:3]
                      if i == order[0] or probabilities[i] >= NAME_MIN_SHARE)
        return Colour(names=names, probabilities=probabilities, descriptor=descriptor.astype(np.float32),
                      pixels=len(pixels))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)


def word_of(name: str) -> str | None:
    """The colour word of ``WORDS`` that ``name`` is (any case), or None."""
    wanted = (name or "").strip().lower()
    return next((word for word in WORDS if word.lower() == wanted), None)


def with_known_colour(colour: Colour | None, name: str, trust: float = SHOP_COLOUR_TRUST) -> Colour | None:
    """A shop product's colour: its own colour word (``name``, when one of ``WORDS``) blended with the colour
    read from its photo (``colour``; None = not read). The shop's word becomes the main colour."""
    word = word_of(name)
    if word is None:
        return colour
    known = np.zeros(len(WORDS), dtype=np.float32)
    known[WORDS.index(word)] = 1.0
    read = getattr(colour, "probabilities", None)
    probabilities = known if read is None or not np.any(read) else trust * known + (1 - trust) * read
    descriptor = np.sqrt(probabilities)
    descriptor /= max(float(np.linalg.norm(descriptor)), 1e-12)
    order = [WORDS.index(word)] + [i for i in np.argsort(-probabilities) if i != WORDS.index(word)]
    names = tuple((WORDS[i], round(float(probabilities[i]), 3)) for i in order[:3]
                  if i == order[0] or probabilities[i] >= NAME_MIN_SHARE)
    return Colour(names=names, probabilities=probabilities.astype(np.float32), descriptor=descriptor.astype(np.float32),
                  pixels=getattr(colour, "pixels", 0))


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya coefficient of two descriptors (0 = no colour in common, 1 = the same)."""
    return float(np.dot(a, b))


# ----------------------------------------------------------------------------------------------
# Which pixels are the garment
# ----------------------------------------------------------------------------------------------
def _border_colour(rgb: np.ndarray) -> np.ndarray:
    border = np.concatenate([rgb[:3].reshape(-1, 3), rgb[-3:].reshape(-1, 3),
                             rgb[:, :3].reshape(-1, 3), rgb[:, -3:].reshape(-1, 3)])
    return srgb_to_lab(np.median(border, axis=0))


def _is_skin(pixels: np.ndarray) -> np.ndarray:
    """Skin tones in YCrCb (Chai & Ngan's ranges), pixels (N, 3) uint8."""
    p = pixels.astype(np.float32)
    y = 0.299 * p[:, 0] + 0.587 * p[:, 1] + 0.114 * p[:, 2]
    cr = (p[:, 0] - y) * 0.713 + 128
    cb = (p[:, 2] - y) * 0.564 + 128
    return (cr >= 135) & (cr <= 173) & (cb >= 80) & (cb <= 125) & (y > 50)


def garment_pixels(rgb: np.ndarray, box, person_mask: np.ndarray | None, background_lab: np.ndarray):
    """(pixels (N, 3) uint8, weights (N,)) of the garment in ``box`` (normalised; None = whole image)."""
    height, width = rgb.shape[:2]
    x1, y1, x2, y2 = box if box is not None else (0.0, 0.0, 1.0, 1.0)
    left, right = int(np.clip(np.floor(x1 * width), 0, width - 1)), int(np.clip(np.ceil(x2 * width), 1, width))
    top, bottom = int(np.clip(np.floor(y1 * height), 0, height - 1)), int(np.clip(np.ceil(y2 * height), 1, height))
    right, bottom = max(right, left + 1), max(bottom, top + 1)
    step = max(1, int(np.sqrt((right - left) * (bottom - top) / MAX_PIXELS)))
    crop = rgb[top:bottom:step, left:right:step]
    h, w = crop.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    centre = np.exp(-(((xx + 0.5) / w - 0.5) ** 2 / (2 * 0.28 ** 2) + ((yy + 0.5) / h - 0.5) ** 2 / (2 * 0.32 ** 2)))
    pixels, centre = crop.reshape(-1, 3), centre.reshape(-1).astype(np.float32)

    keep = None
    if person_mask is not None:
        person = person_mask[top:bottom:step, left:right:step].reshape(-1)
        if float((person > 0.5).mean()) >= 0.2:
            keep = person > 0.5
            not_skin = keep & ~_is_skin(pixels)
            if not_skin.sum() >= 0.25 * keep.sum():
                keep = not_skin
    if keep is None:
        distance = np.linalg.norm(srgb_to_lab(pixels) - background_lab, axis=1)
        for threshold in (12.0, 5.0):
            keep = distance > threshold
            if keep.mean() >= 0.03:
                break
        else:
            keep = np.ones(len(pixels), bool)
    return pixels[keep], centre[keep]


# ----------------------------------------------------------------------------------------------
# Fitting the colour words to a catalogue
# ----------------------------------------------------------------------------------------------
def photo_features(path, segmenter) -> np.ndarray | None:
    """The CIELAB histogram of a catalogue photo's garment pixels (whole photo), None when it has none."""
    with Image.open(path) as img:
        picture = img.convert("RGB")
    rgb = np.asarray(picture)
    pixels, weights = garment_pixels(rgb, None, segmenter.mask(picture), _border_colour(rgb))
    return lab_histogram(pixels, weights) if len(pixels) >= 20 else None


def fit(features: np.ndarray, labels: np.ndarray, *, hidden: int = 512, dropout: float = 0.5, epochs: int = 120,
        seed: int = 0) -> dict:
    """Train the one-hidden-layer network (Keras, Adam, cross-entropy); its weights as numpy arrays."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((features.shape[1],)), keras.layers.Dense(hidden, activation="relu"),
                              keras.layers.Dropout(dropout), keras.layers.Dense(len(WORDS))])
    model.compile(keras.optimizers.Adam(1e-3, weight_decay=1e-4),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(features, labels, epochs=epochs, batch_size=128, verbose=0)
    (w1, b1), (w2, b2) = model.layers[0].get_weights(), model.layers[2].get_weights()
    return {"w1": w1, "b1": b1, "w2": w2, "b2": b2}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ml.colour", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fitting = sub.add_parser("fit", help="fit the colour words on a catalogue's training side (fixed product split)")
    fitting.add_argument("--styles", required=True, type=Path)
    fitting.add_argument("--images", required=True, type=Path)
    fitting.add_argument("--out", type=Path, default=MODEL_FILE)
    fitting.add_argument("--hidden", type=int, default=512)
    fitting.add_argument("--dropout", type=float, default=0.5)
    fitting.add_argument("--epochs", type=int, default=120)
    fitting.add_argument("--swatches", type=int, default=40, help="synthetic swatches per colour word")
    read = sub.add_parser("read", help="print the colours of photos")
    read.add_argument("photos", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.command == "fit":
        import hashlib

        from ml.product_photos import read_styles, split_ids
        from ml.segment import PersonSegmenter

        training, _held_out = split_ids(read_styles(args.styles, args.images))
        segmenter = PersonSegmenter()
        index = {word: i for i, word in enumerate(WORDS)}
        rows, labels = [], []
        for product in training:
            if product.base_colour not in index:
                continue
            features = photo_features(product.image_path, segmenter)
            if features is not None:
                rows.append(features)
                labels.append(index[product.base_colour])
        features, labels = np.stack(rows), np.asarray(labels)
        swatches, swatch_labels = swatch_features(args.swatches)
        photos = len(labels)
        features, labels = np.concatenate([features, swatches]), np.concatenate([labels, swatch_labels])
        weights = fit(features, labels, hidden=args.hidden, dropout=args.dropout, epochs=args.epochs)
        hidden = np.maximum(features @ weights["w1"] + weights["b1"], 0.0)
        accuracy = float((np.argmax(hidden @ weights["w2"] + weights["b2"], axis=1) == labels).mean())
        digest = hashlib.sha256(b"".join(weights[k].astype(np.float32).tobytes() for k in sorted(weights))).hexdigest()[:10]
        command = "python -m ml.colour " + " ".join(sys.argv[1:] if argv is None else argv)
        np.savez(args.out, words=np.array(WORDS), bins=np.array([L_BINS, AB_BINS, AB_RANGE]), digest=np.array(digest),
                 command=np.array(command), training_products=np.array(photos),
                 training_accuracy=np.array(accuracy), **{k: v.astype(np.float32) for k, v in weights.items()})
        print(f"{photos} products + {len(swatch_labels)} swatches, training accuracy {accuracy:.3f} → {args.out}")
    else:
        reader = ColourReader()
        for path in args.photos:
            with Image.open(path) as img:
                colour = reader.read(img.convert("RGB"), [None])[0]
            print(path, ", ".join(f"{name} {share:.0%}" for name, share in colour.names))


if __name__ == "__main__":
    main()
