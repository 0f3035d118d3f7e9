"""Person segmentation: which pixels of a photo belong to the person (and what they wear).

``PersonSegmenter().mask(image) -> np.ndarray (H, W) float32 in 0..1`` with MediaPipe's
selfie-segmentation model (``ml/weights/selfie_segmentation.tflite``, Apache-2.0, unchanged from the
``mediapipe==0.10.21`` wheel: 256×256 RGB in 0..1, the photo stretched to the square as MediaPipe does;
one sigmoid channel out). It is used to read an article's colour from the garment's own pixels rather than
the street or the studio wall behind it (``ml.colour``). ~5 ms per photo on one core.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
from PIL import Image

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MODEL_FILE = "selfie_segmentation.tflite"
INPUT_SIZE = 256


class PersonSegmenter:
    version = "mediapipe-selfie-segmentation-0.10.21"

    def __init__(self, *, weights_dir: str | os.PathLike | None = None, num_threads: int | None = 1):
        self.path = Path(weights_dir or WEIGHTS_DIR) / MODEL_FILE
        if not self.path.exists():
            raise FileNotFoundError(f"person segmentation model missing: {self.path}")
        self.num_threads = num_threads
        self._interpreter = None
        self._lock = threading.Lock()

    def _load(self):
        if self._interpreter is None:
            from ml.pose import _make_interpreter

            interpreter = _make_interpreter(self.path, self.num_threads)
            self._input = interpreter.get_input_details()[0]["index"]
            self._output = interpreter.get_output_details()[0]["index"]
            self._interpreter = interpreter
        return self._interpreter

    def mask(self, image: Image.Image, size: tuple[int, int] | None = None) -> np.ndarray:
        """Probability that each pixel is the person, at ``size`` (width, height; default the image's)."""
        rgb = image.convert("RGB") if image.mode != "RGB" else image
        tensor = np.asarray(rgb.resize((INPUT_SIZE, INPUT_SIZE), Image.BILINEAR), dtype=np.float32)[None] / 255.0
        with self._lock:
            interpreter = self._load()
            interpreter.set_tensor(self._input, tensor)
            interpreter.invoke()
            out = interpreter.get_tensor(self._output)[0, :, :, 0].copy()
        width, height = size or rgb.size
        resized = Image.fromarray(np.clip(out * 255.0, 0, 255).astype(np.uint8)).resize((width, height), Image.BILINEAR)
        return np.asarray(resized, dtype=np.float32) / 255.0
