"""The whole-photo category head: its fit, its weights per domain and category, and its file."""
import numpy as np

from ml.category_head import CategoryHead, balanced_weights, fit_softmax


def test_fit_softmax_separates_categories():
    rng = np.random.default_rng(0)
    centres = np.eye(4, 16) * 3
    y = rng.integers(0, 4, size=400)
    x = centres[y] + rng.normal(0, 0.5, size=(400, 16))
    w, b = fit_softmax(x, y, 4, np.ones(400), steps=300)
    assert w.shape == (16, 4) and b.shape == (4,)
    assert ((x @ w + b).argmax(axis=1) == y).mean() > 0.95


def test_each_domain_and_each_of_its_categories_weigh_the_same():
    domain = np.array([0, 0, 0, 0, 1, 1])
    y = np.array([0, 0, 0, 1, 0, 2])
    w = balanced_weights(domain, y)
    assert np.isclose(w.sum(), 1.0)
    assert np.isclose(w[domain == 0].sum(), 0.5) and np.isclose(w[domain == 1].sum(), 0.5)
    assert np.isclose(w[:3].sum(), w[3])  # three catalogue photos of category 0 weigh what one of category 1 does


def test_the_head_answers_only_for_its_embedder(tmp_path):
    path = tmp_path / "head.npz"
    weights = np.zeros((3, 2), np.float32)
    weights[0, 0] = weights[1, 1] = 5.0
    np.savez(path, weights=weights, bias=np.zeros(2, np.float32), categories=np.array(["top", "bag"]),
             embedder_version="embed-x", version="category-head-1-embed-x")
    head = CategoryHead(path)
    assert head.available_for("embed-x") and not head.available_for("embed-y") and not head.available_for(None)
    (top, p_top), (bag, p_bag) = head.predict(np.array([[1, 0, 0], [0, 1, 0]], np.float32))
    assert (top, bag) == ("top", "bag") and p_top > 0.99 and p_bag > 0.99
    assert not CategoryHead(tmp_path / "missing.npz").available_for("embed-x")
