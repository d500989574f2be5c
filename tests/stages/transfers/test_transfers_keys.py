"""The array helpers of stages.transfers against the per-row definitions they replace."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_toolkit.stages.transfers.engine import NAMESPACE
from loyalty_toolkit.stages.transfers.keys import (
    file_order,
    format_utc,
    group_ids,
    join_sorted,
    text_rank,
    utc_text_and_rank,
    uuid5_strings,
)

NAT = np.iinfo(np.int64).min
# microseconds from before 1970 to past the year 9999 (where the text stops sorting like time)
MICROS = st.one_of(st.just(NAT), st.integers(-2 * 10**17, 3 * 10**17),
                   st.integers(1_700_000_000_000_000, 1_700_000_003_000_000))


def _plain_format(us: np.ndarray) -> np.ndarray:
    """format_utc as it was: one string per row."""
    out = np.full(len(us), "", dtype=object)
    real = us != NAT
    if real.any():
        text = np.datetime_as_string((us[real] // 1_000_000).view("datetime64[s]"), unit="s")
        out[real] = np.char.replace(text, "T", " ").astype(object)
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=20), st.sampled_from([NAMESPACE, uuid.NAMESPACE_DNS]),
       st.sampled_from(["", "deficit:"]), st.sampled_from(["", "|default", "|é"]), st.integers(1, 8))
def test_uuid5_strings_are_uuid5(names, namespace, prefix, suffix, chunk):
    got = uuid5_strings(namespace, np.asarray(names, dtype=object), prefix, suffix, chunk=chunk)
    assert got.dtype == object
    assert got.tolist() == [str(uuid.uuid5(namespace, prefix + n + suffix)) for n in names]


@settings(max_examples=200, deadline=None)
@given(st.lists(MICROS, max_size=30), st.integers(1, 5))
def test_utc_text_and_rank_match_the_text_and_its_order(values, chunk):
    us = np.asarray(values, dtype=np.int64)
    text, rank = utc_text_and_rank(us, chunk=chunk)
    assert text.tolist() == _plain_format(us).tolist() == format_utc(us).tolist()
    for i in range(len(us)):
        for j in range(len(us)):
            assert (rank[i] < rank[j]) == (text[i] < text[j]) and (rank[i] == rank[j]) == (text[i] == text[j])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=4), max_size=30))
def test_text_rank_is_python_order(values):
    rank = text_rank(np.asarray(values, dtype=object))
    dense = {v: i for i, v in enumerate(sorted(set(values)))}
    assert rank.tolist() == [dense[v] for v in values]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.sampled_from(["b", "a", "B", "10", "9", ""]),
                          st.sampled_from(["x", "y", "é"])), max_size=40))
def test_file_order_is_a_stable_sort_values(rows):
    frame = pd.DataFrame(rows, columns=["k1", "k2", "t1", "t2"]).astype({"t1": object, "t2": object})
    expected = frame.sort_values(["k1", "k2", "t1", "t2"], kind="stable").index.to_numpy()
    got = file_order([frame["k1"].to_numpy(np.int64), frame["k2"].to_numpy(np.int64)],
                     [frame["t1"].to_numpy(object), frame["t2"].to_numpy(object)])
    assert got.tolist() == expected.tolist()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from([NAT, 5, 7]), st.sampled_from([NAT, 1])), max_size=40))
def test_group_ids_number_like_factorize(rows):
    a, b, c = (np.asarray([r[i] for r in rows], dtype=np.int64) for i in range(3))
    codes, n = group_ids(a, b, c)
    if rows:
        expected = pd.factorize(pd.MultiIndex.from_arrays([a, b, c]))[0]
        assert codes.tolist() == expected.tolist() and n == int(expected.max()) + 1
    else:
        assert codes.tolist() == [] and n == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.text("ab,9é", min_size=1, max_size=3)), max_size=30))
def test_join_sorted_per_group(rows):
    groups = sorted({g for g, _ in rows})
    renumber = {g: i for i, g in enumerate(groups)}
    group = np.asarray([renumber[g] for g, _ in rows], dtype=np.int64)
    text = np.asarray([t for _, t in rows], dtype=object)
    got = join_sorted(group, text, len(groups))
    assert got.tolist() == [",".join(sorted(t for g, t in rows if g == k)) for k in groups]
