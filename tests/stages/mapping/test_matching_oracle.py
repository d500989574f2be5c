"""``holder_counts`` (one factorize, two bincounts) answers as the ``value_counts`` + ``map`` it
replaced, kept here as the oracle; the matching on the sample program is covered end to end by
the stage tests and the demo's byte-identical outputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loyalty_toolkit.stages.mapping.matching import _keys, holder_counts


def old_counts(mv: pd.Series, tv: pd.Series) -> tuple[pd.Series, pd.Series]:
    return (mv.map(mv[mv != ""].value_counts()).fillna(0).astype("int64"),
            mv.map(tv[tv != ""].value_counts()).fillna(0).astype("int64"))


@pytest.mark.parametrize("seed", range(5))
def test_holder_counts_answer_as_value_counts_and_map(seed):
    rng = np.random.default_rng(seed)
    pool = np.array(["", "a@x.fr", "b@x.fr", "+33612345678", "C1", "c1", " C1"] + [f"v{i}" for i in range(50)],
                    dtype=object)
    mv = pd.Series(rng.choice(pool, rng.integers(1, 300)), dtype="str")
    tv = pd.Series(rng.choice(pool, rng.integers(0, 300)), dtype="str")
    for got, want in zip(holder_counts(mv, tv), old_counts(mv, tv)):
        pd.testing.assert_series_equal(got, want, check_names=False)


def test_holder_counts_on_the_sample_programs_members(mapped_program):
    from loyalty_toolkit.stages.context import open_stage

    ctx = open_stage("mapping", str(mapped_program / "migration.yml"), str(mapped_program / "runs" / "t"))
    m = _keys(ctx.store.read_table("members"), "legacy_id")
    for col in ("card_number", "email_key", "phone"):
        for got, want in zip(holder_counts(m[col], m[col].iloc[::2]), old_counts(m[col], m[col].iloc[::2])):
            pd.testing.assert_series_equal(got, want, check_names=False)
            assert want.max() >= 1
