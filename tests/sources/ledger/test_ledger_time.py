"""ledger_time: which date texts carry their own UTC offset (they are instants, not local times)."""

from __future__ import annotations

import numpy as np
import pytest

from loyalty_toolkit.sources.ledger.times import _has_offset

CASES = [
    ("2026-01-05", False),
    ("2026-01-05 10:00:00", False),
    ("2026-01-05T10:00", False),
    ("2026-01-05 10:00:00.250", False),
    ("2026-01-05T10:00:00Z", True),
    ("2026-01-05T10:00:00z", True),
    ("2026-01-05 10:00+02:00", True),
    ("2026-01-05 10:00:00-05:00", True),
    ("2026-01-05 10:00:00.5-0500", True),
    ("2026-01-05 10:00 -05", True),
    ("2026-01-05-05", False),  # no time of day: not an offset
]


@pytest.mark.parametrize("text, expected", CASES)
def test_has_offset_one_value(text, expected):
    assert _has_offset(np.asarray([text], dtype=object)).tolist() == [expected]


def test_has_offset_finds_the_values_among_many_in_small_chunks():
    values = np.asarray([t for t, _ in CASES] * 3, dtype=object)
    expected = [e for _, e in CASES] * 3
    assert _has_offset(values, chunk=4).tolist() == expected
    plain = np.asarray([t for t, e in CASES if not e] * 50, dtype=object)
    assert not _has_offset(plain, chunk=7).any()
