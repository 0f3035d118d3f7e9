"""The bench at N = 2,000 inside the test suite, so it never rots. Shapes and sanity only: no timing is asserted.

It runs ``bench.cli.main`` in this process against its own throwaway database (created and dropped by
the bench; the shop's and the test database are left alone) and reads the JSON it wrote.
"""
import json
import os

import pytest

from bench.cli import main

ARTICLES, QUERIES, LOOKS = 2000, 25, 12


@pytest.fixture(scope="module")
def report(tmp_path_factory, django_db_blocker):
    out = tmp_path_factory.mktemp("bench") / "benchmarks.md"
    database = f"shop_bench_smoke_{os.getpid()}"
    with django_db_blocker.unblock():
        status = main([
            "--articles", str(ARTICLES), "--queries", str(QUERIES), "--looks", str(LOOKS), "--pages", str(LOOKS),
            "--only", "vector,widget", "--ef-search", "40,80", "--out", str(out), "--database", database,
            "--no-progress",
        ])
    assert status == 0
    assert not (out.parent / "benchmarks.partial.json").exists()  # only an interrupted run leaves one
    data = json.loads(out.with_suffix(".json").read_text())
    data["_markdown"] = out.read_text()
    data["_json_path"] = str(out.with_suffix(".json"))
    data["_database"] = database
    return data


def between_0_and_1(value):
    return isinstance(value, (int, float)) and 0.0 <= value <= 1.0


def test_dataset_and_index(report):
    dataset = report["dataset"]
    assert report["articles"] == dataset["articles"] == ARTICLES
    assert dataset["dimension"] == 256
    assert sum(dataset["categories"].values()) == ARTICLES
    assert set(dataset["categories"]) == {"top", "bottom", "dress", "footwear", "bag"}
    assert sum(dataset["genders"].values()) == ARTICLES
    assert dataset["rows"] == {"products": ARTICLES + LOOKS, "images": ARTICLES + LOOKS,
                               "analyses": ARTICLES + LOOKS, "inventory_articles": ARTICLES,
                               "look_articles": 3 * LOOKS}
    index = report["index"]
    assert "hnsw" in index["definition"] and "recommender_inventory_hnsw" in index["definition"]
    assert index["size_bytes"] > 0 and index["build_seconds"] >= 0


def test_vector_search_figures(report):
    vector = report["vector"]
    assert vector["queries"] == QUERIES and vector["k"] == 10
    for method in ("pgvector", "faiss_flat", "numpy_brute_force"):
        figures = vector[method]
        assert between_0_and_1(figures["recall_at_10"]), method
        assert 0 <= figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"], method
    # At 2,000 rows the planner may well prefer the B-tree filter index and a sort; at scale it is the HNSW index.
    assert vector["pgvector"]["uses_hnsw_index"] in (True, False) and vector["pgvector"]["plan"]
    assert vector["pgvector"]["short_results"] == 0  # the query path always returns k when k exist
    assert vector["exact_sql"]["agreement_with_numpy_at_10"] >= 0.99  # same SQL without the index = numpy
    assert [point["ef_search"] for point in vector["ef_search_sweep"]] == [40, 80]
    assert vector["server_side"]["queries"] == QUERIES and vector["server_side"]["execution"]["p50_ms"] > 0
    assert all(between_0_and_1(point["recall_at_10"]) for point in vector["ef_search_sweep"])


def test_rare_colour_filter_never_comes_back_short(report):
    rare = report["vector"]["rare_colour"]
    assert rare["colour"] == "lavender"
    assert 0 < rare["share_of_articles"] < 0.05
    assert rare["short_results"] == 0
    assert between_0_and_1(rare["recall_at_10"])
    assert 0 <= rare["queries_with_fewer_than_k_matches"] <= QUERIES


def test_widget_pages(report):
    widget = report["widget"]
    for mode in ("cache_off", "cache_off_candidates", "cache_on"):
        part = widget[mode]
        assert part["pages"] == LOOKS
        assert part["pages_with_widget"] == LOOKS
        assert part["http_statuses"] == [200]
        assert part["p50_ms"] > 0
    assert widget["cache_on"]["sql_queries_per_page"]["median"] < widget["cache_off"]["sql_queries_per_page"]["median"]
    only = widget["look_for_only"]
    assert only["calls"] == LOOKS and only["rows_per_look"] == 3  # every look product has three article rows
    assert only["sql_queries"]["median"] < widget["cache_off"]["sql_queries_per_page"]["median"]
    # where the page's time goes: the look statement sent again, and PostgreSQL's own planning and execution of it
    statement = widget["look_statement"]
    assert statement["looks"] == LOOKS
    assert statement["execution"]["p50_ms"] > 0 and statement["wall"]["p50_ms"] > 0
    assert statement["planning"]["p50_ms"] > 0 and statement["shared_hit_blocks_median"] > 0
    assert "Where a cache-off page's time goes" in report["_markdown"]
    # the rows' products against the same statement run exactly: every row compared, at each ef_search
    recall = widget["row_recall"]
    assert recall["looks"] == LOOKS
    assert [p["ef_search"] for p in recall["curve"]] == [50, 100, 200, "precomputed candidates"]
    assert [name for name in recall["statement_indexes"] if "hnsw" in name]  # the page's rows: HNSW scans
    assert not [name for name in recall["exact_statement_indexes"] if "hnsw" in name]  # the truth: exact
    assert [p["default"] for p in recall["curve"]] == [False, False, True, False]
    # precomputed candidates (LOOK_CANDIDATES): a list per row stored before, the same pages and SQL statements
    assert widget["candidates"]["rows"] == 3 * LOOKS and widget["candidates"]["ms_per_row"] > 0
    assert (widget["cache_off_candidates"]["sql_queries_per_page"]
            == widget["cache_off"]["sql_queries_per_page"])
    assert widget["look_for_only_candidates"]["rows_per_look"] == 3
    assert widget["look_statement_candidates"]["looks"] == LOOKS
    assert "With precomputed candidates" in report["_markdown"]
    for point in recall["curve"]:
        assert point["rows"] == 3 * LOOKS and point["p50_ms"] > 0
        assert point["row_recall"] >= 0.9  # 2,000 articles: the graph is all but exact (0 if rows were mismatched)
    assert "The rows' products against exact search" in report["_markdown"]
    for key in ("look_statement_plan", "look_statement_plan_candidates"):
        plan = widget[key]  # EXPLAIN of the real look statement: the planner's cost and JIT decision
        assert plan["estimated_total_cost"] > 0 and plan["jit_above_cost"] > 0
        assert plan["would_jit"] == (plan["jit"] == "on" and plan["estimated_total_cost"] > plan["jit_above_cost"])
    assert "With precomputed candidates, the look statement as planned" in report["_markdown"]
    # the look query's indexes and the article table were loaded before the timed pages (manage.py prewarm_indexes)
    for phase in (widget, report["vector"]):
        warmed = phase["prewarm"]
        names = [relation["name"] for relation in warmed["relations"]]
        assert names[-1] == "recommender_detectedarticle" and "recommender_hnsw_top" in names
        assert "recommender_inventory_hnsw" not in names
        assert warmed["total_mb"] > 0 and warmed["into_page_cache_mb"] + warmed["into_shared_buffers_mb"] > 0


def test_markdown_and_cleanup(report):
    markdown = report["_markdown"]
    assert "The look statement as planned" in markdown
    assert markdown.count("`manage.py prewarm_indexes` (as a shop runs it after a database restart)") == 2
    assert "## Targets" in markdown and "## Vector search" in markdown and "Recall–latency" in markdown
    from bench.database import connect

    with connect("postgres", autocommit=True) as admin:
        left = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [report["_database"]]).fetchone()
    assert left is None  # the bench dropped its database


def test_scaling_note_renders_from_the_run(report, tmp_path):
    from bench import scaling

    out = tmp_path / "scaling.md"
    assert scaling.main([report["_json_path"], "--out", str(out)]) == 0
    text = out.read_text()
    assert f"N = {ARTICLES:,}" in text
    assert "### 1. Queries: PostgreSQL read replicas" in text and "### 3. Partitioning by category" in text
    assert "computed" in text  # no 1M run: the note says its 1M figures are computed


def test_faiss_hnsw_peer_and_its_chart(report):
    from pathlib import Path

    from recommender.models import HNSW_EF_CONSTRUCTION, HNSW_M

    hnsw = report["vector"]["faiss_hnsw"]
    # The peer is built as the recommender's own indexes are (the migrations' parameters).
    assert (hnsw["m"], hnsw["ef_construction"]) == (HNSW_M, HNSW_EF_CONSTRUCTION) == (16, 128)
    sweep = hnsw["ef_search_sweep"]
    assert [p["ef_search"] for p in sweep] == [16, 32, 64, 128, 256, 512, 1024, 2048]
    assert all(between_0_and_1(p["recall_at_10"]) for p in sweep)
    assert "IndexHNSWFlat" in report["_markdown"]
    chart = Path(report["_json_path"]).with_name("benchmarks-recall-latency.png")
    assert chart.exists() and chart.read_bytes()[:4] == b"\x89PNG"


def test_halfvec_pass_measures_its_own_indexes_and_leaves_the_float_ones(report):
    half = report["vector"]["halfvec"]
    assert isinstance(half["indexes_used"], list)  # the plan of the halfvec query was captured (at 2,000 rows
    # the planner rightly prefers the B-tree filter index; docs/benchmarks-1m.md shows the halfvec one at 1M)
    assert 0 < half["size_mb"] and 0 < half["float_size_mb"]
    assert set(half["indexes"]) == {"recommender_inventory_halfvec", "recommender_halfvec_top",
                                    "recommender_halfvec_bottom", "recommender_halfvec_dress",
                                    "recommender_halfvec_footwear", "recommender_halfvec_bag"}
    assert between_0_and_1(half["recall_at_10"]) and half["short_results"] == 0
    assert [p["ef_search"] for p in half["ef_search_sweep"]] == [40, 80]
    assert "Half-precision indexes" in report["_markdown"] and "halfvec indexes: recall@10 drop" in report["_markdown"]
