"""``python -m ml.bench pipeline --photos DIR [--n 30]``: per-stage latency of ``ml.pipeline.analyse``.

Every photo is analysed as a visitor upload would be (no product gender, so the gender model runs
too, unless ``--product-gender`` is given) after ``--warmup`` untimed analyses that load the models
and trace their graphs. Reports p50/p95 (ms) of each stage (decode, pose, gender, detect, embed,
total) over the timed runs, the share of full shots and the mean number of articles.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
STAGES = ("decode", "pose", "gender", "detect", "embed", "colour", "total")


def add_arguments(parser):
    parser.add_argument("--photos", required=True, type=Path, help="directory of photos (full shots)")
    parser.add_argument("--n", type=int, default=30, help="timed analyses (photos are cycled)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed analyses first")
    parser.add_argument("--product-gender", default=None,
                        help='pass this product gender (e.g. "Women") so the gender model is skipped')


def _percentile(values, q):
    return round(float(np.percentile(values, q)), 1) if values else None


def run(args) -> dict:
    from ml.pipeline import analyse, default_parts

    if not args.photos.is_dir():
        raise SystemExit(f"--photos: not a directory: {args.photos}")
    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not photos:
        raise SystemExit(f"--photos: no images in {args.photos}")
    # encoded bytes, as the app receives them: decoding is part of the measured work
    payloads = [p.read_bytes() for p in photos[: max(args.n, args.warmup)]]

    load_before = round(os.getloadavg()[0], 2)
    parts = default_parts()
    start = time.perf_counter()
    for i in range(args.warmup):
        analyse(payloads[i % len(payloads)], gender=args.product_gender, parts=parts)
    warmup_s = time.perf_counter() - start

    timings = {stage: [] for stage in STAGES}
    full_shots = 0
    articles = []
    full_flags = []
    versions = {}
    for i in tqdm(range(args.n), desc="pipeline", unit="photo"):
        analysis = analyse(payloads[i % len(payloads)], gender=args.product_gender, parts=parts)
        for stage in STAGES:
            timings[stage].append(analysis.timings.get(stage, 0.0))
        full_shots += analysis.is_full_shot
        full_flags.append(analysis.is_full_shot)
        articles.append(len(analysis.articles))
        versions.update(analysis.model_versions)

    full_shot_totals = [t for t, full in zip(timings["total"], full_flags) if full]
    return {
        "photos": len(payloads),
        "timed_runs": args.n,
        "warmup_runs": args.warmup,
        "warmup_seconds": round(warmup_s, 1),
        "cpu_count": os.cpu_count(),
        # other processes competing for the cores inflate every figure: report the load
        "load_average_1min_before": load_before,
        "load_average_1min_after": round(os.getloadavg()[0], 2),
        "full_shot_share": round(full_shots / args.n, 3) if args.n else None,
        "mean_articles": round(float(np.mean(articles)), 2) if articles else None,
        "p50_ms": {stage: _percentile(timings[stage], 50) for stage in STAGES},
        "p95_ms": {stage: _percentile(timings[stage], 95) for stage in STAGES},
        "full_shot_total_p50_ms": _percentile(full_shot_totals, 50),
        "target_total_p50_ms": 500,
        "meets_target": bool(full_shot_totals) and _percentile(full_shot_totals, 50) <= 500,
        "model_versions": versions,
    }
