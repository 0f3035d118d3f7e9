"""Helpers of the browser tests (fixtures live in conftest.py)."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
# The weightless test pipeline parts live with the robustness tests.
if str(ROOT / "tests" / "robustness") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests" / "robustness"))


def shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

