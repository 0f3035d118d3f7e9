"""Benchmarks of Buy Me That Look: ``python -m bench [--out docs/benchmarks.md] [--articles N] ...``.

Phases (``--only`` picks some):

- ``vector``: N synthetic clustered article vectors loaded by COPY into the real ``DetectedArticle`` table of
  a bench-only database, the HNSW index rebuilt after the load, then the same queries through the
  recommender's own per-article query (``recommender.queries``), FAISS ``IndexFlatIP`` per category and
  numpy brute force; recall@10 against exact search, an ``hnsw.ef_search`` sweep and a 1%-selective colour
  filter.
- ``widget``: the product page with ``{% buy_the_look product %}`` over the same data, cache off and on.
- ``pipeline``: per-stage latency of ``ml.pipeline.analyse`` on full-shot photos and catalogue ingest
  (images/second) eagerly and through a Celery worker on Redis.

The bench never touches the shop's database: it creates its own (``--database``, default ``shop_bench``)
on the same server and drops it at the end unless ``--keep-db``. Timings are reported, never asserted.
"""
