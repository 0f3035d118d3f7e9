"""``python -m bench``: run the benchmarks, write JSON + a markdown table, print a summary.

    python -m bench --out docs/benchmarks.md                       # N = 100,000 articles (make bench)
    python -m bench --out docs/benchmarks.md --articles 1000000    # make bench-1m
    python -m bench --articles 2000 --queries 50 --only vector,widget --out /tmp/b.md   # a quick look

The JSON goes next to ``--out`` (``docs/benchmarks.json`` for ``docs/benchmarks.md``) unless ``--json``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

PHASES = ("vector", "widget", "pipeline")
REPO = Path(__file__).resolve().parent.parent


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md", help="markdown report")
    parser.add_argument("--json", type=Path, default=None, help="JSON report (default: --out with .json)")
    parser.add_argument("--articles", type=int, default=100_000, help="inventory articles (default 100,000)")
    parser.add_argument("--queries", type=int, default=1000, help="look queries (default 1,000)")
    parser.add_argument("--only", default=",".join(PHASES), help="phases, comma separated: vector,widget,pipeline")
    parser.add_argument("--k", type=int, default=10, help="recommendations per query (default 10)")
    parser.add_argument("--ef-search", default="40,80,120,160,300", help="hnsw.ef_search sweep (comma separated)")
    parser.add_argument("--exact-checks", type=int, default=100,
                        help="queries also run as exact SQL (no HNSW) to cross-check numpy (default 100)")
    parser.add_argument("--looks", type=int, default=200, help="look products with a full-shot analysis (widget)")
    parser.add_argument("--pages", type=int, default=200, help="product pages requested per cache mode")
    parser.add_argument("--row-recall-looks", type=int, default=50,
                        help="looks whose rows are also searched exactly, for the rows' recall (0: skip)")
    parser.add_argument("--database", default="shop_bench", help="the bench's own database (dropped and created)")
    parser.add_argument("--keep-db", action="store_true", help="keep the bench database afterwards")
    parser.add_argument("--photos", type=Path, default=REPO / "demo_data" / "looks", help="full-shot photos")
    parser.add_argument("--products", type=Path, default=REPO / "demo_data" / "products",
                        help="catalogue folder with styles.csv and images/ (ingest)")
    parser.add_argument("--pipeline-runs", type=int, default=20, help="timed full-shot analyses")
    parser.add_argument("--ingest-images", type=int, default=200, help="catalogue images per ingest run")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker concurrency")
    parser.add_argument("--redis-db", type=int, default=11,
                        help="Redis database number for the bench's broker (default 11; the tasks go to a queue "
                             "of the run's own)")
    parser.add_argument("--no-celery", action="store_true", help="skip the Celery ingest run")
    parser.add_argument("--index-params", default="",
                        help="bench-only variant: replace the HNSW indexes' WITH options, e.g. "
                             "m=16,ef_construction=128 (default: the migrations' definitions, as the app runs)")
    parser.add_argument("--no-halfvec", action="store_true",
                        help="skip the halfvec pass (build half-precision indexes, same queries, drop them)")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(args.only) - set(PHASES))
    if unknown:
        parser.error(f"--only: unknown phase(s) {', '.join(unknown)}; choose from {', '.join(PHASES)}")
    if args.articles < 100:
        parser.error("--articles must be at least 100")
    if args.queries < 1:
        parser.error("--queries must be at least 1")
    args.ef_search = [int(value) for value in args.ef_search.split(",") if value.strip()]
    try:
        args.index_params = {key.strip(): int(value) for key, value in
                             (item.split("=", 1) for item in args.index_params.split(",") if item.strip())}
    except ValueError:
        parser.error(f"--index-params: expected name=integer pairs such as m=16,ef_construction=128, "
                     f"got {args.index_params!r}")
    args.json = args.json or args.out.with_suffix(".json")
    return args


def cpu_check():
    """Milliseconds of two fixed workloads (median of 3): a pure-Python loop of 5 million additions and a
    1024×1024 float32 matrix product in numpy. Shared cloud CPUs differ from run to run; these two figures, taken
    at the start and end of a run, say how fast this machine was then, so reports of different runs compare."""
    import numpy as np

    def loop():
        total = 0
        for value in range(5_000_000):
            total += value
        return total

    matrix = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
    figures = {}
    for name, work in (("python_loop_ms", loop), ("numpy_matmul_ms", lambda: matrix @ matrix)):
        times = []
        for _ in range(3):
            started = time.perf_counter()
            work()
            times.append((time.perf_counter() - started) * 1000)
        figures[name] = round(sorted(times)[1], 1)
    return figures


def machine():
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    info = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "load_average_at_start": [round(value, 2) for value in load] if load else None,
            "cpu_check_at_start": cpu_check()}
    try:
        with open("/proc/meminfo") as handle:
            info["memory_gb"] = round(int(handle.readline().split()[1]) / 2**20, 1)
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def server_info():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT version(), (SELECT extversion FROM pg_extension WHERE extname = 'vector'), "
                       "current_setting('shared_buffers'), current_setting('work_mem')")
        version, pgvector, shared_buffers, work_mem = cursor.fetchone()
    return {"postgresql": version.split(",")[0], "pgvector": pgvector, "shared_buffers": shared_buffers,
            "work_mem": work_mem}


def main(argv=None):
    args = parse_args(argv)
    progress = not args.no_progress
    media_root = REPO / "build" / f"bench-media-{args.database}"
    from .database import drop, migrate, recreate, use_bench_database

    restore = use_bench_database(args.database)
    started = time.perf_counter()
    report = {
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "articles": args.articles, "queries": args.queries, "phases": args.only, "database": args.database,
        "machine": machine(),
    }
    partial = args.json.with_name(args.json.stem + ".partial.json")

    def checkpoint(section=None):
        """Write what is measured so far, so an interrupted long run (1M) keeps its finished phases."""
        report.update(section or {})
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps({**report, "partial": True}, indent=2, default=str) + "\n")

    try:
        recreate(args.database)
        migrate()
        report["server"] = server_info()
        if "vector" in args.only or "widget" in args.only:
            _vector_and_widget(args, progress, checkpoint)
        if "pipeline" in args.only:
            from django.test.utils import override_settings

            from . import pipeline

            with override_settings(MEDIA_ROOT=str(media_root)):
                report["pipeline"] = pipeline.run(
                    dbname=args.database, photos=args.photos, products=args.products, runs=args.pipeline_runs,
                    ingest_images=args.ingest_images, concurrency=args.workers,
                    redis_url=f"redis://127.0.0.1:6379/{args.redis_db}", media_root=media_root,
                    log_dir=REPO / "build", celery=not args.no_celery, progress=progress)
            checkpoint()
        load = os.getloadavg() if hasattr(os, "getloadavg") else None
        report["machine"]["load_average_at_end"] = [round(value, 2) for value in load] if load else None
        report["machine"]["cpu_check_at_end"] = cpu_check()
        report["total_seconds"] = round(time.perf_counter() - started, 1)
    finally:
        if not args.keep_db:
            drop(args.database)
        restore()
    from . import report as render

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render.markdown(report, json_path=args.json))
    render.recall_latency_chart(report, args.json.with_name(f"{args.json.stem}-recall-latency.png"))
    partial.unlink(missing_ok=True)
    print(render.summary(report))
    print(f"wrote {args.out} and {args.json}")
    return 0


def _vector_and_widget(args, progress, checkpoint):
    from recommender.models import DetectedArticle

    from . import synthetic, vector, widget

    dim = DetectedArticle._meta.get_field("embedding").dimensions
    section = {}
    started = time.perf_counter()
    inventory = synthetic.generate(args.articles, dim, seed=args.seed, progress=progress)
    queries = synthetic.queries(inventory, args.queries, seed=args.seed + 1)
    generated = time.perf_counter() - started
    loaded = synthetic.load(inventory, args.looks, dbname=args.database, progress=progress, seed=args.seed + 2,
                            index_params=args.index_params)
    section["dataset"] = {
        "articles": inventory.n, "dimension": dim, "clusters": int(len(inventory.centres)),
        "look_products": args.looks, "generate_seconds": round(generated, 2),
        "categories": {name: int((inventory.category == i).sum()) for i, name in enumerate(synthetic.CATEGORIES)},
        "genders": {name: int((inventory.gender == i).sum()) for i, name in enumerate(synthetic.GENDERS)},
        "rare_colour": {"colour": synthetic.RARE_COLOUR,
                        "articles": int((inventory.colour == synthetic.COLOURS.index(synthetic.RARE_COLOUR)).sum())},
        "rows": loaded.rows, "copy_seconds": loaded.seconds,
        "model": {"cluster_size": synthetic.CLUSTER_SIZE, "latent_dim": synthetic.LATENT_DIM,
                  "cluster_spread": synthetic.CLUSTER_SPREAD, "noise": synthetic.NOISE,
                  "query_noise": synthetic.QUERY_NOISE},
    }
    section["index"] = {**loaded.index, "variant": args.index_params or None}
    checkpoint(section)
    if "vector" in args.only:
        warmed = _prewarm()
        measured = vector.run(inventory, queries, exclude_ids=loaded.look_product_ids, k=args.k,
                              sweep=args.ef_search, exact_checks=args.exact_checks, progress=progress,
                              halfvec=not args.no_halfvec,
                              maintenance_work_mem_mb=loaded.index["maintenance_work_mem_mb"],
                              index_params=args.index_params)
        checkpoint({"vector": {**measured, "prewarm": warmed}})
    del inventory, queries
    if "widget" in args.only:
        warmed = _prewarm()
        checkpoint({"widget": {**widget.run(loaded.look_product_ids, pages=args.pages, progress=progress,
                                            row_looks=args.row_recall_looks),
                               "prewarm": warmed}})


def _prewarm():
    """``manage.py prewarm_indexes`` as a shop runs it after a database restart: the look query's indexes and the
    article table loaded into memory before the timed queries (recommender.prewarm); its figures go in the report."""
    from recommender.prewarm import PrewarmError, prewarm

    try:
        return prewarm().as_dict()
    except PrewarmError as error:
        return {"error": str(error)}
