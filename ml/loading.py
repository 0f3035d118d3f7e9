"""Loading models once per process (lazily, thread-safe) and running them through one compiled function.

Nothing here imports TensorFlow at module import: a Celery worker may import ``ml`` before it forks.
"""
from __future__ import annotations

import os
import threading

#: Environment variable: threads each model may use in this process (TFLite interpreters, TensorFlow's intra-op
#: pool). Unset: TFLite models use 2 threads, TensorFlow its default (every core). A Celery worker with several
#: processes sets it to cores ÷ processes (``recommender.tasks``): two single-threaded processes on two cores
#: analyse more images per second than two processes that each try to use both.
THREADS_VARIABLE = "BTL_MODEL_THREADS"


def model_threads() -> int | None:
    """The thread count set for this process's models, or None (each model's default)."""
    value = os.environ.get(THREADS_VARIABLE, "").strip()
    return max(1, int(value)) if value.isdigit() else None


def set_model_threads(threads: int | None) -> None:
    """Set the threads of the models this process (and the processes it forks) will load. TensorFlow reads its
    thread counts once, when it starts: call this before any model runs."""
    if threads is None:
        os.environ.pop(THREADS_VARIABLE, None)
        return
    threads = max(1, int(threads))
    os.environ[THREADS_VARIABLE] = str(threads)
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = str(threads)


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
