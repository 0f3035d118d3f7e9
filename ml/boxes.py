"""Box geometry shared by the detector and the recommender: boxes are ``(x1, y1, x2, y2)`` tuples.

Anything with a ``box`` attribute, or with ``x1 … y2`` attributes, can be suppressed.
"""


def box_of(item) -> tuple:
    box = getattr(item, "box", None)
    if box is not None:
        return tuple(float(v) for v in box)
    if hasattr(item, "x1"):
        return (float(item.x1), float(item.y1), float(item.x2), float(item.y2))
    return tuple(float(v) for v in item)


def iou(a, b) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    ax1, ay1, ax2, ay2 = box_of(a)
    bx1, by1, bx2, by2 = box_of(b)
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


def suppress_overlaps(items, threshold: float = 0.45) -> list:
    """Most confident first, without the items whose box overlaps a kept one with IoU ≥ ``threshold`` (NMS).

    ``items`` have a ``confidence`` and a box (see ``box_of``).
    """
    kept = []
    for item in sorted(items, key=lambda i: -float(i.confidence)):
        if all(iou(item, other) < threshold for other in kept):
            kept.append(item)
    return kept
