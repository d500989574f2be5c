from decimal import Decimal

import pandas as pd

from loyalty_toolkit import charts


def test_bar_returns_a_png_image():
    img = charts.bar(pd.DataFrame({"k": ["a", "b"], "n": [3, 1]}), "k", "n", title="t")
    assert img.data[:8] == b"\x89PNG\r\n\x1a\n"


def test_empty_frame_still_draws():
    img = charts.bar(pd.DataFrame({"k": [], "n": []}), "k", "n", title="t", horizontal=False)
    assert img.data[:4] == b"\x89PNG"


def test_waterfall_and_expiry_draw_pngs():
    steps = pd.DataFrame({"label": ["opening", "accrued", "redeemed", "closing"],
                          "value": [Decimal("302784"), Decimal("290245.2"), Decimal("-87778.7"), Decimal("505250.5")],
                          "kind": ["total", "step", "step", "total"]})
    assert charts.waterfall(steps, title="t").data[:4] == b"\x89PNG"
    assert charts.waterfall(steps.iloc[:0], title="t").data[:4] == b"\x89PNG"
    calendar = pd.DataFrame({"month": ["2026-07", "2027-07", "never"], "points": [Decimal(5), Decimal(300), Decimal(2)],
                             "opening_points": [Decimal(0), Decimal(290), Decimal(0)]})
    assert charts.expiry(calendar, title="t").data[:4] == b"\x89PNG"


def test_waterfall_labels_read_with_separators_and_exact_digits():
    assert charts._label(Decimal("-57838.2")) == "-57,838.2" and charts._label(Decimal("447412.30")) == "447,412.30"
