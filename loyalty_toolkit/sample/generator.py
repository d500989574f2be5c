"""A deterministic sample legacy loyalty program: members, Zenoti ledger, Haravan opening balances, Splio rewards.

Every byte written is a function of (members, seed, cutover, ledger_rows_per_member), so demos and tests
can rely on it; the defects it plants are listed in ``legacy/defects.csv`` so each stage's checks can be
verified against a known answer. Times are center-local ``YYYY-MM-DD HH:MM:SS``; dates that decide a
class (expiry, pending start) are kept a day or more away from the cutover so no time zone can flip them.
"""

from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from loyalty_toolkit.config import MEMBER_COLUMNS, OPENING_COLUMNS
from loyalty_toolkit.errors import UsageError
from loyalty_toolkit.sample import defects as D
from loyalty_toolkit.sample.defects import CENTERS, DAY, YEAR, LedgerWriter, _sec, datetimes_text

STORES = ("paris-opera", "lyon-part-dieu", "hanoi-hoan-kiem", "saigon-d1")
FR_FEMALE = ("Hélène", "Élodie", "Camille", "Anne", "Marie", "Chloé", "Léa", "Manon", "Sophie", "Zoé", "Inès",
             "Françoise", "Margaux", "Amélie", "Cécile", "Noémie", "Agnès", "Béatrice", "Joséphine", "Maëlle")
FR_MALE = ("Jean", "Jérôme", "François", "Théo", "Lucas", "Hugo", "Étienne", "Raphaël", "Benoît", "Noël", "Loïc",
           "Gaël", "Clément", "Frédéric", "Sébastien", "André", "Thierry", "Nicolas", "Antoine", "Jean-Marc")
FR_LAST = ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau",
           "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux", "Vincent", "Fournier",
           "Morel", "Girard", "Mercier", "Dupont", "Lambert", "Bonnet", "Gérard", "Chevalier", "Lemaître", "Faure")
VN_FEMALE = ("Thị Thu", "Thị Hương", "Thị Lan", "Ngọc Anh", "Thu Trang", "Minh Thư", "Thị Mai", "Phương Linh",
             "Bảo Ngọc", "Thanh Hằng")
VN_MALE = ("Văn Hùng", "Minh Tuấn", "Quốc Bảo", "Đức Anh", "Văn Nam", "Hoàng Long", "Thanh Tùng", "Gia Huy",
           "Quang Vinh", "Tiến Dũng")
VN_LAST = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô",
           "Dương", "Lý")
DOMAINS = ("gmail.com", "orange.fr", "free.fr", "yahoo.fr", "hotmail.com", "outlook.fr", "laposte.net", "sfr.fr")
# Second digit of the mobile numbers used, all valid ranges: French 06x, Vietnamese 09x.
FR_SECOND = np.array([0, 1, 2, 4, 5, 6, 7, 8])
VN_SECOND = np.array([0, 3, 7, 8])
SPLIO_UNIVERSE, SPLIO_SUBSECTION = "demo", "main"
MASTER_COLUMNS = ("external_id", "name", "monetary", "monetary_type", "monetary_value", "nqp_value", "description",
                  "rich_description", "holding_days", "validity_interval_count", "validity_interval_type",
                  "forced_validity", "forced_validity_start", "forced_validity_end", "is_limited",
                  "max_attribution_count", "is_auto_generated", "image_url")
EARN_COLUMNS = ("reward_id", "card_code", "attribution_id", "quantity", "earn_date", "context",
                "validity_start_date", "validity_end_date", "burn_date", "store_id")
BURN_COLUMNS = ("card_code", "context", "attribution_id", "burn_date", "store_id")
# external_id, name, monetary_type ("" = not monetary), value, nqp, description, holding days,
# validity count, validity type, forced validity (over the whole sample period), limited stock.
CATALOG = (
    ("rw-welcome-drink", "Boisson de bienvenue", "value", "4.5", 50, "Thé ou café à l'accueil", 0, 30, "days", 0, 0),
    ("rw-massage-30", "Massage 30 minutes", "value", "45", 400, "Massage relaxant de 30 minutes", 1, 3, "months", 0, 0),
    ("rw-soin-visage", "Soin visage éclat", "value", "60", 550, "Soin du visage de 45 minutes", 1, 3, "months", 0, 1),
    ("rw-remise-10", "Remise 10 %", "percentage", "10", 300, "10 % sur la prochaine prestation", 0, 6, "weeks", 0, 0),
    ("rw-manucure", "Manucure offerte", "value", "25", 220, "Manucure classique", 0, 2, "months", 0, 0),
    ("rw-hammam", "Accès hammam", "", "", 150, "Une entrée au hammam", 0, 2, "months", 0, 0),
    ("rw-anniversaire", "Cadeau d'anniversaire", "", "", 1, "Surprise du mois d'anniversaire", 0, 1, "months", 0, 0),
    ("rw-ete-hoan-kiem", "Offre été Hoàn Kiếm", "value", "15", 120, "Offre saisonnière", 0, 1, "years", 1, 1),
)
CATALOG_WEIGHTS = np.array([20, 10, 6, 14, 10, 12, 18, 10], float) / 100
INTERVAL_DAYS = {"days": 1, "weeks": 7, "months": 30, "years": 365}


@dataclass(frozen=True)
class SampleProgram:
    """Where the sample program was written, and how many rows and defects each file got."""

    root: Path
    members: Path
    ledger: Path
    opening_balances: Path
    rewards: list[Path]
    defects: Path
    counts: dict[str, int]


def generate_sample(root: Path, *, members: int = 2000, seed: int = 7,
                    cutover: datetime = datetime(2026, 6, 30, 23, 59, 59, tzinfo=UTC),
                    ledger_rows_per_member: float = 5.0) -> SampleProgram:
    """Write the sample legacy exports under ``root/legacy`` and return their paths and counts."""
    if members < 1:
        raise UsageError(f"members must be at least 1, got {members}")
    if ledger_rows_per_member < 0:
        raise UsageError(f"ledger_rows_per_member must be >= 0, got {ledger_rows_per_member}")
    if seed < 0:
        raise UsageError(f"seed must be >= 0, got {seed}")
    if cutover.tzinfo is None:
        raise UsageError("cutover needs a UTC offset, e.g. 2026-06-30T23:59:59+00:00")
    cut = cutover.astimezone(UTC)
    c_sec = _sec(cut.replace(tzinfo=None))
    root = Path(root)
    legacy = root / "legacy"
    (legacy / "rewards").mkdir(parents=True, exist_ok=True)
    stamp = cut.strftime("%Y%m%d")
    rewards = [legacy / "rewards" / f"{SPLIO_UNIVERSE}_{scope}_{SPLIO_SUBSECTION}_{stamp}.csv"
               for scope in ("masterreward", "earnreward", "burnreward")]
    out = SampleProgram(root, legacy / "members.csv", legacy / "points_liability.csv",
                        legacy / "opening_balances.csv", rewards, legacy / "defects.csv", {})
    plan = D.plan_members(np.random.default_rng([seed, 0]), members)
    log = D.DefectLog(out.defects)
    try:
        people = _write_members(np.random.default_rng([seed, 1]), out, plan, c_sec, cut.year, log)
        opening = _write_opening(np.random.default_rng([seed, 2]), out, plan, people)
        ledger = LedgerWriter(out.ledger, root, seed=seed, members=members, rows_per_member=ledger_rows_per_member,
                              cutover=c_sec, cutover_year=cut.year, center=people["center"],
                              created=people["created"], negative=plan.negative, log=log)
        out.counts.update(members=members, ledger=ledger.write(), opening_balances=opening)
        out.counts.update(_write_rewards(np.random.default_rng([seed, 4]), out, people, c_sec, log))
    finally:
        log.close()
    out.counts.update(log.counts)
    return out


def _slug(name: str) -> str:
    """ASCII, lower-case, letters and hyphens only: the email-safe form of a name."""
    folded = unicodedata.normalize("NFKD", name.replace("đ", "d").replace("Đ", "D"))
    return "".join(ch for ch in folded.lower() if ch.isascii() and (ch.isalpha() or ch == "-"))


def _rel(out: SampleProgram, path: Path) -> str:
    return path.relative_to(out.root).as_posix()


def _write_csv(path: Path, header, rows, delimiter: str = ",") -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter=delimiter, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def _bijection(rng: np.random.Generator, n: int, modulus: int) -> np.ndarray:
    """``n`` distinct, random-looking numbers below ``modulus`` (a 2^a 5^b), one per member."""
    a = int(rng.integers(10**5, 10**6)) * 10 + int(rng.choice([1, 3, 7, 9]))  # coprime with 2 and 5
    return (rng.permutation(n).astype(np.int64) * a + int(rng.integers(0, modulus))) % modulus


def _pairs(text: str) -> str:
    return " ".join(text[i:i + 2] for i in range(0, len(text), 2))


def _national_style(national: str, style: int) -> str:
    """The four French national spellings of one valid mobile number."""
    if style == 0:
        return _pairs(national)
    if style == 1:
        return national
    if style == 2:
        return _pairs(national).replace(" ", ".")
    return f"0033 {national[1]} {_pairs(national[2:])}"


def _write_members(rng: np.random.Generator, out: SampleProgram, plan: D.MemberDefects, c_sec: int,
                   year: int, log: D.DefectLog) -> dict:
    """members.csv: identifiers derived from the member index, so clean members never collide."""
    n = len(plan.cls)
    idx = np.arange(n, dtype=np.int64)
    center = rng.choice(4, n, p=[0.35, 0.25, 0.2, 0.2])
    center[:2] = 0  # the worked examples happen in Paris
    viet = rng.random(n) < np.where(center >= 2, 0.85, 0.08)
    female = rng.random(n) < 0.6
    firsts = (FR_MALE, FR_FEMALE, VN_MALE, VN_FEMALE)
    group = viet * 2 + female
    sizes = np.array([len(g) for g in firsts])
    offsets = np.r_[0, np.cumsum(sizes)[:-1]]
    first_all = [x for g in firsts for x in g]
    first = offsets[group] + rng.integers(0, sizes[group])
    other = offsets[group] + rng.integers(0, sizes[group])
    last_all = FR_LAST + VN_LAST
    last = np.where(viet, len(FR_LAST) + rng.integers(0, len(VN_LAST), n), rng.integers(0, len(FR_LAST), n))
    domain = rng.integers(0, len(DOMAINS), n)
    first_slug = [_slug(x) for x in first_all]
    last_slug = [_slug(x) for x in last_all]
    first_names = [first_all[i] for i in first.tolist()]
    # A few legacy first names hold two names separated by a comma: the writer must quote them.
    comma_rows = D.pick(rng, idx[D.SPECIAL_MEMBERS:], max(round(0.003 * n), 2 if n >= 100 else 0))
    for i in comma_rows.tolist():
        first_names[i] = f"{first_names[i]}, {first_all[other[i]]}"
    last_names = [last_all[i] for i in last.tolist()]
    emails = [f"{first_slug[f]}.{last_slug[la]}{i + 1}@{DOMAINS[d]}"
              for i, f, la, d in zip(idx.tolist(), first.tolist(), last.tolist(), domain.tolist(), strict=True)]

    national_cls = D.MEMBER_CODES.index(D.PHONE_NATIONAL_FORMAT)
    use_vn = viet & (rng.random(n) < 0.6) & (plan.cls != national_cls)
    fr, vn = _bijection(rng, n, 8 * 10**7), _bijection(rng, n, 4 * 10**7)
    prefix = np.where(use_vn, 90 + VN_SECOND[vn // 10**7], 60 + FR_SECOND[fr // 10**7])
    rest = np.where(use_vn, vn, fr) % 10**7
    national = [f"0{p}{r:07d}" for p, r in zip(prefix.tolist(), rest.tolist(), strict=True)]
    phones = [f"+{84 if v else 33}{nat[1:]}" for v, nat in zip(use_vn.tolist(), national, strict=True)]
    cards = [f"{c:010d}" for c in _bijection(rng, n, 10**10).tolist()]

    style = rng.integers(0, 4, n)
    for k, code in enumerate(D.MEMBER_CODES):
        for i in np.flatnonzero(plan.cls == k).tolist():
            if code == D.EMAIL_INVALID:
                f, la, d = first_slug[first[i]], last_slug[last[i]], DOMAINS[domain[i]]
                emails[i] = (f"{f}.{la}{i + 1}@", f"{f}{i + 1}@@{d}", f"{f}.{la}{i + 1}.{d}",
                             f"{f} {la}{i + 1}@{d}")[style[i]]
            elif code == D.PHONE_NATIONAL_FORMAT:
                phones[i] = _national_style(national[i], int(style[i]))
            elif code == D.NO_IDENTIFIER:
                emails[i] = phones[i] = cards[i] = ""
    for a, b in zip(*plan.case_pairs, strict=True):
        local, _, dom = emails[a].partition("@")
        emails[a] = ".".join(p.capitalize() for p in local.split(".")) + "@" + dom.capitalize()
        emails[b] = emails[a].lower()
    for k, (a, b) in enumerate(zip(*plan.shared_pairs, strict=True)):
        if k % 2 == 0:
            phones[b] = phones[a]
        else:
            cards[b] = cards[a]

    created = c_sec - rng.integers(60 * DAY, 5 * YEAR, n)
    created[:2] = [_sec(datetime(year - 2, 1, 10, 9, 30)), _sec(datetime(year - 2, 11, 2, 14, 5))][:n]
    birth = (c_sec // DAY - rng.integers(18 * 365, 80 * 365, n)).astype("datetime64[D]").astype(str).tolist()
    no_birth = rng.random(n) < 0.08
    gender_style = rng.choice(3, n, p=[0.55, 0.35, 0.10])
    genders = [("male", "M", "")[s] if not f else ("female", "F", "")[s]
               for f, s in zip(female.tolist(), gender_style.tolist(), strict=True)]
    guest_ids = [f"G{i + 1:07d}" for i in range(n)]
    rows = zip(guest_ids, first_names, last_names, emails, phones, cards,
               ["" if nb else b for nb, b in zip(no_birth.tolist(), birth, strict=True)], genders,
               datetimes_text(created), [CENTERS[c] for c in center.tolist()], strict=True)
    _write_csv(out.members, MEMBER_COLUMNS.values(), rows)

    flagged = np.flatnonzero(plan.cls >= 0)
    log.add(_rel(out, out.members), flagged + 2, np.asarray(guest_ids, dtype=object)[flagged], plan.cls[flagged])
    return {"center": center, "created": created, "emails": emails, "phones": phones, "national": national,
            "cards": cards}


def _thousands(values: np.ndarray, style: np.ndarray) -> list[str]:
    """VND amounts as the legacy file spells them: 1500000, 1,500,000 or 1.500.000."""
    return [str(v) if s == 0 else f"{v:,}" if s == 1 else f"{v:,}".replace(",", ".")
            for v, s in zip(values.tolist(), style.tolist(), strict=True)]


def _write_opening(rng: np.random.Generator, out: SampleProgram, plan: D.MemberDefects, people: dict) -> int:
    """opening_balances.csv: ~30% of the members whose phone and email identify them."""
    national_cls = D.MEMBER_CODES.index(D.PHONE_NATIONAL_FORMAT)
    eligible = np.flatnonzero((plan.cls < 0) | (plan.cls == national_cls))
    chosen = D.pick(rng, eligible, round(0.3 * len(plan.cls)))
    k = len(chosen)
    as_national = (rng.random(k) < 0.2) & (plan.cls[chosen] < 0)
    phones = [people["national"][i] if nat else people["phones"][i]
              for i, nat in zip(chosen.tolist(), as_national.tolist(), strict=True)]
    opening = np.rint(rng.lognormal(15, 1, k) / 1000).astype(np.int64) * 1000
    later = np.rint(rng.lognormal(14, 1, k) / 1000).astype(np.int64) * 1000 * (rng.random(k) < 0.7)
    style = rng.choice(3, k, p=[0.8, 0.1, 0.1])
    rows = zip(phones, [people["emails"][i] for i in chosen.tolist()], _thousands(opening, style),
               _thousands(opening + later, style), strict=True)
    _write_csv(out.opening_balances, OPENING_COLUMNS.values(), rows)
    return k


SPLIO_MAX_EARNED = 190_000


def _write_rewards(rng: np.random.Generator, out: SampleProgram, people: dict, c_sec: int,
                   log: D.DefectLog) -> dict[str, int]:
    """The three Splio files: the catalog, ~0.5 earned reward per member, ~40% of them burned."""
    forced_start, forced_end = c_sec - 3 * YEAR - 30 * DAY, c_sec + 180 * DAY
    fs, fe = datetimes_text(np.array([forced_start, forced_end]))
    master = [(ext, name, int(bool(mtype)), mtype, value, nqp, desc, f"<p>{desc}</p>", hold, count, unit, forced,
               fs if forced else "", fe if forced else "", limited, 500 if limited else 1_000_000, 0,
               f"https://example.com/rewards/{ext}.png")
              for ext, name, mtype, value, nqp, desc, hold, count, unit, forced, limited in CATALOG]
    _write_csv(out.rewards[0], MASTER_COLUMNS, master, ";")

    cards = people["cards"]
    holders = np.array([i for i, c in enumerate(cards) if c], dtype=np.int64)
    # Splio refuses files of more than 200,000 objects: large samples earn fewer rewards per member
    # rather than spreading one scope over several files.
    n_earn = min(round(0.5 * len(cards)), SPLIO_MAX_EARNED) if len(holders) else 0
    who = rng.choice(holders, n_earn) if n_earn else holders[:0]
    reward = rng.choice(len(CATALOG), n_earn, p=CATALOG_WEIGHTS)
    start = np.maximum(people["created"][who], c_sec - 3 * YEAR)
    earn = start + (rng.random(n_earn) * (c_sec - 60 - start)).astype(np.int64)
    order = np.lexsort((who, earn))
    who, reward, earn = who[order], reward[order], earn[order]
    days = np.array([INTERVAL_DAYS[r[8]] * r[7] for r in CATALOG])
    forced = np.array([r[9] for r in CATALOG], bool)[reward]
    v_start = np.where(forced, forced_start, earn)
    v_end = np.where(forced, forced_end, earn + days[reward] * DAY)
    # A burn falls after the earn, within validity, and before the cutover (dates are Splio GMT+1).
    lo, hi = earn + 60, np.minimum(v_end, c_sec) - 60
    can_burn = hi - lo > 3600
    burnt_in_earn = can_burn & (rng.random(n_earn) < 0.05)
    burn_at = lo + ((hi - lo) * rng.random(n_earn)).astype(np.int64)
    burned = D.pick(rng, np.flatnonzero(can_burn & ~burnt_in_earn), round(0.4 * n_earn))
    center = people["center"]
    store = [STORES[c] for c in center[who].tolist()]
    att = [f"at-{i + 1:06d}" for i in range(n_earn)]
    earn_txt, burn_txt = datetimes_text(earn), datetimes_text(burn_at)
    rows = zip([CATALOG[r][0] for r in reward.tolist()], [cards[i] for i in who.tolist()], att,
               np.where(rng.random(n_earn) < 0.1, 2, 1).tolist(), earn_txt,
               np.array(["store", "web", "birthday", "welcome"])[rng.integers(0, 4, n_earn)].tolist(),
               datetimes_text(v_start), datetimes_text(v_end),
               [t if b else "" for t, b in zip(burn_txt, burnt_in_earn.tolist(), strict=True)], store, strict=True)
    _write_csv(out.rewards[1], EARN_COLUMNS, rows, ";")

    n_unknown = max(round(D.BURN_UNKNOWN_RATE * len(burned) / (1 - D.BURN_UNKNOWN_RATE)), 3) if n_earn else 0
    stray = rng.choice(holders, n_unknown) if n_unknown else holders[:0]
    b_card = [cards[i] for i in who[burned].tolist()] + [cards[i] for i in stray.tolist()]
    b_att = [att[i] for i in burned.tolist()] + [f"at-{n_earn + 1 + j:06d}" for j in range(n_unknown)]
    b_time = np.r_[burn_at[burned], c_sec - rng.integers(3600, YEAR, n_unknown)]
    b_store = np.r_[center[who[burned]], center[stray]]
    moved = rng.random(len(b_store)) < 0.1  # burned at another center than the member's own
    b_store = np.where(moved, (b_store + rng.integers(1, 4, len(b_store))) % 4, b_store)
    unknown = np.r_[np.zeros(len(burned), bool), np.ones(n_unknown, bool)]
    order = np.lexsort((np.arange(len(b_time)), b_time))
    b_txt = datetimes_text(b_time[order])
    context = np.array(["store", "web"])[rng.integers(0, 2, len(order))].tolist()
    rows = zip([b_card[i] for i in order.tolist()], context, [b_att[i] for i in order.tolist()], b_txt,
               [STORES[c] for c in b_store[order].tolist()], strict=True)
    _write_csv(out.rewards[2], BURN_COLUMNS, rows, ";")
    lines = np.flatnonzero(unknown[order])
    log.add_code(_rel(out, out.rewards[2]), lines + 2, np.asarray(b_att, dtype=object)[order][lines],
                 D.BURN_UNKNOWN_ATTRIBUTION)
    return {"masterreward": len(master), "earnreward": n_earn, "burnreward": len(order)}
