"""The months' first instants stage 05 puts lots into months with (``month_starts``) give every
instant the month ``month_names`` gives it, in zones with DST, with midnights that do not exist or
happen twice, and with offsets that are not whole hours."""

from __future__ import annotations

import bisect

import numpy as np
import pandas as pd
import pytest

from loyalty_toolkit.shared.liability import month_names, month_starts

ZONES = ["UTC", "Europe/Paris", "Asia/Ho_Chi_Minh", "America/Santiago", "America/Havana", "Asia/Beirut",
         "Asia/Kolkata", "Pacific/Chatham", "America/St_Johns", "Pacific/Kiritimati"]


def _iso(stamps: pd.DatetimeIndex) -> np.ndarray:
    """ISO UTC text as stage 03 writes it (fractions of a second only where there are some)."""
    whole = stamps.strftime("%Y-%m-%dT%H:%M:%S")
    frac = np.where(stamps.microsecond > 0, "." + pd.Series(stamps.microsecond).map("{:06d}".format), "")
    return np.asarray([w + f + "+00:00" for w, f in zip(whole, frac)], dtype=object)


@pytest.mark.parametrize("tz", ZONES)
def test_each_instant_falls_in_the_month_month_names_gives_it(tz):
    rng = np.random.default_rng(11)
    lo, hi = pd.Timestamp("2025-11-20", tz="UTC"), pd.Timestamp("2028-03-10", tz="UTC")
    random = pd.to_datetime(rng.integers(lo.value // 1000, hi.value // 1000, 3000), unit="us", utc=True)
    starts, names = month_starts(_iso(pd.DatetimeIndex([random.min()]))[0],
                                 _iso(pd.DatetimeIndex([random.max()]))[0], tz)
    assert names == sorted(names) and len(names) >= 27 and starts == sorted(starts)
    # every month's first instant, the microsecond before it and a second after it
    edges = pd.DatetimeIndex([pd.Timestamp(s) for s in starts[1:]])
    around = edges.append([edges - pd.Timedelta(microseconds=1), edges + pd.Timedelta(seconds=1)])
    instants = _iso(pd.DatetimeIndex(random).append(around))
    expected = month_names(instants, tz)
    got = [names[bisect.bisect_right(starts, v) - 1] for v in instants]
    assert got == expected.tolist()


def test_one_month_and_the_first_instant_of_a_month():
    assert month_starts("2026-03-31T22:00:00+00:00", "2026-03-31T22:00:00+00:00", "Europe/Paris") == (
        ["2026-03-31T22:00:00+00:00"], ["2026-04"])
    assert month_starts("2026-03-31T21:59:59.999999+00:00", "2026-04-01T00:00:00+00:00", "Europe/Paris") == (
        ["2026-02-28T23:00:00+00:00", "2026-03-31T22:00:00+00:00"], ["2026-03", "2026-04"])
