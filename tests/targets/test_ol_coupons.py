"""Open Loyalty coupon files: names that never collide, one code per line, read back exactly."""

from __future__ import annotations

import csv

import pytest

from loyalty_toolkit.targets.ol_coupons import coupon_file_name, read_coupon_file, render_codes


@pytest.mark.parametrize("external_id, name", [
    ("rw-welcome-drink", "coupons_rw-welcome-drink.csv"),
    ("Masteritem_0_stock", "coupons_Masteritem_0_stock.csv"),
])
def test_coupon_file_names_keep_safe_external_ids(external_id, name):
    assert coupon_file_name(external_id) == name


def test_coupon_file_names_never_collide_for_unsafe_ids():
    a, b = coupon_file_name("Remise 10 %"), coupon_file_name("Remise 10 /")
    assert a != b
    for n in (a, b):
        assert n.startswith("coupons_Remise_10") and n.endswith(".csv") and "/" not in n and " " not in n


def test_codes_are_one_per_line_without_header_and_quoted_only_when_needed(tmp_path):
    text = render_codes(["at-1", 'a,b', 'say "hi"'])
    assert text == 'at-1\n"a,b"\n"say ""hi"""\n'
    p = tmp_path / "c.csv"
    p.write_text(text, encoding="utf-8", newline="")
    assert read_coupon_file(p) == ["at-1", "a,b", 'say "hi"']
    assert list(csv.reader(text.splitlines()))[0] == ["at-1"]
