"""Article embeddings: photos (or article crops) -> L2-normalised vectors for nearest-neighbour search.

``Embedder`` is the app's model: the torchvision-exact MobileNetV2 of ``ml.backbone`` fine-tuned
with a proxy-anchor metric head (``ml.train_embedder``), 256 dimensions, weights committed in
``ml/weights`` (model card ``ml/weights/EMBEDDER.md``). ``ImageNetEmbedder`` is the baseline: the
global average pool (1280-d) of the plain ImageNet backbone.

Any image size or aspect works: each image is letterboxed (longer side to ``input_size``, padded to
a square on white, as the catalogue photos are) before the network. Weights load lazily, once per
process (thread-safe module cache), on the first ``embed`` call — never at import, so a Celery
prefork parent that imports this module does not load TensorFlow.

    from ml.embed import Embedder
    embedder = Embedder()
    vectors = embedder.embed([pil_image, ...])   # float32 (n, embedder.dim), unit norm
    embedder.version                              # store it with every vector
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from ml.loading import CompiledModel, ModelCache

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
VERSION = "embed-mnv2-pa-v4"
DEFAULT_WEIGHTS = WEIGHTS_DIR / f"{VERSION}.weights.h5"
DEFAULT_DIM = 256
DEFAULT_INPUT_SIZE = 160

_models = ModelCache()


def build_embedding_model(dim=DEFAULT_DIM, input_size=DEFAULT_INPUT_SIZE, backbone_weights="imagenet"):
    """MobileNetV2 -> global average pool -> [Dense(dim)] -> L2 normalisation (RGB 0..255 input).

    ``dim=None`` gives the plain 1280-d pooled backbone features (normalised).
    """
    import keras

    from ml.backbone import mobilenet_v2

    shape = (input_size, input_size, 3) if input_size else (None, None, 3)
    backbone = mobilenet_v2(input_shape=shape, include_top=False, weights=backbone_weights)
    x = keras.layers.GlobalAveragePooling2D(name="embedding_pool")(backbone.output)
    if dim:
        x = keras.layers.Dense(dim, name="embedding_projection")(x)
    x = keras.layers.UnitNormalization(axis=-1, name="embedding_l2")(x)
    return keras.Model(backbone.input, x, name="article_embedder")


def _letterbox_batch(images, size):
    from ml.product_photos import letterbox

    return np.stack([np.asarray(letterbox(im, size), dtype=np.float32) for im in images])


class _BaseEmbedder(ABC):
    version: str
    dim: int
    input_size: int

    @abstractmethod
    def _key(self):
        """What identifies the loaded model in the process-wide cache."""

    @abstractmethod
    def _build(self):
        """Build the Keras model with its weights."""

    def _loaded(self) -> CompiledModel:
        return _models.get_or_build(self._key(), lambda: CompiledModel(self._build(), self.input_size))

    def load(self):
        """Load the weights now (otherwise the first ``embed`` call does)."""
        self._loaded()
        return self

    def embed(self, images, batch_size: int = 32) -> np.ndarray:
        """L2-normalised float32 embeddings (len(images), dim) of PIL images of any size."""
        images = list(images)
        if not images:
            return np.zeros((0, self.dim), np.float32)
        run = self._loaded().run
        out = []
        for start in range(0, len(images), batch_size):
            batch = _letterbox_batch(images[start:start + batch_size], self.input_size)
            out.append(np.asarray(run(batch), dtype=np.float32))
        vectors = np.concatenate(out)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class Embedder(_BaseEmbedder):
    """The fine-tuned article embedder (version ``embed-mnv2-pa-v4``, 256-d)."""

    def __init__(self, weights=None):
        self.weights = Path(weights) if weights else DEFAULT_WEIGHTS
        meta_path = Path(str(self.weights) + ".json")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        self.version = meta.get("version", VERSION if self.weights == DEFAULT_WEIGHTS else self.weights.stem)
        self.dim = int(meta.get("dim", DEFAULT_DIM))
        self.input_size = int(meta.get("input_size", DEFAULT_INPUT_SIZE))

    def _key(self):
        return ("finetuned", str(self.weights.resolve()), self.dim, self.input_size)

    def _build(self):
        if not self.weights.exists():
            raise FileNotFoundError(f"embedder weights not found: {self.weights}")
        model = build_embedding_model(self.dim, self.input_size, backbone_weights=None)
        model.load_weights(self.weights)
        return model


class ImageNetEmbedder(_BaseEmbedder):
    """Baseline: global average pool (1280-d) of the ImageNet MobileNetV2, L2-normalised."""

    version = "imagenet-mnv2-gap"
    dim = 1280

    def __init__(self, input_size: int = 224):
        self.input_size = input_size
        self.version = f"imagenet-mnv2-gap-{input_size}"

    def _key(self):
        return ("imagenet", self.input_size)

    def _build(self):
        return build_embedding_model(dim=None, input_size=self.input_size, backbone_weights="imagenet")
