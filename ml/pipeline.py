"""The look analysis of one image: ``analyse(image) -> Analysis``.

Steps (each timed in ``Analysis.timings``, milliseconds):

1. ``decode``: ``ml.images.load_image`` — bytes, path, file or PIL image → RGB, EXIF rotation
   applied, size limits enforced (``ml.images.ImageError`` otherwise);
2. ``pose``: the full-shot gate (``ml.pose.PoseGate``);
3. ``gender``: the product's own gender when given (source ``"product"``), otherwise predicted
   (``ml.gender.GenderClassifier``, source ``"predicted"``; for a full shot it is given the pose
   keypoints and classifies the person's head-to-hips crop);
4. ``detect``: articles (top, bottom, dress, footwear, bag) — only for full shots, unless
   ``detect=True`` forces it (``detect=False`` skips it);
5. ``embed``: each article crop (with a small margin) and the whole image, in one batch — the
   whole-image vector is always computed, so every product is findable through it;
6. ``colour``: each article's colours and the whole image's, read from the garment's own pixels
   (``ml.colour.ColourReader``: person segmentation, skin excluded, CIELAB, named in the catalogue's words).

The parts are swappable: ``Parts`` holds one object per stage; ``default_parts()`` builds the
project's own once per process (thread-safe, weights load lazily on first use, so calling it in a
Celery parent before fork loads no TensorFlow); ``load_part("package.module.Class")`` imports
another implementation by dotted path.
"""
from __future__ import annotations

import dataclasses
import importlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ml.images import ImageError, load_image
from ml.pose import PoseResult

__all__ = [
    "Analysis",
    "Article",
    "Parts",
    "analyse",
    "analyse_batch",
    "default_parts",
    "load_part",
    "parts_from_paths",
    "crop_with_margin",
    "DEFAULT_PART_PATHS",
    "ImageError",
]

#: The project's own implementation of each stage, as dotted paths.
DEFAULT_PART_PATHS = {
    "pose": "ml.pose.PoseGate",
    "gender": "ml.gender.GenderClassifier",
    "detector": "ml.detect.ArticleDetector",
    "embedder": "ml.embed.Embedder",
    "colour": "ml.colour.ColourReader",
    "shot_test": "ml.shot_test.ShotTest",
    "category_head": "ml.category_head.CategoryHead",
    "kind_head": "ml.kind_head.KindHead",
}
#: Parts that may be left out (``False`` in ``parts_from_paths``, None in ``Parts``).
OPTIONAL_PARTS = ("colour", "shot_test", "category_head", "kind_head")
#: The detection floor of every category when ``min_confidence`` is one number (and of a category a
#: ``min_confidence`` dict does not name).
MIN_CONFIDENCE = 0.25
#: Extra context around an article box before embedding, as a fraction of the box's width/height.
CROP_MARGIN = 0.08
GENDER_SOURCES = ("product", "predicted")
#: What ``analyse_batch`` records for an image the shot test ruled out as a full shot (the gate did not run).
_GATE_SKIPPED = PoseResult(False, 0.0)
_GATE_SKIPPED_PERSON = PoseResult(False, 0.0, person_seen=True)


@dataclass(frozen=True)
class Article:
    """One article found in the image. ``box`` is (x1, y1, x2, y2) normalised to 0..1."""

    category: str
    confidence: float
    box: tuple[float, float, float, float]
    embedding: np.ndarray = field(repr=False, compare=False)
    colour: Any = field(default=None, repr=False, compare=False)  # ml.colour.Colour, None = not read
    kind: Any = field(default=None, repr=False, compare=False)  # ml.kind_head descriptor, None = not read


@dataclass
class Analysis:
    """Everything the recommender stores about one image."""

    width: int
    height: int
    is_full_shot: bool
    pose_score: float
    keypoints: list  # 33 × (x, y, visibility), normalised; empty when no person was found
    gender: str | None
    gender_confidence: float
    gender_source: str | None  # "product" | "predicted" | None
    articles: list  # list[Article], most confident first
    image_embedding: np.ndarray = field(repr=False)
    timings: dict = field(default_factory=dict)  # stage → ms: decode, pose, gender, detect, embed, total
    model_versions: dict = field(default_factory=dict)  # part → version string
    image_colour: Any = field(default=None, repr=False)  # ml.colour.Colour of the whole image, None = not read
    image_kind: Any = field(default=None, repr=False)  # ml.kind_head descriptor of the whole image, None = not read

    def articles_in(self, category: str) -> list:
        return [a for a in self.articles if a.category == category]


@dataclass
class Parts:
    """One object per stage. Any object with the same methods will do (see ``load_part``).

    - ``pose.check(image) -> PoseResult(is_full_shot, score, keypoints)``
    - ``gender.predict(image) -> (label, confidence)`` (optionally ``keypoints=`` for full shots)
    - ``detector.detect(image, min_confidence=...) -> [Detection(category, confidence, box)]``
    - ``embedder.embed([images]) -> np.ndarray (n, dim)``; ``embedder.dim``
    - ``colour.read(image, [box or None, …], find_person=bool) -> [ml.colour.Colour]`` (optional: None =
      colours not read; ``find_person=False`` when the pose gate saw nobody)
    - ``shot_test.available_for(embedder_version) -> bool``, ``shot_test.screen(vectors) -> [ml.shot_test.Screen]``
      (optional: None = every image of ``analyse_batch`` runs the pose gate)
    - ``category_head.available_for(embedder_version) -> bool``, ``category_head.probabilities(vectors)``,
      ``category_head.categories``: a second opinion on the detections of the categories in
      ``ml.detect.HEAD_CHECKS`` (optional: None = every detection is kept)
    - ``kind_head.available_for(embedder_version) -> bool``, ``kind_head.descriptors(vectors)``: what kind of
      article each vector shows, stored next to it for the look query (optional: None = no kind descriptors)

    Each has a ``version`` string. ``versions()`` leaves the shot test out: it decides only which images skip
    the gate, not what an analysis holds, so a new one does not make stored analyses stale.
    """

    pose: Any
    gender: Any
    detector: Any
    embedder: Any
    colour: Any = None
    shot_test: Any = None
    category_head: Any = None
    kind_head: Any = None

    def versions(self) -> dict:
        names = ("pose", "gender", "detector", "embedder") + (("colour",) if self.colour is not None else ()) + tuple(
            name for name in ("category_head", "kind_head") if self.head(name) is not None)
        return {name: str(getattr(getattr(self, name), "version", "unknown")) for name in names}

    def head(self, name):
        """The head part ``name`` when it is set and belongs to this embedder, else None."""
        head = getattr(self, name)
        return head if head is not None and head.available_for(str(self.embedder.version)) else None


def load_part(dotted_path: str):
    """Import ``"package.module.Name"`` (or ``"package.module:Name"``) and return ``Name``."""
    if not isinstance(dotted_path, str) or not dotted_path.strip():
        raise ImportError(f"not a dotted path: {dotted_path!r}")
    path = dotted_path.strip()
    if ":" in path:
        module_path, _, attribute = path.partition(":")
    else:
        module_path, _, attribute = path.rpartition(".")
    if not module_path or not attribute:
        raise ImportError(f"{dotted_path!r} is not a dotted path to a class (module.Class)")
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise ImportError(f"cannot import {module_path!r} (from {dotted_path!r}): {exc}") from exc
    try:
        obj = module
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise ImportError(f"module {module_path!r} has no attribute {attribute!r}") from None
    return obj


def parts_from_paths(pose=None, gender=None, detector=None, embedder=None, colour=None, shot_test=None,
                     category_head=None, kind_head=None) -> Parts:
    """``Parts`` built from dotted paths (or classes, or ready objects); None = the default
    (``colour=False``: no colour reader; ``shot_test=False``: every image runs the pose gate;
    ``category_head=False``: detections are not checked; ``kind_head=False``: no kind descriptors)."""
    chosen = {"pose": pose, "gender": gender, "detector": detector, "embedder": embedder, "colour": colour,
              "shot_test": shot_test, "category_head": category_head, "kind_head": kind_head}
    built = {}
    for name, spec in chosen.items():
        if name in OPTIONAL_PARTS and spec is False:  # not used
            built[name] = None
            continue
        spec = spec or DEFAULT_PART_PATHS[name]
        if isinstance(spec, str):
            spec = load_part(spec)
        built[name] = spec() if isinstance(spec, type) else spec
    return Parts(**built)


_default_parts: Parts | None = None
_default_lock = threading.Lock()


def default_parts() -> Parts:
    """The project's own parts, built once per process (thread-safe; weights load on first use)."""
    global _default_parts
    if _default_parts is None:
        with _default_lock:
            if _default_parts is None:
                _default_parts = parts_from_paths()
    return _default_parts


def crop_with_margin(image, box, margin: float = CROP_MARGIN):
    """Crop a normalised (x1, y1, x2, y2) box, widened by ``margin`` × its size, clipped to the image."""
    w, h = image.size
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    left = int(np.floor(max(0.0, x1 - mx) * w))
    top = int(np.floor(max(0.0, y1 - my) * h))
    right = int(np.ceil(min(1.0, x2 + mx) * w))
    bottom = int(np.ceil(min(1.0, y2 + my) * h))
    right, bottom = max(right, left + 1), max(bottom, top + 1)
    return image.crop((left, top, right, bottom))


def _accepts_keypoints(method) -> bool:
    """Whether a (possibly swapped-in) gender part's ``predict`` takes ``keypoints=``."""
    try:
        import inspect

        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False
    return "keypoints" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 2)


def analyse(
    image,
    *,
    gender: str | None = None,
    parts: Parts | None = None,
    detect: bool | None = None,
    min_confidence: float | dict = MIN_CONFIDENCE,
    max_articles: int = 20,
    pose=None,
    image_vector=None,
) -> Analysis:
    """Analyse one image (bytes, path, file object or PIL image).

    ``gender``: the product's gender when known (it wins over the prediction); ``detect``: None =
    detect articles only in full shots, True/False = always/never; ``min_confidence`` (one number, or
    {category: floor}) and ``max_articles`` (the most confident are kept) bound the detections, and the
    category head (``parts.category_head``) must agree with those of the categories in ``ml.detect.HEAD_CHECKS``
    in a full shot; ``pose``: the pose gate's
    result for this image and ``image_vector`` its whole-image embedding, when the caller already has them
    (``analyse_batch``). Raises ``ImageError`` for an unusable image.
    """
    parts = parts or default_parts()
    timings: dict[str, float] = {}
    total_start = time.perf_counter()

    start = time.perf_counter()
    picture = load_image(image)
    timings["decode"] = _ms(start)

    start = time.perf_counter()
    if pose is None:
        pose = parts.pose.check(picture)
    timings["pose"] = _ms(start)
    versions = {"pose": str(parts.pose.version)}

    start = time.perf_counter()
    given = gender.strip() if isinstance(gender, str) else gender
    if given:
        gender_value, gender_confidence, gender_source = given, 1.0, "product"
    else:
        if pose.is_full_shot and _accepts_keypoints(parts.gender.predict):
            # a full-body photo: the gender model looks at the person's head-to-hips crop
            gender_value, gender_confidence = parts.gender.predict(picture, keypoints=pose.keypoints)
        else:
            gender_value, gender_confidence = parts.gender.predict(picture)
        gender_value, gender_confidence, gender_source = str(gender_value), float(gender_confidence), "predicted"
        versions["gender"] = str(parts.gender.version)
    timings["gender"] = _ms(start)

    start = time.perf_counter()
    run_detector = pose.is_full_shot if detect is None else bool(detect)
    detections = []
    if run_detector:
        floors = min_confidence if isinstance(min_confidence, dict) else {}
        default = MIN_CONFIDENCE if floors else float(min_confidence)  # the floor of a category not in ``floors``
        lowest = min(floors.values()) if floors else default
        detections = [d for d in parts.detector.detect(picture, min_confidence=lowest)
                      if d.confidence >= floors.get(d.category, default)]
        detections.sort(key=lambda d: -d.confidence)
        detections = detections[:max_articles]
        versions["detector"] = str(parts.detector.version)
    timings["detect"] = _ms(start)

    start = time.perf_counter()
    crops = [crop_with_margin(picture, d.box) for d in detections]
    if image_vector is None:
        vectors = np.asarray(parts.embedder.embed([picture] + crops), dtype=np.float32)
    else:
        vectors = np.asarray(image_vector, dtype=np.float32).reshape(1, -1)
        if crops:
            vectors = np.concatenate([vectors, np.asarray(parts.embedder.embed(crops), dtype=np.float32)])
    versions["embedder"] = str(parts.embedder.version)
    kinds = read_kinds(parts, vectors, versions)
    articles = [
        Article(
            category=str(d.category),
            confidence=float(d.confidence),
            box=tuple(float(v) for v in d.box),
            embedding=vectors[i + 1].copy(),
            kind=None if kinds is None else kinds[i + 1].copy(),
        )
        for i, d in enumerate(detections)
    ]
    timings["embed"] = _ms(start)
    if articles and pose.is_full_shot:  # a close-up is one garment: no layered outfit to be mistaken for it
        start = time.perf_counter()
        articles = check_articles(parts, articles, versions)
        timings["check"] = _ms(start)

    start = time.perf_counter()
    colours = read_colours(parts, picture, [a.box for a in articles], versions, person=_person_seen(pose))
    if colours[1:]:
        articles = [dataclasses.replace(article, colour=colour) for article, colour in zip(articles, colours[1:])]
    timings["colour"] = _ms(start)
    timings["total"] = _ms(total_start)

    return Analysis(
        width=picture.width,
        height=picture.height,
        is_full_shot=bool(pose.is_full_shot),
        pose_score=float(pose.score),
        keypoints=[tuple(float(v) for v in kp) for kp in pose.keypoints],
        gender=gender_value,
        gender_confidence=gender_confidence,
        gender_source=gender_source,
        articles=articles,
        image_embedding=vectors[0].copy(),
        timings=timings,
        model_versions=versions,
        image_colour=colours[0],
        image_kind=_first(kinds),
    )


def check_articles(parts: Parts, articles: list, versions: dict) -> list:
    """The articles without those of a category in ``ml.detect.HEAD_CHECKS`` whose own vector the category head
    gives less than that category's probability there (a "dress" box over a coat and trousers). Unchanged when
    there is no head or it belongs to another embedder."""
    from ml.detect import HEAD_CHECKS

    head = parts.head("category_head")
    if head is None:
        return articles
    versions["category_head"] = str(head.version)
    checked = [i for i, a in enumerate(articles) if a.category in HEAD_CHECKS]
    if not checked:
        return articles
    categories = list(head.categories)
    probabilities = head.probabilities(np.stack([articles[i].embedding for i in checked]))
    dropped = {i for i, p in zip(checked, probabilities)
               if articles[i].category in categories
               and p[categories.index(articles[i].category)] < HEAD_CHECKS[articles[i].category]}
    return [a for i, a in enumerate(articles) if i not in dropped]


def _first(rows):
    return None if rows is None else rows[0].copy()


def read_kinds(parts: Parts, vectors, versions: dict):
    """Kind descriptors of ``vectors`` (rows of this embedder), or None without a kind head for it."""
    head = parts.head("kind_head")
    if head is None:
        return None
    versions["kind_head"] = str(head.version)
    return np.asarray(head.descriptors(vectors), dtype=np.float32)


def read_colours(parts: Parts, picture, boxes, versions: dict | None = None, *, person: bool = True) -> list:
    """[colour of the whole image, colour of each box]; all None when ``parts`` has no colour reader.

    ``person``: whether the pose gate saw a person; when it did not (a product photographed alone), the
    person segmentation is skipped and the garment is told from the background by colour alone."""
    if parts.colour is None:
        return [None] * (1 + len(boxes))
    if versions is not None:
        versions["colour"] = str(parts.colour.version)
    return list(parts.colour.read(picture, [None, *boxes], find_person=person))


def _person_seen(pose) -> bool:
    """Whether the pose gate saw a person (a replacement gate's result may not say: then its keypoints tell)."""
    return bool(getattr(pose, "person_seen", False) or pose.keypoints)


def analyse_batch(
    images,
    *,
    genders=None,
    parts: Parts | None = None,
    min_confidence: float | dict = MIN_CONFIDENCE,
    max_articles: int = 20,
) -> list:
    """Analyse many images (a catalogue import, a re-index) faster than one ``analyse`` each.

    Every image is embedded whole, in one embedder batch. When ``parts.shot_test`` fits the embedder
    (``ml.shot_test``), an image its vector rules out as a full shot skips the pose gate; every other image
    passes the gate. Full shots, and images whose gender is not given (it must be predicted), go through
    ``analyse`` (with the vector already computed); the others — catalogue photos of one article — only need
    their whole-image embedding and colour. ``genders``: one per image (None = predict). Returns, in the
    order given, an ``Analysis`` or the exception that image raised (``ImageError`` for an unusable image;
    one failing image never fails the others).
    """
    parts = parts or default_parts()
    images = list(images)
    genders = list(genders) if genders is not None else [None] * len(images)
    if len(genders) != len(images):
        raise ValueError(f"{len(images)} images but {len(genders)} genders")
    results: list = [None] * len(images)
    decoded = []  # (index, picture, gender, timings)
    for index, (image, gender) in enumerate(zip(images, genders)):
        start = time.perf_counter()
        try:
            picture = load_image(image)
        except Exception as exc:  # noqa: BLE001 — returned to the caller, per image
            results[index] = exc
            continue
        gender = gender.strip() if isinstance(gender, str) else gender
        decoded.append((index, picture, gender, {"decode": _ms(start)}))
    if not decoded:
        return results
    start = time.perf_counter()
    try:
        vectors = np.asarray(parts.embedder.embed([item[1] for item in decoded]), dtype=np.float32)
    except Exception as exc:  # noqa: BLE001
        for index, *_ in decoded:
            results[index] = exc
        return results
    embed_share = round((time.perf_counter() - start) * 1000.0 / len(decoded), 2)
    screens, screen_share = _screen(parts, vectors)
    for (index, picture, gender, timings), vector, screen in zip(decoded, vectors, screens):
        try:
            versions = {"pose": str(parts.pose.version), "embedder": str(parts.embedder.version)}
            if screen is None or screen.run_gate:
                start = time.perf_counter()
                pose = parts.pose.check(picture)
                timings["pose"] = _ms(start)
            else:  # no "pose" timing: the gate did not run
                pose = _GATE_SKIPPED_PERSON if screen.person else _GATE_SKIPPED
            if screen is not None:
                timings["shot_test"] = screen_share
                versions["shot_test"] = str(parts.shot_test.version)
            if pose.is_full_shot or not gender:
                result = analyse(picture, gender=gender, parts=parts, min_confidence=min_confidence,
                                 max_articles=max_articles, pose=pose, image_vector=vector)
                result.timings.pop("pose")
                result.timings.update(timings)
                result.timings["embed"] = round(result.timings["embed"] + embed_share, 2)
                result.timings["total"] = round(sum(v for k, v in result.timings.items() if k != "total"), 2)
                result.model_versions.update(versions)
                results[index] = result
                continue
            timings.update({"gender": 0.0, "detect": 0.0, "embed": embed_share})
            start = time.perf_counter()
            colour = read_colours(parts, picture, [], versions, person=_person_seen(pose))[0]
            timings["colour"] = _ms(start)
            timings["total"] = round(sum(timings.values()), 2)
            results[index] = Analysis(
                width=picture.width, height=picture.height, is_full_shot=False, pose_score=float(pose.score),
                keypoints=[], gender=gender, gender_confidence=1.0, gender_source="product", articles=[],
                image_embedding=vector.copy(), timings=timings, model_versions=versions, image_colour=colour,
                image_kind=_first(read_kinds(parts, vector.reshape(1, -1), versions)),
            )
        except Exception as exc:  # noqa: BLE001 — returned to the caller, per image
            results[index] = exc
    return results


def _screen(parts: Parts, vectors):
    """The shot test's answer per vector (None = no test: every image runs the gate) and its ms per image."""
    test = getattr(parts, "shot_test", None)
    if test is None or not test.available_for(getattr(parts.embedder, "version", None)):
        return [None] * len(vectors), 0.0
    start = time.perf_counter()
    screens = test.screen(vectors)
    return screens, round((time.perf_counter() - start) * 1000.0 / max(1, len(vectors)), 3)
