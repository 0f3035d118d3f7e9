"""Test-only pipeline parts, configured by dotted path in ``BUY_THE_LOOK["PIPELINE"]`` (the swappable-part
door a shop uses for its own models). They need no weights, so the server paths around the pipeline can be
driven fast; ``FailingDetector`` injects a model error, ``SlowOnceDetector`` makes one analysis slow enough
to kill its worker in the middle.
"""
import hashlib
import os
import time
from collections import namedtuple
from pathlib import Path

import numpy as np

PoseResult = namedtuple("PoseResult", "is_full_shot score keypoints")
Detection = namedtuple("Detection", "category confidence box")
DIM = 256


class FullShotPose:
    version = "test-pose-1"

    def check(self, image):
        return PoseResult(True, 0.9, [(0.5, 0.1 + i / 40, 0.9) for i in range(33)])


class FixedGender:
    version = "test-gender-1"

    def predict(self, image):
        return "Women", 0.8


class TwoArticleDetector:
    """A top in the upper half and footwear at the bottom of every photo."""

    version = "test-detector-1"

    def detect(self, image, min_confidence=0.25):
        return [Detection("top", 0.9, (0.3, 0.12, 0.7, 0.5)), Detection("footwear", 0.8, (0.35, 0.86, 0.65, 0.98))]


class PixelEmbedder:
    """A deterministic unit vector from the pixels (same crop → same vector)."""

    version = "test-embedder-1"
    dim = DIM

    def embed(self, images):
        vectors = []
        for image in images:
            seed = int.from_bytes(hashlib.sha256(image.convert("RGB").resize((16, 16)).tobytes()).digest()[:8], "big")
            vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
            vectors.append(vector / np.linalg.norm(vector))
        return np.stack(vectors)


class FailingDetector(TwoArticleDetector):
    """The detector's model breaks (e.g. a corrupt weights file)."""

    version = "test-detector-broken"
    MESSAGE = "detector weights are corrupt (injected fault)"

    def detect(self, image, min_confidence=0.25):
        raise RuntimeError(self.MESSAGE)


class SlowOnceDetector(TwoArticleDetector):
    """Sleeps ``SLOW_SECONDS`` on the first call while the marker file named by ``$BTL_SLOW_MARKER`` does not
    exist (it is created first, so the delivery after a worker crash runs at full speed). A file
    ``<marker>.started`` tells the test that the slow call began."""

    SLOW_SECONDS = 60

    def detect(self, image, min_confidence=0.25):
        marker = os.environ.get("BTL_SLOW_MARKER")
        if marker and not Path(marker).exists():
            Path(marker).write_text(str(os.getpid()))
            Path(marker + ".started").write_text(str(os.getpid()))
            time.sleep(self.SLOW_SECONDS)
        return super().detect(image, min_confidence)


FAKE_PIPELINE = {
    "pose": "robust_parts.FullShotPose",
    "gender": "robust_parts.FixedGender",
    "detector": "robust_parts.TwoArticleDetector",
    "embedder": "robust_parts.PixelEmbedder",
}


class FailingEmbedder(PixelEmbedder):
    """The embedder's model breaks."""

    version = "test-embedder-broken"

    def embed(self, images):
        raise RuntimeError("embedder out of memory (injected fault)")


class PoisonImageDetector(TwoArticleDetector):
    """A poison image: on a photo of exactly ``POISON_SIZE`` the model takes its process down, every time (a
    segfault, the out-of-memory killer); other photos are fine."""

    POISON_SIZE = (121, 201)

    def detect(self, image, min_confidence=0.25):
        if image.size == self.POISON_SIZE:
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        return super().detect(image, min_confidence)


class HangingDetector(TwoArticleDetector):
    """The model hangs (a deadlock, a stuck device)."""

    def detect(self, image, min_confidence=0.25):
        time.sleep(3600)
