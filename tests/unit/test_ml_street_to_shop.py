"""``python -m ml.evaluate street-to-shop``: taxonomy mapping, rows as the widget makes them, garments, kNN."""
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image

from ml.commands import run_subcommands
from ml.detection_data import PhotoBoxes
from ml.evaluation import street_to_shop as s2s

ROOT = Path(__file__).resolve().parents[2]


def test_every_look_label_has_acceptable_catalogue_types():
    data = json.loads((ROOT / "ml" / "categories.json").read_text())
    look_labels = {label for spec in data["look"].values() for label in spec["ccp"]}
    mapping = s2s.street_to_catalogue()
    assert set(mapping) == look_labels
    assert mapping["jeans"] == {"Jeans", "Jeggings"}
    assert mapping["heels"] == {"Heels"}
    assert {"Sports Shoes", "Casual Shoes"} <= mapping["sneakers"]
    assert not any("Kurtas" in types for types in mapping.values())


def test_rows_group_by_category_drop_weak_and_overlapping_articles():
    art = lambda c, conf, box: SimpleNamespace(category=c, confidence=conf, box=box)
    rows = s2s.rows_for([
        art("footwear", 0.6, (0.1, 0.9, 0.2, 1.0)), art("footwear", 0.7, (0.3, 0.9, 0.4, 1.0)),
        art("footwear", 0.5, (0.3, 0.9, 0.41, 1.0)),  # a duplicate of the best shoe
        art("top", 0.2, (0.1, 0.1, 0.9, 0.5)),  # under MIN_ARTICLE_CONFIDENCE
        art("hat", 0.9, (0, 0, 1, 1)),
    ], ("top", "bottom", "dress", "footwear", "bag"))
    assert list(rows) == ["footwear"]
    assert [a.confidence for a in rows["footwear"]] == [0.7, 0.6]


def test_garments_get_the_dominant_fine_label(tmp_path):
    labels = ["null", "skin", "coat", "blouse", "jeans", "heels"]
    (tmp_path / "labels.txt").write_text("\n".join(labels) + "\n")
    (tmp_path / "masks").mkdir()
    mask = np.zeros((100, 50), np.uint8)
    mask[10:50, 5:45] = labels.index("coat")
    mask[20:30, 20:30] = labels.index("blouse")
    mask[50:90, 10:40] = labels.index("jeans")
    Image.fromarray(mask).save(tmp_path / "masks" / "0001.png")
    boxes = {"0001": PhotoBoxes("0001", 50, 100, ((0.1, 0.1, 0.9, 0.5), (0.2, 0.5, 0.8, 0.9)), (0, 1))}
    garments = s2s.garments_of(tmp_path, ["0001"], boxes)
    assert [(g.category, g.fine_label) for g in garments] == [("top", "coat"), ("bottom", "jeans")]


def test_catalogue_nearest_filters_category_and_gender():
    catalogue = object.__new__(s2s.Catalogue)
    catalogue.vectors = np.eye(4, dtype=np.float32)
    catalogue.category = np.array(["top", "top", "top", "footwear"])
    catalogue.gender = np.array(["Women", "Men", "Unisex", "Women"])
    catalogue.article_type = np.array(["Tops", "Shirts", "Tshirts", "Heels"])
    catalogue.products = [None] * 4
    query = np.array([0.1, 1.0, 0.5, 0.9], np.float32)
    assert catalogue.nearest(query, 10, "top", "Women").tolist() == [2, 0]
    assert catalogue.nearest(query, 10, "top", "Men").tolist() == [1, 2]
    assert catalogue.nearest(query, 2, None, None).tolist() == [1, 3]
    assert s2s._type_share(catalogue, np.array([0, 2]), {"Tops"}) == 0.5


def test_crop_variants(tmp_path):
    photo = Image.new("RGB", (60, 120), (10, 200, 10))
    mask = np.zeros((120, 60), np.uint8)
    mask[20:60, 10:50] = 7
    box = (10 / 60, 20 / 120, 50 / 60, 60 / 120)
    for how in s2s.VARIANTS:
        crop = s2s.crop_variant(photo, mask, [7], box, how)
        assert crop.width > 0 and crop.height > 0, how
    masked = np.asarray(s2s.crop_variant(photo, mask, [7], box, "box_masked"))
    assert (masked[0, 0] == 255).all()  # outside the garment: white
    assert s2s.crop_variant(photo, mask, [7], box, "mask_tight_masked").size == (40, 40)
    square = s2s.crop_variant(photo, mask, [7], box, "square_context")
    assert square.width == square.height


def test_street_to_shop_is_an_evaluate_subcommand(capsys):
    try:
        run_subcommands("python -m ml.evaluate", "", "ml.evaluation", {"street-to-shop": "x"}, ["street-to-shop", "-h"])
    except SystemExit as exit:
        assert exit.code == 0
    assert "--catalogue-styles" in capsys.readouterr().out


def test_kurta_share_by_aspect_and_catalogue_base_rates():
    records = [{"aspect_w_over_h": a, "types": t, "type_share": p} for a, t, p in [
        (0.4, ["Kurtas", "Tops"], 0.5), (0.5, ["Kurtas", "Kurtis"], 0.0),
        (0.9, ["Tops", "Shirts"], 1.0), (1.2, ["Jackets", "Kurtas"], 0.5)]]
    rows = s2s.by_aspect(records, quantiles=(0.5,))
    assert [r["garments"] for r in rows] == [2, 2]
    assert rows[0]["kurta_share"] == 0.75 and rows[1]["kurta_share"] == 0.25
    assert rows[0]["type_precision"] == 0.25
    catalogue = SimpleNamespace(category=np.array(["top", "top", "top", "bag"]),
                                gender=np.array(["Women", "Men", "Unisex", "Women"]),
                                article_type=np.array(["Kurtas", "Shirts", "Tshirts", "Handbags"]))
    types = s2s.catalogue_types(catalogue, "top")
    assert types["Women"] == {"products": 2, "Kurtas": 0.5, "Tshirts": 0.5}
    assert types["any"]["products"] == 3


def test_category_vote_takes_the_majority_of_the_nearest_and_breaks_ties_by_rank():
    catalogue = object.__new__(s2s.Catalogue)
    catalogue.vectors = np.eye(5, dtype=np.float32)
    catalogue.category = np.array(["top", "bag", "bag", "footwear", "top"])
    catalogue.gender = np.array(["Women", "Women", "Women", "Women", "Men"])
    catalogue.products = [None] * 5
    query = np.array([1.0, 0.9, 0.8, 0.7, 0.95], np.float32)
    assert s2s.category_vote(catalogue, query, "Women") == "bag"  # top 1, bag 2, footwear 1
    assert s2s.category_vote(catalogue, query, "Women", neighbours=1) == "top"
    assert s2s.category_vote(catalogue, query, None, neighbours=2) == "top"  # two tops nearest (0 and 4)
    catalogue.category[2] = "footwear"  # a tie (top 1, bag 1, footwear 2 → footwear); then top vs bag: rank
    assert s2s.category_vote(catalogue, query, "Women") == "footwear"
    assert s2s.category_vote(catalogue, query, "Women", neighbours=2) == "top"


def test_floor_sweep_counts_rows_gained_and_wrong_rows_per_floor():
    records = [  # two worn dresses: one found at 0.3, one only at 0.12; a top found at 0.9
        {"category": "dress", "best_confidence": 0.3, "low_floor_type_share": 1.0},
        {"category": "dress", "best_confidence": 0.12, "low_floor_type_share": 0.5},
        {"category": "top", "best_confidence": 0.9, "low_floor_type_share": 0.4},
    ]
    photos = [{"worn": ["dress"], "best": {"dress": 0.3}},
              {"worn": ["dress", "top"], "best": {"dress": 0.12, "top": 0.9}},
              {"worn": ["top"], "best": {"dress": 0.2}}]  # a dress row on a photo without a dress from floor 0.2 down
    sweep = s2s.floor_sweep(records, photos, ("top", "dress", "bag"), floors=(0.1, 0.25))
    assert set(sweep) == {"top", "dress"}  # no worn bag: no bag entry
    low, shop = sweep["dress"]
    assert (low["garments_with_row"], low["rows_without_garment"], low["type_precision"]) == (1.0, 1, 0.75)
    assert (shop["garments_with_row"], shop["rows_without_garment"], shop["type_precision"]) == (0.5, 0, 1.0)
    assert sweep["top"][1]["garments_with_row"] == 1.0


def test_rows_use_each_category_floor_as_the_shop_does():
    from ml.detect import ARTICLE_FLOORS

    art = lambda c, conf, box: SimpleNamespace(category=c, confidence=conf, box=box)
    found = [art("bag", 0.18, (0.6, 0.5, 0.8, 0.7)), art("dress", 0.18, (0.2, 0.2, 0.8, 0.8))]
    floors = s2s.shop_floors("bag=0.15")
    assert floors["bag"] == 0.15 and floors["dress"] == s2s.MIN_ARTICLE_CONFIDENCE
    assert set(s2s.rows_for(found, ("dress", "bag"), floors)) == {"bag"}
    assert s2s.rows_for(found, ("dress", "bag"), s2s.shop_floors("none")) == {}
    assert s2s.shop_floors("default") == {c: ARTICLE_FLOORS.get(c, 0.25) for c in floors}
