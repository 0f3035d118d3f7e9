"""Embedder training with street garment crops as a second domain: the loss, the labels, the views."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.street_crops import WIDGET_MARGIN, StreetCrop, augment_street_crop, load_street_crops
from ml.train_embedder import LabelSets, proxy_anchor_loss, street_label_tables


def _products():
    from ml.product_photos import Product

    rows = [("Women", "Tops", "Pink"), ("Women", "Kurtas", "Blue"), ("Men", "Jackets", "Black"), ("Women", "Tops", "Blue")]
    return [Product(str(i), g, "", "", a, c, Path(f"{i}.jpg")) for i, (g, a, c) in enumerate(rows)]


def _crop(types=("Jackets", "Tops")):
    image = Image.new("RGB", (100, 200), (200, 200, 200))
    image.paste((200, 30, 30), (25, 50, 75, 150))
    return StreetCrop(image, (25.0, 50.0, 75.0, 150.0), "top", "coat", types)


def test_street_crops_are_multi_positive_article_types_without_gender_or_colour():
    labels = LabelSets(_products())
    tables = dict(zip(LabelSets.NAMES, street_label_tables(labels, [_crop()])))
    types = labels.vocab["article_type"]
    matrix, valid = tables["article_type"]
    assert matrix.shape == (5, len(types))
    assert matrix[:4].sum(axis=1).tolist() == [1, 1, 1, 1]  # products: one-hot of their own type
    assert matrix[0, types.index("Tops")] == 1 and matrix[1, types.index("Kurtas")] == 1
    assert sorted(types[i] for i in np.flatnonzero(matrix[4])) == ["Jackets", "Tops"]
    assert valid.tolist() == [1, 1, 1, 1, 1]
    for name in ("gender_article_type", "base_colour"):
        matrix, valid = tables[name]
        assert valid.tolist() == [1, 1, 1, 1, 0] and matrix[4].sum() == 0


def test_proxy_anchor_loss_takes_multi_hot_labels_and_ignores_invalid_samples():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    emb = tf.math.l2_normalize(tf.constant(rng.normal(size=(5, 8)), tf.float32), axis=1)
    proxies = tf.constant(rng.normal(size=(3, 8)), tf.float32)
    codes = tf.constant([0, 1, 2, 0, 1])
    one_hot = tf.one_hot(codes, 3)
    # multi-hot rows that are one-hot give the codes' loss
    assert float(proxy_anchor_loss(emb, one_hot, proxies)) == pytest.approx(float(proxy_anchor_loss(emb, codes, proxies)), rel=1e-5)
    # an invalid sample counts as absent, whatever its row says
    with_invalid = proxy_anchor_loss(emb, tf.concat([one_hot[:4], [[1.0, 1.0, 1.0]]], 0), proxies,
                                     valid=tf.constant([1, 1, 1, 1, 0], tf.float32))
    assert float(with_invalid) == pytest.approx(float(proxy_anchor_loss(emb[:4], codes[:4], proxies)), rel=1e-5)
    # a second positive changes the loss (the sample now pulls towards both proxies)
    two = tf.concat([one_hot[:4], [[0.0, 1.0, 1.0]]], 0)
    assert float(proxy_anchor_loss(emb, two, proxies)) != pytest.approx(float(proxy_anchor_loss(emb, one_hot, proxies)))


def test_street_crop_views_are_letterboxed_and_the_clean_one_is_the_widget_crop():
    crop = _crop()
    rng = np.random.default_rng(1)
    clean = np.asarray(augment_street_crop(crop, rng, 64, clean=True))
    assert clean.shape == (64, 64, 3) and clean.dtype == np.uint8
    # the widget's crop: the box + 8 % margin, 58 × 116 px → letterboxed on white, garment in the middle
    assert (clean[:, :8] == 255).all() and (clean[:, -8:] == 255).all()
    assert tuple(clean[32, 32]) == (200, 30, 30)
    assert WIDGET_MARGIN == pytest.approx(0.08)
    views = [np.asarray(augment_street_crop(crop, rng, 64)) for _ in range(4)]
    assert all(v.shape == (64, 64, 3) for v in views)
    assert not np.array_equal(views[0], views[1])


def test_street_crops_come_from_the_training_split_only(tmp_path):
    import json

    from ml.detection_data import TAXONOMY_PATH, split

    look = json.loads(Path(TAXONOMY_PATH).read_text())["look"]
    labels = ["null", "skin"] + sorted({label for spec in look.values() for label in spec["ccp"]})
    (tmp_path / "labels.txt").write_text("\n".join(labels) + "\n")
    (tmp_path / "masks").mkdir()
    (tmp_path / "photos").mkdir()
    names = [f"{i:04d}" for i in range(1, 21)]
    for name in names:
        mask = np.zeros((80, 40), np.uint8)
        mask[5:40, 5:35] = labels.index("coat")
        mask[40:75, 10:30] = labels.index("jeans")
        Image.fromarray(mask).save(tmp_path / "masks" / f"{name}.png")
        Image.new("RGB", (40, 80), (90, 90, 90)).save(tmp_path / "photos" / f"{name}.jpg")
    crops = load_street_crops(tmp_path, ["Jackets", "Tops"], cache_dir=tmp_path / "cache", progress=False)
    train, val = split(names)
    assert val and len(crops) == len(train)  # jeans map to no known type: only the coats, of training photos
    assert {(c.category, c.fine_label, c.article_types) for c in crops} == {("top", "coat", ("Jackets",))}
    for c in crops:
        x1, y1, x2, y2 = c.box
        assert 0 <= x1 < x2 <= c.image.width and 0 <= y1 < y2 <= c.image.height
