"""The in-process FAISS HNSW peer of the vector bench: its recall is limited by its efSearch, not by a fixed
over-fetch (a rare gender behind 100 nearer products of another gender must still be found at a high efSearch)."""
import numpy as np
import pytest

pytest.importorskip("faiss")

from bench.synthetic import Inventory  # noqa: E402
from bench.vector import FlatFaiss, HnswFaiss  # noqa: E402


def _inventory(n=3000, dim=32, seed=3):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype("float32")
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    gender = np.zeros(n, dtype="uint8")       # all "Men" ...
    gender[rng.choice(n, size=n // 20, replace=False)] = 1   # ... but 5 % "Women"
    empty = np.zeros((0,))
    return Inventory(vectors=vectors, category=np.zeros(n, dtype="uint8"), gender=gender,
                     colour=np.zeros(n, dtype="uint8"), price=np.zeros(n), cluster=np.zeros(n, dtype="int32"),
                     centres=empty, bases=empty, cluster_category=empty, cluster_weight=empty)


def test_hnsw_peer_finds_a_rare_gender_at_high_ef_search():
    inventory = _inventory()
    women = np.flatnonzero(inventory.gender == 1)
    query = inventory.vectors[women[0]] + 0.3 * inventory.vectors[5]
    query = (query / np.linalg.norm(query)).astype("float32")
    truth = women[np.argsort(-(inventory.vectors[women] @ query))[:10]] + 1

    capped = FlatFaiss(inventory).search(query, 0, [1], 10)   # exact, but only k × FAISS_OVERFETCH fetched
    assert len(capped) < 10  # 5 % of 100 candidates: the fixed over-fetch cannot fill the row

    hnsw = HnswFaiss(inventory, m=16, ef_construction=64)
    found = hnsw.search(query, 0, [1], 10, ef_search=2048)
    assert len(found) == 10
    assert len(set(found) & set(truth.tolist())) >= 9
