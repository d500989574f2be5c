"""``categories_dtype`` builds with pandas' public constructor what the private fast path built,
for sorted and unsorted categories, and the package calls no private pandas API."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import loyalty_toolkit
from loyalty_toolkit.sources.csvfile import categories_dtype

CASES = {
    "unsorted ids": np.array(["G3", "G1", "", "G2"], dtype=object),
    "sorted instants": np.array(["", "2026-01-01T00:00:00Z", "2026-06-30T23:59:59Z"], dtype=object),
    "one value": np.array(["x"], dtype=object),
    "none": np.array([], dtype=object),
}


@pytest.mark.parametrize("values", CASES.values(), ids=CASES.keys())
def test_same_dtype_as_the_private_fast_path(values):
    dtype = categories_dtype(values)
    assert dtype == pd.CategoricalDtype(pd.Index(values, dtype=object))
    assert list(dtype.categories) == list(values) and dtype.ordered is False
    assert dtype.categories.dtype == object
    private = getattr(pd.CategoricalDtype, "_from_fastpath", None)  # the oracle, where pandas still has it
    if private is not None:
        assert dtype == private(pd.Index(values, dtype=object), False)


def test_codes_decode_to_the_same_values():
    values = CASES["unsorted ids"]
    codes = np.array([0, 3, 1, 2, 0], dtype=np.int32)
    cat = pd.Categorical.from_codes(codes, dtype=categories_dtype(values), validate=False)
    assert list(cat) == [values[c] for c in codes]


def test_repeated_categories_are_refused_not_merged():
    with pytest.raises(ValueError):
        categories_dtype(np.array(["a", "b", "a"], dtype=object))


def test_the_package_calls_no_private_pandas_api():
    private = re.compile(r"\b(?:pd|pandas|np|numpy)\.(?:\w+\.)*_[a-z]\w*")
    root = Path(loyalty_toolkit.__file__).parent
    hits = [f"{p.relative_to(root)}:{n}" for p in root.rglob("*.py")
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if private.search(line) or "_from_fastpath" in line]
    assert hits == []
