import pandas as pd

from loyalty_toolkit import charts


def test_bar_returns_a_png_image():
    img = charts.bar(pd.DataFrame({"k": ["a", "b"], "n": [3, 1]}), "k", "n", title="t")
    assert img.data[:8] == b"\x89PNG\r\n\x1a\n"


def test_empty_frame_still_draws():
    img = charts.bar(pd.DataFrame({"k": [], "n": []}), "k", "n", title="t", horizontal=False)
    assert img.data[:4] == b"\x89PNG"
