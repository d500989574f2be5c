"""Value normalisation: matching cases as data tables, fast paths checked against the slow ones."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pandas as pd
import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_toolkit.normalize import (
    email_problem,
    normalize_email,
    normalize_emails,
    normalize_gender,
    normalize_genders,
    normalize_name,
    normalize_names,
    normalize_phone,
    normalize_phones,
    parse_date,
    parse_dates,
    parse_decimal,
    parse_local_datetime,
    parse_local_datetimes,
    phone_problem,
    to_utc,
)

# ------------------------------------------------------------------ email

@pytest.mark.parametrize(("a", "b"), [
    ("Jean.Dupont@Example.com", "jean.dupont@example.COM"),
    ("  ANNE@x.fr ", "anne@X.FR"),
    ("Straße@x.de", "STRASSE@x.de"),  # casefold, not lower
])
def test_emails_differing_in_case_share_a_key(a, b):
    assert normalize_email(a).key == normalize_email(b).key


@pytest.mark.parametrize(("a", "b"), [
    ("jean.dupont@gmail.com", "jeandupont@gmail.com"),  # no dot stripping
    ("ann+promo@x.fr", "ann@x.fr"),                     # no +tag stripping
])
def test_email_variants_are_not_merged(a, b):
    assert normalize_email(a).key != normalize_email(b).key


def test_email_keeps_local_case_and_lowercases_domain():
    n = normalize_email("  Jean.Dupont@Example.COM ")
    assert (n.original, n.normalized, n.key, n.valid) == (
        "  Jean.Dupont@Example.COM ", "Jean.Dupont@example.com", "jean.dupont@example.com", True)


@pytest.mark.parametrize("value", ["a@b.fr", "first.last+tag@sub.example.co.uk", "o'neil@x.ie", "élodie@café.fr",
                                   "x@xn--caf-dma.fr", "1@2.fr.nu"])
def test_valid_emails(value):
    assert normalize_email(value).valid and email_problem(value) is None


@pytest.mark.parametrize(("value", "problem"), [
    ("no-at.example.com", "no @"),
    ("a@b@c.fr", "more than one @"),
    ("@x.fr", "empty local part"),
    ("bad@", "empty domain"),
    ("an n@x.fr", "contains spaces"),
    ("ann@localhost", "domain has no dot"),
    (".ann@x.fr", "invalid local part"),
    ("a..b@x.fr", "invalid local part"),
    ("ann@-x.fr", "invalid domain"),
    ("ann@x_y.fr", "invalid domain"),
    ("ann@x.f", "invalid domain"),
])
def test_invalid_emails_say_why(value, problem):
    assert not normalize_email(value).valid
    assert email_problem(value) == problem


def test_emails_vectorised_matches_scalar():
    values = ["A@B.fr", "", None, "bad", "A@B.fr", " x@Y.com "]
    out = normalize_emails(pd.Series(values, dtype=object))
    assert list(out.columns) == ["email", "email_key", "email_valid"]
    for v, (email, key, valid) in zip(values, out.itertuples(index=False)):
        n = normalize_email(v)
        assert (email, key, bool(valid)) == (n.normalized, n.key, n.valid)


# ------------------------------------------------------------------ phone

@pytest.mark.parametrize(("raw", "region", "e164"), [
    ("06 12 34 56 78", "FR", "+33612345678"),
    ("+33612345678", "FR", "+33612345678"),
    ("0033 6 12 34 56 78", "FR", "+33612345678"),
    ("06.12.34.56.78", "FR", "+33612345678"),
    ("06-12-34-56-78", "FR", "+33612345678"),
    ("+33 (0)6 12 34 56 78", "FR", "+33612345678"),
    ("+33612345678", "VN", "+33612345678"),      # international format ignores the region
    ("0912 345 678", "VN", "+84912345678"),
    ("+1 212-555-1234", "FR", "+12125551234"),
    ("(212) 555-1234", "US", "+12125551234"),
    ("+39 06 1234 5678", "FR", "+390612345678"),  # Italian leading zero is part of the number
])
def test_phones_normalise_to_e164(raw, region, e164):
    n = normalize_phone(raw, region)
    assert (n.e164, n.valid) == (e164, True)
    assert phone_problem(raw, region) is None


@pytest.mark.parametrize(("raw", "problem"), [
    ("12", "not a possible number"),
    ("06 12 34", "not a possible number"),
    ("06 12 34 56 78 ext 12", "contains letters"),
    ("1-800-FLOWERS", "contains letters"),
    ("+999 1234 5678", "cannot be read as a phone number"),
])
def test_impossible_phones_are_invalid(raw, problem):
    n = normalize_phone(raw, "FR")
    assert (n.e164, n.valid) == ("", False)
    assert phone_problem(raw, "FR").startswith(problem)


def _reference(text: str, region: str) -> tuple[str, bool]:
    """The slow path spelled out with phonenumbers only."""
    if any(c.isalpha() for c in text) or not text.strip():
        return "", False
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return "", False
    if number.extension or not phonenumbers.is_possible_number(number):
        return "", False
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), True


def test_phone_fast_paths_agree_with_phonenumbers_parse():
    """Random numbers in the shapes the fast paths take, across regions with odd national rules."""
    rnd = random.Random(20240601)
    regions = ["FR", "US", "CA", "GB", "DE", "VN", "IT", "BR", "AR", "MX", "RU", "HU", "IN", "AU", "CH", "SG", "ID"]
    codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    mismatches = []
    for _ in range(30_000):
        region = rnd.choice(regions)
        own = str(phonenumbers.country_code_for_region(region))
        digits = "".join(rnd.choice("0123456789") for _ in range(rnd.randint(1, 15)))
        text = rnd.choice([f"+{rnd.choice(codes)}{digits}", f"+{own}{digits}", f"0{digits}", f"{own}{digits}",
                           f"00{rnd.choice(codes)}{digits}", digits, f"8{digits}", f"1{digits}"])
        if rnd.random() < 0.3:
            text = " ".join(text[i:i + 2] for i in range(0, len(text), 2))
        got = normalize_phone(text, region)
        if (got.e164, got.valid) != _reference(text, region):
            mismatches.append((text, region, got, _reference(text, region)))
    assert mismatches == []


def test_phones_vectorised_matches_scalar():
    values = ["06 12 34 56 78", "", None, "12", "06 12 34 56 78", "+84912345678"]
    out = normalize_phones(pd.Series(values, dtype=object), "FR")
    assert out["phone"].tolist() == ["+33612345678", "", "", "", "+33612345678", "+84912345678"]
    assert out["phone_valid"].tolist() == [True, False, False, False, True, True]


# ------------------------------------------------------------------ decimals

@pytest.mark.parametrize(("text", "value"), [
    ("12", "12"), ("-75", "-75"), ("+3", "3"), ("12.5", "12.5"), (" 0.1 ", "0.1"), (".5", "0.5"),
    ("12,5", "12.5"), ("0,500", "0.500"), ("1234,567", "1234.567"),
    ("1,500,000", "1500000"), ("1.500.000", "1500000"), ("1 500 000", "1500000"), ("1\u00a0500\u202f000", "1500000"),
    ("1.500,25", "1500.25"), ("1,500.25", "1500.25"), ("1 500,25", "1500.25"),
    ("1.500", "1.500"),  # a single dot is a decimal point
    ("268.28000000000003", "268.28000000000003"),  # kept exactly: rounding is the caller's, once
])
def test_parse_decimal_accepts(text, value):
    assert parse_decimal(text) == Decimal(value)
    assert isinstance(parse_decimal(text), Decimal)


@pytest.mark.parametrize("text", ["", " ", "1e3", "1E-2", "NaN", "inf", "12.", "1,500", "1,5,0", "1.2.3,4", "12a",
                                  "1,500 000", "1.500.00", "--1", "1'500", "- 5", "0x10"])
def test_parse_decimal_rejects(text):
    with pytest.raises(ValueError):
        parse_decimal(text)


def test_decimal_sums_are_exact():
    assert parse_decimal("0.1") + parse_decimal("0.2") == Decimal("0.3")
    assert sum(parse_decimal("0.1") for _ in range(10)) == Decimal("1.0")


def test_ambiguous_comma_message_is_clear():
    with pytest.raises(ValueError, match=r"ambiguous number '1,500'"):
        parse_decimal("1,500")


# ------------------------------------------------------------------ dates and times

@pytest.mark.parametrize(("text", "fmt", "expected"), [
    ("1985-04-12", None, date(1985, 4, 12)),
    ("1985-04-12 00:00:00", None, date(1985, 4, 12)),
    ("25/04/1985", None, date(1985, 4, 25)),       # day first, when it cannot be month first
    ("25.04.1985", None, date(1985, 4, 25)),
    ("04/04/1985", None, date(1985, 4, 4)),
    ("03/04/1990", "%d/%m/%Y", date(1990, 4, 3)),  # ambiguous: date_format says how to read it
    ("04/12/1985", "%m/%d/%Y", date(1985, 4, 12)),
    ("1985-04-12", "%m/%d/%Y", date(1985, 4, 12)),  # ISO always accepted
    ("", None, None), ("  ", "%d%m%Y", None),
])
def test_parse_date(text, fmt, expected):
    assert parse_date(text, fmt) == expected


@pytest.mark.parametrize(("text", "fmt"), [("1985-02-30", None), ("31/02/1985", None), ("yesterday", None),
                                           ("12/04/1985", "%m-%d-%Y"), ("1985-04-12 10:00:00", None),
                                           ("03/04/1990", None)])  # ambiguous day/month (issue #17)
def test_parse_date_rejects(text, fmt):
    with pytest.raises(ValueError):
        parse_date(text, fmt)


def test_parse_dates_vectorised():
    out = parse_dates(pd.Series(["1985-04-12", "", "bad", "25/04/1985"]))
    assert out["date"].tolist() == ["1985-04-12", "", "", "1985-04-25"]
    assert out["date_valid"].tolist() == [True, True, False, True]


@pytest.mark.parametrize(("text", "tz", "utc"), [
    ("2024-01-15 10:00:00", "Europe/Paris", "2024-01-15T09:00:00+00:00"),
    ("2024-07-15T10:00:00", "Europe/Paris", "2024-07-15T08:00:00+00:00"),
    ("2024-07-15 10:00", "Europe/Paris", "2024-07-15T08:00:00+00:00"),
    ("2024-07-15", "Asia/Ho_Chi_Minh", "2024-07-14T17:00:00+00:00"),       # date only = local midnight
    ("2024-07-15 10:00:00.999", "UTC", "2024-07-15T10:00:00+00:00"),       # fraction truncated
    ("2024-07-15 10:00:00+02:00", "America/New_York", "2024-07-15T08:00:00+00:00"),  # explicit offset wins
    ("2024-07-15T10:00:00Z", "Europe/Paris", "2024-07-15T10:00:00+00:00"),
    ("15/07/2024 10:00", "Europe/Paris", "2024-07-15T08:00:00+00:00"),
    # DST: nonexistent spring-gap time uses the offset before the gap (fold=0) ...
    ("2024-03-31 02:30:00", "Europe/Paris", "2024-03-31T01:30:00+00:00"),
    # ... and an ambiguous autumn time is its first occurrence (summer time, fold=0)
    ("2024-10-27 02:30:00", "Europe/Paris", "2024-10-27T00:30:00+00:00"),
])
def test_parse_local_datetime(text, tz, utc):
    assert parse_local_datetime(text, tz) == (utc, text)


def test_parse_local_datetime_blank_and_bad():
    assert parse_local_datetime("  ", "UTC") == ("", "  ")
    for bad in ("2024-02-30 10:00:00", "10:00", "2024-07-15 25:00:00", "soon"):
        with pytest.raises(ValueError):
            parse_local_datetime(bad, "UTC")


@pytest.mark.parametrize("tz", ["Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Ho_Chi_Minh"])
def test_bulk_datetime_path_matches_scalar(tz):
    """pandas converts the common shape in bulk; around DST edges it must agree with zoneinfo's fold=0."""
    rnd = random.Random(7)
    starts = [datetime(2024, 3, 10), datetime(2024, 3, 31), datetime(2024, 4, 7), datetime(2024, 10, 6),
              datetime(2024, 10, 27), datetime(2024, 11, 3)]
    values = [(rnd.choice(starts) + timedelta(minutes=rnd.randrange(0, 24 * 60))).strftime("%Y-%m-%d %H:%M:%S")
              for _ in range(3000)]
    values += ["0001-01-01 00:30:00", "9999-12-31 23:30:00", "2024-02-30 10:00:00", "", "x", "2024-01-01T00:00:00"]
    out = parse_local_datetimes(pd.Series(values), tz)
    for text, utc, ok in zip(values, out["utc"], out["utc_valid"]):
        try:
            expected = (parse_local_datetime(text, tz)[0], True)
        except ValueError:
            expected = ("", False)
        assert (utc, bool(ok)) == expected, text


def test_to_utc_subtracts_minutes_to_add():
    assert to_utc(datetime(2024, 1, 1, 0, 30), 60) == datetime(2023, 12, 31, 23, 30, tzinfo=timezone.utc)
    assert to_utc(datetime(2024, 1, 1, 0, 30), -300) == datetime(2024, 1, 1, 5, 30, tzinfo=timezone.utc)
    with pytest.raises(ValueError):
        to_utc(datetime(2024, 1, 1, tzinfo=timezone.utc), 60)


# ------------------------------------------------------------------ names and gender

@pytest.mark.parametrize(("raw", "name"), [
    ("  Jean   Luc ", "Jean Luc"),
    ("E\u0301lodie", "Élodie"),          # NFC: decomposed accent composed
    ("NGUYỄN\tThị", "NGUYỄN Thị"),       # case and diacritics kept
    ("Ann\x00e", "Anne"),                # control characters dropped
    (None, ""),
])
def test_normalize_name(raw, name):
    assert normalize_name(raw) == name


def test_normalize_names_vectorised():
    assert normalize_names(pd.Series([" a  b ", None, "c"], dtype=object)).tolist() == ["a b", "", "c"]


@pytest.mark.parametrize(("raw", "gender"), [
    ("M", "male"), ("m", "male"), ("Male", "male"), ("HOMME", "male"), ("nam", "male"), ("H", "male"),
    ("F", "female"), ("female", "female"), ("Femme", "female"), ("nữ", "female"), ("Nữ", "female"),
    ("", "not_disclosed"), ("X", "not_disclosed"), (None, "not_disclosed"), ("other", "not_disclosed"),
])
def test_normalize_gender(raw, gender):
    assert normalize_gender(raw) == gender
    assert normalize_genders(pd.Series([raw], dtype=object)).tolist() == [gender]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="aAbB@.-_ +éX1", max_size=12), max_size=20))
def test_vectorised_email_always_matches_scalar(values):
    out = normalize_emails(pd.Series(values, dtype=object))
    expected = [(n.normalized, n.key, n.valid) for n in map(normalize_email, values)]
    assert [(e, k, bool(v)) for e, k, v in out.itertuples(index=False)] == expected


# ------------------------------------------------------------------ bulk paths (pyarrow) = scalar

_BULK_REGIONS = ["FR", "VN", "US", "GB", "DE", "IT", "BR", "AR", "MX", "RU", "KZ", "IN", "AU", "ZZ"]


def test_bulk_phones_match_scalar_on_random_numbers():
    """normalize_phones decides the well-formed shapes in bulk (_fast_phones): on random numbers
    with separators, IDD and national prefixes it gives what normalize_phone gives, per region."""
    rnd = random.Random(20261122)
    codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    values = []
    for _ in range(6_000):
        digits = "".join(rnd.choice("0123456789") for _ in range(rnd.randint(1, 16)))
        text = rnd.choice([f"+{rnd.choice(codes)}{digits}", f"00{rnd.choice(codes)}{digits}", f"0{digits}",
                           f"011{rnd.choice(codes)}{digits}", f"33{digits}", digits, f"+{digits}", f"000{digits}"])
        if rnd.random() < 0.4:
            sep = rnd.choice([" ", ".", "-", " - "])
            text = sep.join(text[i:i + 2] for i in range(0, len(text), 2))
        if rnd.random() < 0.1:
            text = rnd.choice(["(0)", " ", "x", "\u00a0"]) + text
        values.append(text)
    for region in _BULK_REGIONS:
        out = normalize_phones(pd.Series(values, dtype=object), region)
        got = list(zip(out["phone"].tolist(), out["phone_valid"].tolist()))
        want = [(n.e164, n.valid) for n in (normalize_phone(v, region) for v in values)]
        assert [(v, g, w) for v, g, w in zip(values, got, want) if g != w] == [], region


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet="0123456789+ .()-\u00a0٣x", max_size=18), max_size=25),
       st.sampled_from(_BULK_REGIONS))
def test_bulk_phones_always_match_scalar(values, region):
    out = normalize_phones(pd.Series(values, dtype=object), region)
    want = [(n.e164, n.valid) for n in (normalize_phone(v, region) for v in values)]
    assert list(zip(out["phone"].tolist(), out["phone_valid"].tolist())) == want


_EMAIL_PARTS = st.sampled_from(["ann", "Ann", "a.b", "a..b", ".a", "o'n", "x_y", '"q"', "A+tag", "é", "a b", ""])
_DOMAINS = st.sampled_from(["example.com", "EXAMPLE.Com", "ex_a.com", "xn--p1ai.xn--p1ai", "a-.com", "-a.com",
                            "a.c", "a.co1", "localhost", "sub.ex.fr", "ex.com.", "exämple.fr", "", "a@b.com"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(
    st.builds(lambda local, domain, pad: f"{pad}{local}@{domain}{pad}", _EMAIL_PARTS, _DOMAINS,
              st.sampled_from(["", " ", "\t", "\x1f", "\x7f"])),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7f), max_size=14),
    st.builds(lambda n, d: "a" * n + "@" + d, st.integers(60, 70), _DOMAINS)), max_size=20))
def test_bulk_emails_always_match_scalar(values):
    """normalize_emails decides printable ASCII in bulk (_fast_emails): the same as normalize_email."""
    out = normalize_emails(pd.Series(values, dtype=object))
    expected = [(n.normalized, n.key, n.valid) for n in map(normalize_email, values)]
    assert [(e, k, bool(v)) for e, k, v in out.itertuples(index=False)] == expected
