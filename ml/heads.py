"""A softmax layer over one embedder's vectors, kept in an ``.npz`` file that names the embedder it belongs to.

``ml.category_head.CategoryHead`` (the look category of a whole photo) and ``ml.shot_test.ShotTest`` (can a photo
be a full shot) are such heads. The file holds ``weights`` (dim, classes), ``bias``, ``embedder_version`` and
``version``, plus what a head adds (``EXTRA``: name → converter). A head is used only with vectors of its
embedder (``available_for``); a missing file makes a head that is available for none. ``fit_softmax`` and
``balanced_weights`` train one.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np


def softmax(logits) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


class EmbeddingHead:
    #: the committed file of the head (``path=None``)
    DEFAULT_PATH: Path | None = None
    #: extra keys of the file and how to read them
    EXTRA: dict = {}

    def __init__(self, path=None):
        self.path = Path(path if path is not None else self.DEFAULT_PATH)
        self._loaded = None
        self._lock = threading.Lock()

    def _load(self) -> dict:
        with self._lock:
            if self._loaded is None:
                if not self.path.exists():
                    self._loaded = {}
                else:
                    with np.load(self.path) as data:
                        self._loaded = {"weights": data["weights"], "bias": data["bias"],
                                        "embedder_version": str(data["embedder_version"]),
                                        "version": str(data["version"])}
                        self._loaded.update({key: read(data[key]) for key, read in self.EXTRA.items()})
        return self._loaded

    @property
    def version(self):
        return self._load().get("version")

    @property
    def embedder_version(self):
        return self._load().get("embedder_version")

    def available_for(self, embedder_version) -> bool:
        return bool(embedder_version) and self.embedder_version == embedder_version

    def probabilities(self, vectors) -> np.ndarray:
        head = self._load()
        x = np.asarray(vectors, np.float32).reshape(-1, head["weights"].shape[0])
        return softmax(x @ head["weights"] + head["bias"])


def fit_softmax(x, y, n_classes, sample_weight, l2=1e-5, steps=3000, lr=0.05, seed=0):
    """Multinomial logistic regression by full-batch Adam: (weights (d, C), bias (C,))."""
    rng = np.random.default_rng(seed)
    d = x.shape[1]
    w = rng.normal(0, 0.01, size=(d, n_classes)).astype(np.float64)
    b = np.zeros(n_classes)
    onehot = np.eye(n_classes)[y]
    sw = sample_weight / sample_weight.sum()
    m = [np.zeros_like(w), np.zeros_like(b)]
    v = [np.zeros_like(w), np.zeros_like(b)]
    for t in range(1, steps + 1):
        logits = x @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) * sw[:, None]
        grads = [x.T @ g + l2 * w, g.sum(axis=0)]
        for i, (param, grad) in enumerate(zip((w, b), grads)):
            m[i] = 0.9 * m[i] + 0.1 * grad
            v[i] = 0.999 * v[i] + 0.001 * grad ** 2
            param -= lr * (m[i] / (1 - 0.9 ** t)) / (np.sqrt(v[i] / (1 - 0.999 ** t)) + 1e-8)
    return w.astype(np.float32), b.astype(np.float32)


def balanced_weights(domain, y):
    """Each domain weighs the same, and within a domain each category the same."""
    weights = np.zeros(len(y))
    domains = np.unique(domain)
    for dom in domains:
        in_domain = domain == dom
        classes = np.unique(y[in_domain])
        for c in classes:
            cell = in_domain & (y == c)
            weights[cell] = 1.0 / (len(domains) * len(classes) * cell.sum())
    return weights
