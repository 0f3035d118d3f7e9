"""A softmax layer over one embedder's vectors, kept in an ``.npz`` file that names the embedder it belongs to.

``ml.category_head.CategoryHead`` (the look category of a whole photo) and ``ml.shot_test.ShotTest`` (can a photo
be a full shot) are such heads. The file holds ``weights`` (dim, classes), ``bias``, ``embedder_version`` and
``version``, plus what a head adds (``EXTRA``: name → converter). A head is used only with vectors of its
embedder (``available_for``); a missing file makes a head that is available for none.
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
    #: extra keys of the file and how to read them
    EXTRA: dict = {}

    def __init__(self, path):
        self.path = Path(path)
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
