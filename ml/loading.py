"""Loading models once per process (lazily, thread-safe) and running them through one compiled function.

Nothing here imports TensorFlow at module import: a Celery worker may import ``ml`` before it forks.
"""
from __future__ import annotations

import threading


class ModelCache(dict):
    """A process-wide ``key -> loaded model`` dict whose entries are built at most once."""

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()

    def get_or_build(self, key, build):
        loaded = self.get(key)
        if loaded is None:
            with self._lock:
                loaded = self.get(key)
                if loaded is None:
                    loaded = self[key] = build()
        return loaded


class CompiledModel:
    """A Keras model and a ``tf.function`` running it in inference mode on (n, size, size, 3) float batches."""

    def __init__(self, model, input_size: int):
        import tensorflow as tf

        self.model = model
        self.run = tf.function(lambda x: model(x, training=False),
                               input_signature=[tf.TensorSpec((None, input_size, input_size, 3), tf.float32)])
