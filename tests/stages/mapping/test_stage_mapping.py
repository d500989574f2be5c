"""Stage 02 logic: matching migrated members to target IDs (invariant 6) and reference coverage."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_toolkit.config import MEMBER_COLUMNS, parse_config
from loyalty_toolkit.shared.member_rules import prepare_members
from loyalty_toolkit.sources.csvfile import read_table, to_frame
from loyalty_toolkit.sources.references import member_references
from loyalty_toolkit.sources.target_members import read_target_members, write_target_members_csv
from loyalty_toolkit.stages.mapping.matching import (
    ID_MAP_COLUMNS,
    ORPHAN_COLUMNS,
    PER_INPUT_COLUMNS,
    RESOLVED_COLUMNS,
    REVIEW_COLUMNS,
    coverage,
    legacy_member_keys,
    match_members,
)
from loyalty_toolkit.targets.ol_rehearsal import (
    ExistingIdentifiers,
    RehearsalImport,
    parse_members_xml,
    reconcile_import_result,
    result_json,
)
from loyalty_toolkit.targets.openloyalty import write_members_xml


def legacy(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """Raw legacy members (legacy_id, email, phone, card_number) as stage 01 reads them."""
    frame = pd.DataFrame(rows, columns=["legacy_id", "email", "phone", "card_number"], dtype="str")
    frame["first_name"], frame["last_name"] = "Anne", "Martin"
    frame["_line"] = range(2, len(frame) + 2)
    return frame


def accepted(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """Stage 01's accepted members for these legacy rows (so both sides are normalised for real)."""
    result = prepare_members(legacy(rows), source_file="members.csv", default_region="FR", timezone="UTC")
    return result.members


@pytest.fixture
def target(tmp_path: Path):
    """Write rows as the target's CSV export and read them back the way stage 02 does."""
    def _target(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
        frame = pd.DataFrame(rows, columns=["target_id", "email", "phone", "card_number"])
        path = write_target_members_csv(frame, tmp_path / f"export_{len(list(tmp_path.iterdir()))}.csv")
        return read_target_members(path, default_region="FR")
    return _target


# (id, migrated rows, target rows, expected id_map, expected review (reason, legacy, target, identifier), detail)
CASES = [
    ("email differing in case",
     [("G1", "Jean.Dupont@Example.com", "", "")],
     [("T1", "jean.dupont@example.com", "", "")],
     [("G1", "T1", "email")], [], None),
    ("family phone shared: not used, members match by card and email",
     [("G1", "a@x.fr", "06 12 34 56 78", "0001"), ("G2", "b@x.fr", "0612345678", "0002"),
      ("G3", "c@x.fr", "+33612345678", "")],
     [("T1", "a@x.fr", "+33612345678", "0001"), ("T2", "b@x.fr", "", "0002"), ("T3", "c@x.fr", "", "")],
     [("G1", "T1", "card_number"), ("G2", "T2", "card_number"), ("G3", "T3", "email")], [], None),
    ("card numbers keep their leading zeros",
     [("G1", "", "", "0001234"), ("G2", "", "", "1234")],
     [("T1", "", "", "0001234")],
     [("G1", "T1", "card_number")], [("not_found", "G2", "", "card_number")], "no target member has this card_number"),
    ("a target member with no legacy counterpart",
     [("G1", "a@x.fr", "", "")],
     [("T1", "a@x.fr", "", ""), ("T9", "z@x.fr", "", "")],
     [("G1", "T1", "email")], [("target_unmatched", "", "T9", "")], "no migrated member maps"),
    ("a member imported twice in the target is ambiguous",
     [("G1", "a@x.fr", "", "")],
     [("T1", "a@x.fr", "", ""), ("T2", "A@X.fr", "", "")],
     [], [("ambiguous", "G1", "T1,T2", "email"), ("target_unmatched", "", "T1", ""),
          ("target_unmatched", "", "T2", "")], "email shared by 2 target members"),
    ("card points to one member, email to another",
     [("G1", "a@x.fr", "", "0001")],
     [("T1", "z@x.fr", "", "0001"), ("T2", "a@x.fr", "", "")],
     [], [("conflicting", "G1", "T1,T2", "card_number,email"), ("target_unmatched", "", "T1", ""),
          ("target_unmatched", "", "T2", "")], "card_number -> T1; email -> T2"),
    ("a target member picked by two migrated members maps to neither",
     [("G1", "a@x.fr", "", "0001"), ("G2", "b@x.fr", "", "0002")],
     [("T1", "b@x.fr", "", "0001")],
     [], [("ambiguous", "G1", "T1", "card_number"), ("ambiguous", "G2", "T1", "email"),
          ("target_unmatched", "", "T1", "")], "target member T1 is picked by 2 migrated members"),
    ("shared family phone as the only identifier",
     [("G1", "", "0612345678", ""), ("G2", "", "06 12 34 56 78", "")],
     [("T1", "", "+33612345678", "")],
     [], [("ambiguous", "G1", "T1", "phone"), ("ambiguous", "G2", "T1", "phone"),
          ("target_unmatched", "", "T1", "")], "phone shared by 2 migrated members"),
    ("a value shared by migrated members but absent from the target is not found, not ambiguous",
     [("G1", "a@x.fr", "", "0001"), ("G2", "A@x.fr", "", "0002")],
     [("T1", "", "", "0001")],
     [("G1", "T1", "card_number")], [("not_found", "G2", "", "card_number,email")], None),
    ("an empty target export: nobody is found",
     [("G1", "a@x.fr", "", "0001")], [],
     [], [("not_found", "G1", "", "card_number,email")], "no target member has this card_number / email"),
    ("agreeing identifiers: the first in priority order names the match",
     [("G1", "a@x.fr", "0612345678", "0001")],
     [("T1", "a@x.fr", "+33612345678", "0001")],
     [("G1", "T1", "card_number")], [], None),
]


@pytest.mark.parametrize("migrated_rows, target_rows, id_map, review, detail",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_match_members(target, migrated_rows, target_rows, id_map, review, detail) -> None:
    result = match_members(accepted(migrated_rows), target(target_rows))
    assert list(result.id_map.columns) == list(ID_MAP_COLUMNS)
    assert list(result.review.columns) == list(REVIEW_COLUMNS)
    assert [tuple(r) for r in result.id_map.itertuples(index=False)] == id_map
    got = result.review[["reason", "legacy_id", "target_id", "identifier"]]
    assert [tuple(r) for r in got.itertuples(index=False)] == review
    if detail:
        assert detail in " | ".join(result.review["detail"])


@pytest.mark.parametrize("migrated_phone", ["06 12 34 56 78", "+33612345678", "0033 6 12 34 56 78"])
@pytest.mark.parametrize("target_phone", ["06 12 34 56 78", "+33612345678", "0033 6 12 34 56 78"])
def test_phone_spellings_match(target, migrated_phone: str, target_phone: str) -> None:
    result = match_members(accepted([("G1", "", migrated_phone, "")]), target([("T1", "", target_phone, "")]))
    assert result.id_map.values.tolist() == [["G1", "T1", "phone"]]


def test_priority_decides_matched_by_and_funnel_adds_up(target) -> None:
    migrated = accepted([("G1", "a@x.fr", "0612345678", "0001"), ("G2", "b@x.fr", "", ""),
                         ("G3", "", "0698765432", ""), ("G4", "d@x.fr", "", "")])
    tgt = target([("T1", "a@x.fr", "+33612345678", "0001"), ("T2", "b@x.fr", "", ""), ("T3", "", "0698765432", "")])
    result = match_members(migrated, tgt, priority=("email", "phone", "card_number"))
    assert result.id_map["matched_by"].tolist() == ["email", "email", "phone"]
    funnel = result.funnel()
    assert funnel == {"accepted": 4, "matched_by_card": 0, "matched_by_email": 2, "matched_by_phone": 1,
                      "unmatched": 1, "ambiguous": 0, "conflicting": 0}
    assert funnel["accepted"] == sum(v for k, v in funnel.items() if k != "accepted")
    assert result.counts()["target_unmatched"] == 0
    with pytest.raises(ValueError, match="priority"):
        match_members(migrated, tgt, priority=("email", "email"))
    with pytest.raises(ValueError, match="legacy_id must be present and unique"):
        match_members(pd.concat([migrated, migrated.head(1)]), tgt)


# -------------------------------------------------------------- property: invariant 6 for any data

VALUES = st.sampled_from(["", "", "v1", "v2", "v3"])
ROW = st.tuples(VALUES, VALUES, VALUES)


@settings(max_examples=100, deadline=None)
@given(st.lists(ROW, max_size=8), st.lists(ROW, max_size=8))
def test_only_identifiers_unique_on_both_sides_ever_map(m_rows, t_rows) -> None:
    def frame(rows, id_col, prefix):
        f = pd.DataFrame(rows, columns=["card_number", "email_key", "phone"], dtype="str")
        f.insert(0, id_col, [f"{prefix}{i}" for i in range(len(rows))])
        return f.astype("str")
    m, t = frame(m_rows, "legacy_id", "G"), frame(t_rows, "target_id", "T")
    result = match_members(m, t)
    members = result.review[result.review["reason"] != "target_unmatched"]
    assert sorted(list(result.id_map["legacy_id"]) + list(members["legacy_id"])) == sorted(m["legacy_id"])
    assert result.id_map["target_id"].is_unique
    funnel = result.funnel()
    assert funnel["accepted"] == sum(v for k, v in funnel.items() if k != "accepted")
    unmatched_targets = set(t["target_id"]) - set(result.id_map["target_id"])
    assert set(result.reviewed("target_unmatched")["target_id"]) == unmatched_targets
    for legacy_id, target_id, _ in result.id_map.itertuples(index=False):
        mrow, trow = m.set_index("legacy_id").loc[legacy_id], t.set_index("target_id").loc[target_id]
        usable = []
        for col in ("card_number", "email_key", "phone"):
            v = mrow[col]
            if v and (m[col] == v).sum() == 1 and (t[col] == v).sum() == 1:
                usable.append(trow[col] == v)
        assert usable and all(usable)  # picked by a unique identifier, and no unique one disagrees


# -------------------------------------------------------------- coverage

COVERAGE_MEMBERS = [
    ("G1", "jean@x.fr", "0612345678", "0001"),
    ("G2", "lan@x.vn", "+84912345678", "0002"),
    ("G3", "c@x.fr", "", "0003"),          # accepted, but not in the target
    ("G4", "d@x.fr", "", "0005"),          # G4 and G5 share a card
    ("G5", "e@x.fr", "", "0005"),
]
REJECTED = ("R1", "not-an-email", "", "0099")
# (input, file, line, ref_kind, ref_value, ref_value2, ref_raw) -> expected (reason or target, legacy_id)
REFERENCES = [
    (("ledger", "l.csv", 2, "legacy_id", "G1", "", ""), ("T1", "G1")),
    (("ledger", "l.csv", 3, "legacy_id", "GX", "", ""), ("unknown_member", "")),
    (("ledger", "l.csv", 4, "legacy_id", "G3", "", ""), ("member_rejected_or_unmapped", "G3")),
    (("ledger", "l.csv", 5, "legacy_id", "R1", "", ""), ("member_rejected_or_unmapped", "R1")),
    (("ledger", "l.csv", 6, "legacy_id", "", "", ""), ("missing_reference", "")),
    (("opening_balances", "o.csv", 2, "phone_email", "+33612345678", "jean@x.fr", "06 12 34 56 78"), ("T1", "G1")),
    # the phone matches G1 but the email does not: both must be right (seed 003)
    (("opening_balances", "o.csv", 3, "phone_email", "+33612345678", "other@x.fr", "0612345678"),
     ("unknown_member", "")),
    # a Vietnamese national number read as French; re-read in the region of the member the email names
    (("opening_balances", "o.csv", 4, "phone_email", "+33912345678", "lan@x.vn", "0912345678"), ("T2", "G2")),
    # written in international form: no second reading, the phone is wrong
    (("opening_balances", "o.csv", 5, "phone_email", "+33912345678", "lan@x.vn", "+33 9 12 34 56 78"),
     ("unknown_member", "")),
    (("opening_balances", "o.csv", 6, "phone_email", "", "jean@x.fr", ""), ("missing_reference", "")),
    (("rewards/b.csv", "b.csv", 2, "card", "0001", "", ""), ("T1", "G1")),
    (("rewards/b.csv", "b.csv", 3, "card", "0099", "", ""), ("member_rejected_or_unmapped", "R1")),
    (("rewards/b.csv", "b.csv", 4, "card", "0005", "", ""), ("ambiguous_member", "")),
    (("rewards/b.csv", "b.csv", 5, "card", "1", "", ""), ("unknown_member", "")),
]


@pytest.fixture
def mapped(target):
    migrated = accepted(COVERAGE_MEMBERS)
    tgt = target([("T1", "jean@x.fr", "", ""), ("T2", "lan@x.vn", "", ""), ("T4", "d@x.fr", "", ""),
                  ("T5", "e@x.fr", "", "")])
    return migrated, match_members(migrated, tgt)


@pytest.mark.parametrize("categorical", [False, True])
def test_coverage_resolves_or_explains_every_reference(mapped, categorical: bool) -> None:
    migrated, result = mapped
    refs = pd.DataFrame([r for r, _ in REFERENCES],
                        columns=["input", "file", "line", "ref_kind", "ref_value", "ref_value2", "ref_raw"])
    if categorical:  # what member_references produces
        refs = refs.astype({c: "category" for c in refs.columns if c != "line"})
    every = legacy_member_keys(legacy(COVERAGE_MEMBERS + [REJECTED]), "FR")
    resolved, orphans, per_input = coverage(refs, result.id_map, migrated, legacy_members=every)
    assert list(resolved.columns) == list(RESOLVED_COLUMNS)
    assert list(orphans.columns) == list(ORPHAN_COLUMNS)
    assert list(per_input.columns) == list(PER_INPUT_COLUMNS)
    got = {(r.file, r.line): (r.target_id, r.legacy_id) for r in resolved.itertuples()}
    got.update({(r.file, r.line): (r.reason, r.legacy_id) for r in orphans.itertuples()})
    assert got == {(r[1], r[2]): expected for r, expected in REFERENCES}
    assert len(resolved) + len(orphans) == len(refs)
    assert per_input.values.tolist() == [["ledger", 5, 1, 4, 0.2], ["opening_balances", 5, 2, 3, 0.4],
                                         ["rewards/b.csv", 4, 1, 3, 0.25]]


def test_without_legacy_members_a_rejected_member_is_unknown(mapped) -> None:
    migrated, result = mapped
    refs = pd.DataFrame([("ledger", "l.csv", 2, "legacy_id", "R1", "", "")],
                        columns=["input", "file", "line", "ref_kind", "ref_value", "ref_value2", "ref_raw"])
    _, orphans, _ = coverage(refs, result.id_map, migrated)
    assert orphans[["reason", "legacy_id"]].values.tolist() == [["unknown_member", ""]]


# -------------------------------------------------------------- end to end on the sample program


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    """Sample program -> stage 01 -> members XML -> rehearsal import -> target export -> mapping."""
    from loyalty_toolkit.sample.generator import generate_sample

    root = tmp_path_factory.mktemp("mapping_e2e")
    sample = generate_sample(root, members=300, seed=11)
    raw = to_frame(read_table(sample.members), MEMBER_COLUMNS)
    stage01 = prepare_members(raw, source_file="members.csv", default_region="FR", timezone="Europe/Paris")
    xml = write_members_xml(stage01.members, root / "xml", active=True, agreement1=False,
                            send_activation_mail=False, max_file_bytes=50_000)
    rng = random.Random(2026)
    outcome = RehearsalImport().import_customers(
        [c for p in xml for c in parse_members_xml(p)], ExistingIdentifiers(),
        id_factory=lambda: uuid.UUID(int=rng.getrandbits(128), version=4))
    export = write_target_members_csv(outcome.new_members, root / "target_export.csv")
    result = match_members(stage01.members, read_target_members(export, default_region="FR"))
    cfg = parse_config(f"""
migration: {{name: e2e, cutover: "2026-06-30T23:59:59+00:00"}}
sources:
  members: {{path: {sample.members}}}
  ledger: {{path: {sample.ledger}}}
  opening_balances: {{path: {sample.opening_balances}}}
  rewards: {{files: [{", ".join(str(p) for p in sample.rewards)}]}}
""", root / "migration.yml")
    refs = member_references(cfg, cfg.input_files())
    covered = coverage(refs, result.id_map, stage01.members, legacy_members=legacy_member_keys(raw, "FR"))
    return sample, stage01, outcome, result, refs, covered


def test_rehearsal_ids_are_recovered_exactly_by_mapping(rehearsal) -> None:
    _, stage01, outcome, result, _, _ = rehearsal
    truth = dict(zip(outcome.new_members["legacy_id"], outcome.new_members["target_id"]))
    assert dict(zip(result.id_map["legacy_id"], result.id_map["target_id"])) == truth
    # only the second member of each shared-identifier pair was refused; it is ambiguous, never guessed
    refused = set(stage01.members["legacy_id"]) - set(truth)
    assert set(result.review["reason"]) == {"ambiguous"} and set(result.review["legacy_id"]) == refused
    totals = result_json(outcome)
    assert totals["totalProcessed"] == len(stage01.members)
    assert totals["totalSuccess"] == len(truth) and totals["totalFailed"] == len(refused) > 0


def test_every_opening_balance_resolves_including_national_numbers(rehearsal) -> None:
    _, _, _, _, refs, (resolved, orphans, per_input) = rehearsal
    opening = per_input.set_index("input").loc["opening_balances"]
    assert opening["coverage"] == 1.0
    national = resolved[(resolved["input"] == "opening_balances")
                        & resolved["ref_value"].astype(str).str.startswith("+339")]
    assert len(national) > 0  # Vietnamese 09... numbers, re-read in the member's region


def test_ledger_orphans_are_the_planted_unknown_users_and_unmapped_members(rehearsal) -> None:
    sample, _, _, _, refs, (resolved, orphans, per_input) = rehearsal
    ledger = orphans[orphans["input"] == "ledger"]
    assert set(ledger["reason"]) <= {"unknown_member", "member_rejected_or_unmapped"}
    assert (ledger["reason"] == "unknown_member").sum() == sample.counts["UNKNOWN_MEMBER"]
    assert per_input["references"].sum() == len(refs) == len(resolved) + len(orphans)


def test_reconciling_our_own_result_lists_every_member(rehearsal) -> None:
    _, stage01, outcome, _, _, _ = rehearsal
    rec = reconcile_import_result(stage01.members.sort_values("legacy_id"), result_json(outcome))
    assert len(rec) == len(stage01.members)
    imported = rec[rec["status"] == "imported"]
    assert dict(zip(imported["legacy_id"], imported["target_id"])) == dict(
        zip(outcome.new_members["legacy_id"], outcome.new_members["target_id"]))
    assert rec.loc[rec["status"] == "failed", "message"].str.startswith("Process exception: ").all()
