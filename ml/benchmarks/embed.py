"""``python -m ml.bench embed``: embedder throughput (images/second, preprocessing included).

Images come from ``--images DIR`` (jpg/png, any size) or, without it, are synthetic photos of
mixed sizes and aspects. One warm-up batch is excluded from the timing.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np


def add_arguments(parser):
    parser.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--images", type=Path, default=None, help="directory of photos (default: synthetic)")
    parser.add_argument("--count", type=int, default=256, help="images to embed in the timed run")
    parser.add_argument("--model", default="finetuned", choices=("finetuned", "imagenet"))
    parser.add_argument("--weights", type=Path, default=None, help="fine-tuned weights (default: committed)")


def _images(directory, count):
    from PIL import Image

    if directory is None:
        rng = np.random.default_rng(0)
        sizes = [(224, 224), (300, 400), (180, 240), (512, 384)]
        base = []
        for w, h in sizes:
            arr = rng.integers(0, 256, size=(h // 8, w // 8, 3), dtype=np.uint8)
            base.append(Image.fromarray(arr).resize((w, h), Image.BILINEAR))
        return [base[i % len(base)] for i in range(count)], "synthetic"
    directory = Path(directory)
    if not directory.is_dir():
        raise SystemExit(f"bench embed: not a directory: {directory}")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:count]
    if not files:
        raise SystemExit(f"bench embed: no .jpg/.png images in {directory}")
    images = [Image.open(p).convert("RGB") for p in files]
    return [images[i % len(images)] for i in range(count)], str(directory)


def run(args) -> dict:
    from ml.embed import Embedder, ImageNetEmbedder

    images, source = _images(args.images, args.count)
    embedder = ImageNetEmbedder() if args.model == "imagenet" else Embedder(weights=args.weights)
    t = time.perf_counter()
    embedder.embed(images[: args.batch], batch_size=args.batch)  # load + warm-up
    load_seconds = time.perf_counter() - t
    t = time.perf_counter()
    vectors = embedder.embed(images, batch_size=args.batch)
    seconds = time.perf_counter() - t
    return {
        "model": embedder.version,
        "dim": int(vectors.shape[1]),
        "input_size": embedder.input_size,
        "images": len(images),
        "source": source,
        "batch": args.batch,
        "cpu_count": os.cpu_count(),
        "load_and_warmup_seconds": round(load_seconds, 2),
        "seconds": round(seconds, 2),
        "images_per_second": round(len(images) / seconds, 1),
    }
