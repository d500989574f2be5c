"""The defects the sample program plants: codes, rates, who carries them, the log, and the ledger.

Member-file defects are assigned to member indices from the seed, each member carrying at most one,
so a check that fires on a row can be traced to exactly one planted cause. Every planted defect is
written to ``legacy/defects.csv`` (``file,line,record_key,defect``) by :class:`DefectLog`. The ledger
writer lives here too because most of its logic is planting ledger defects; it works on whole numpy
columns and writes byte matrices, since 10M rows must take minutes, not hours.
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from loyalty_toolkit.config import LEDGER_COLUMNS

EMAIL_INVALID = "EMAIL_INVALID"
EMAIL_CASE_DUPLICATE = "EMAIL_CASE_DUPLICATE"
PHONE_NATIONAL_FORMAT = "PHONE_NATIONAL_FORMAT"
SHARED_IDENTIFIER = "SHARED_IDENTIFIER"
NO_IDENTIFIER = "NO_IDENTIFIER"
UNKNOWN_MEMBER = "UNKNOWN_MEMBER"
REDEMPTION_NO_LINK = "REDEMPTION_NO_LINK"
EXPIRED_LOT = "EXPIRED_LOT"
PENDING_LOT = "PENDING_LOT"
FRACTIONAL_POINTS = "FRACTIONAL_POINTS"
NEGATIVE_BALANCE = "NEGATIVE_BALANCE"
BURN_UNKNOWN_ATTRIBUTION = "BURN_UNKNOWN_ATTRIBUTION"

# Order matters: it is the class number in MemberDefects.cls and the tie-break within a line.
MEMBER_CODES = (EMAIL_INVALID, EMAIL_CASE_DUPLICATE, PHONE_NATIONAL_FORMAT, SHARED_IDENTIFIER, NO_IDENTIFIER)
LEDGER_CODES = (UNKNOWN_MEMBER, REDEMPTION_NO_LINK, EXPIRED_LOT, PENDING_LOT, FRACTIONAL_POINTS, NEGATIVE_BALANCE)
CODES: tuple[str, ...] = (*MEMBER_CODES, *LEDGER_CODES, BURN_UNKNOWN_ATTRIBUTION)
DEFECTS_HEADER = ("file", "line", "record_key", "defect")

# Share of members carrying each member-file defect; for the paired classes it is the share of
# members that belong to a pair (both rows of a pair are defects).
MEMBER_RATES = {EMAIL_INVALID: 0.01, EMAIL_CASE_DUPLICATE: 0.005, PHONE_NATIONAL_FORMAT: 0.10,
                SHARED_IDENTIFIER: 0.005, NO_IDENTIFIER: 0.005}
PAIRED = frozenset({EMAIL_CASE_DUPLICATE, SHARED_IDENTIFIER})
UNKNOWN_MEMBER_RATE = 0.002  # of ledger rows
NO_LINK_RATE = 0.02  # of redemptions
NEGATIVE_RATE = 0.002  # of members
BURN_UNKNOWN_RATE = 0.02  # of burns
# Below this many members the minimum counts would swamp the file, so plain rates apply.
MIN_MEMBERS_FOR_MINIMUMS = 100
# Members 1 and 2 (indices 0, 1) carry the worked examples of seed 004 and stay clean.
SPECIAL_MEMBERS = 2


@dataclass(frozen=True)
class MemberDefects:
    """Which member (by 0-based index) carries which planted defect."""

    cls: np.ndarray  # int8 per member: -1 clean, else the index into MEMBER_CODES
    case_pairs: tuple[np.ndarray, np.ndarray]  # (a, b): b's email is a's, lower-cased
    shared_pairs: tuple[np.ndarray, np.ndarray]  # (a, b): b reuses a's phone (even k) or card (odd k)
    negative: np.ndarray  # bool per member: redemptions end above accruals


def _count(rate: float, n: int, minimum: int) -> int:
    return max(round(rate * n), minimum if n >= MIN_MEMBERS_FOR_MINIMUMS else 0)


def plan_members(rng: np.random.Generator, n: int) -> MemberDefects:
    """Draw disjoint sets of members for each member class, and the members that go negative."""
    cls = np.full(n, -1, np.int8)
    pool = SPECIAL_MEMBERS + rng.permutation(max(n - SPECIAL_MEMBERS, 0))
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    pos = 0
    for k, code in enumerate(MEMBER_CODES):
        if code in PAIRED:
            size = 2 * _count(MEMBER_RATES[code] / 2, n, 2)
        else:
            size = _count(MEMBER_RATES[code], n, 3)
        take = pool[pos:pos + size]
        pos += len(take)
        if code in PAIRED:
            take = take[: len(take) // 2 * 2]
            pairs[code] = (take[0::2], take[1::2])
        cls[take] = k
    negative = np.zeros(n, bool)
    eligible = np.flatnonzero(cls < 0)
    eligible = eligible[eligible >= SPECIAL_MEMBERS]
    negative[pick(rng, eligible, _count(NEGATIVE_RATE, n, 2))] = True
    return MemberDefects(cls, pairs[EMAIL_CASE_DUPLICATE], pairs[SHARED_IDENTIFIER], negative)


def pick(rng: np.random.Generator, eligible: np.ndarray, k: int) -> np.ndarray:
    """``k`` distinct items of ``eligible`` (all of them if fewer), sorted."""
    k = min(len(eligible), max(int(k), 0))
    if k == 0:
        return np.asarray(eligible[:0], np.int64)
    return np.sort(rng.choice(eligible, k, replace=False))


class DefectLog:
    """Writes ``defects.csv`` as defects are planted, and counts them per code."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in close()
        self._writer = csv.writer(self._file, lineterminator="\n")
        self._writer.writerow(DEFECTS_HEADER)
        self.counts: dict[str, int] = dict.fromkeys(CODES, 0)

    def add(self, file: str, lines: np.ndarray, keys: np.ndarray, codes: np.ndarray) -> None:
        """One row per (line, key, code index into CODES); written in line order, then code order."""
        lines = np.asarray(lines, np.int64)
        codes = np.asarray(codes, np.int64)
        order = np.lexsort((codes, lines))
        names = np.asarray(CODES)[codes[order]]
        self._writer.writerows(zip(itertools.repeat(file), lines[order].tolist(),
                                   np.asarray(keys)[order].tolist(), names.tolist(), strict=False))
        for code, count in zip(*np.unique(codes, return_counts=True), strict=True):
            self.counts[CODES[code]] += int(count)

    def add_code(self, file: str, lines: np.ndarray, keys: np.ndarray, code: str) -> None:
        self.add(file, lines, keys, np.full(len(lines), CODES.index(code)))

    def close(self) -> None:
        self._file.close()


# --- the Zenoti points-liability ledger -------------------------------------------------------------

DAY = 86_400
YEAR = 365 * DAY
CENTERS = ("Paris Opéra", "Lyon Part-Dieu", "Hanoi Hoàn Kiếm", "Saigon District 1")
LEDGER_HEADER = ("organization account name", *LEDGER_COLUMNS.values())
ORGANIZATION = "demo"
ACCRUAL_ACTIONS = ("Amount spent", "Purchase a service", "Purchase a product", "Purchase a gift card",
                   "Purchase a membership", "Welcome bonus", "Amount spent - Birthday", "Provide feedback",
                   "Referring a new guest", "Imported Points")
ACTION_P = (0.30, 0.25, 0.12, 0.05, 0.03, 0.05, 0.06, 0.06, 0.03, 0.05)
NO_INVOICE = ("Welcome bonus", "Provide feedback", "Referring a new guest", "Imported Points")
REDEEM = "Redeem points"
ROWS_PER_LOT = 1.62  # one accrual plus its 0-2 redemptions, after windows too short to redeem in
TIER_SILVER, TIER_GOLD = 1_500, 5_000  # lifetime accrued points, in tenths

_V = {  # byte vocabularies; index 4 of the center ones is "not this kind of row"
    "type": ("Accrual", "Redemption"),
    "action": (*ACCRUAL_ACTIONS, REDEEM),
    "program": ("Regular", "Promotion B"),
    "center": (*CENTERS, ""),
    "minutes": ("60", "60", "420", "420", ""),
    "invoice": ("PAR-", "LYS-", "HAN-", "SGN-"),
    "tier": ("", "bronze", "silver", "gold"),
    "sign": ("", "-"),
    "example": ("", "ab3cde"),
}
_VOCAB = {k: np.array([w.encode() for w in v], dtype="S") for k, v in _V.items()}
_INVOICED = np.array([a not in NO_INVOICE for a in _V["action"]])


def _sec(naive: datetime) -> int:
    return int((naive - datetime(1970, 1, 1)).total_seconds())


def _pick(vocab: str, idx: np.ndarray) -> np.ndarray:
    s = _VOCAB[vocab][idx]
    return s.view(np.uint8).reshape(len(s), s.dtype.itemsize)


def _const(n: int, text: str) -> np.ndarray:
    return np.tile(np.frombuffer(text.encode(), np.uint8), (n, 1))


def _blank(m: np.ndarray, empty: np.ndarray) -> np.ndarray:
    m[empty] = 0  # NUL bytes are dropped when the row is joined
    return m


def _digits(x: np.ndarray, pad: int = 1) -> np.ndarray:
    """Decimal digits of non-negative ints as a byte matrix, zero-padded to ``pad`` digits."""
    x = np.asarray(x, np.int64)
    width = max(pad, len(str(int(x.max()))) if len(x) else 1)
    out = np.empty((len(x), width), np.uint8)
    y = x.copy()
    for k in range(width - 1, -1, -1):
        out[:, k] = 48 + y % 10
        y //= 10
    head = out[:, : width - pad]
    head[np.cumsum(head != 48, axis=1) == 0] = 0
    return out


def _datetimes(sec: np.ndarray) -> np.ndarray:
    """``YYYY-MM-DD HH:MM:SS`` of epoch seconds as an (n, 19) byte matrix."""
    t = np.asarray(sec, np.int64).astype("datetime64[s]")
    month, day = t.astype("datetime64[M]"), t.astype("datetime64[D]")
    s = (t - day).astype(np.int64)
    out = np.empty((len(t), 19), np.uint8)
    out[:, 0:4] = _digits(month.astype(np.int64) // 12 + 1970, 4)
    parts = (month.astype(np.int64) % 12 + 1, (day - month.astype("datetime64[D]")).astype(np.int64) + 1,
             s // 3600, s // 60 % 60, s % 60)
    for col, v in zip((5, 8, 11, 14, 17), parts, strict=True):
        out[:, col:col + 2] = _digits(v, 2)
    out[:, [4, 7]], out[:, 10], out[:, [13, 16]] = ord("-"), ord(" "), ord(":")
    return out


def datetimes_text(sec: np.ndarray) -> list[str]:
    return _datetimes(sec).view("S19").ravel().astype("U19").tolist()


def _guids(rng: np.random.Generator, n: int) -> np.ndarray:
    out = np.full((n, 36), ord("-"), np.uint8)
    hexed = np.frombuffer(b"0123456789abcdef", np.uint8)[rng.integers(0, 16, (n, 32), dtype=np.uint8)]
    out[:, [i for i in range(36) if i not in (8, 13, 18, 23)]] = hexed
    return out


def _join(fields: list[list[np.ndarray]], sep: str = ",") -> bytes:
    """CSV bytes of rows given as fields of byte-matrix pieces; values must not need quoting."""
    n = len(fields[0][0])
    parts: list[np.ndarray] = []
    for j, pieces in enumerate(fields):
        parts += pieces
        parts.append(np.full((n, 1), ord("\n" if j == len(fields) - 1 else sep), np.uint8))
    m = np.hstack(parts)
    return m[m != 0].tobytes()


def _tiers(mem: np.ndarray, when: np.ndarray, red: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, ...]:
    """(previous, current, accrual) tier indices: start of day, end of day, after the row (seed 004)."""
    n = len(mem)
    idx = np.arange(n)
    gained = np.where(red, 0, pts)
    after = np.cumsum(gained)
    before = after - gained
    new_mem = np.r_[True, mem[1:] != mem[:-1]]
    base = before[np.maximum.accumulate(np.where(new_mem, idx, 0))]
    before, after = before - base, after - base
    day = when // DAY
    new_day = new_mem | np.r_[True, day[1:] != day[:-1]]
    first = np.maximum.accumulate(np.where(new_day, idx, 0))
    last = np.minimum.accumulate(np.where(np.r_[new_day[1:], True], idx, n)[::-1])[::-1]

    def tier(x: np.ndarray) -> np.ndarray:
        return (x > 0).astype(np.int64) + (x >= TIER_SILVER) + (x >= TIER_GOLD)

    return tier(before[first]), tier(after[last]), tier(after)


class LedgerWriter:
    """points_liability.csv, generated and written in member-aligned chunks of about 1M rows.

    Points are handled as integer tenths so "12.5" and "0.1" are exact. Each accrual is a lot
    (``gp-<n>``) with 0-2 redemptions that never exceed it, except one over-redemption per member
    chosen to go negative.
    """

    def __init__(self, path: Path, root: Path, *, seed: int, members: int, rows_per_member: float,
                 cutover: int, cutover_year: int, center: np.ndarray, created: np.ndarray,
                 negative: np.ndarray, log: DefectLog) -> None:
        self.path, self.rel, self.seed, self.n = path, path.relative_to(root).as_posix(), seed, members
        self.per_member, self.cutover, self.year = rows_per_member, cutover, cutover_year
        self.center, self.created, self.negative, self.log = center, created, negative, log
        self.rows = self.lots = self.unknown = self.invoices = 0

    def write(self) -> int:
        step = max(1000, int(1_000_000 / max(self.per_member, 1.0)))
        with open(self.path, "wb") as f:
            f.write((",".join(LEDGER_HEADER) + "\n").encode())
            for chunk, lo in enumerate(range(0, self.n, step)):
                f.write(self._chunk(np.random.default_rng([self.seed, 3, chunk]), lo, min(lo + step, self.n)))
        return self.rows

    def _lots(self, rng: np.random.Generator, lo: int, hi: int) -> dict[str, np.ndarray]:
        c = self.cutover
        per = rng.poisson(self.per_member / ROWS_PER_LOT, hi - lo)
        per[self.negative[lo:hi] & (per == 0)] = 1
        if lo == 0:
            per[:2] = (2, 1)[: len(per[:2])]
        mem = np.repeat(np.arange(lo, hi), per)
        n = len(mem)
        since = np.maximum(self.created[mem], c - 3 * YEAR)
        center = self.center[mem].astype(np.int64)
        center = np.where(rng.random(n) < 0.05, (center + rng.integers(1, 4, n)) % 4, center)
        pending = rng.random(n) < 0.015
        t = since + (rng.random(n) * (c - 60 - since)).astype(np.int64)
        t = np.where(pending, c - rng.integers(3600, 30 * DAY, n), t)
        start = np.where(pending, c + rng.integers(DAY, 30 * DAY, n), t)
        validity = rng.choice(np.array([365, 730, 0]) * DAY, n, p=[0.5, 0.35, 0.15])
        end = start + validity
        has_end = validity > 0
        end = np.where(has_end & (np.abs(end - c) < DAY), c + 2 * DAY, end)  # keep expiry a day off the cutover
        frac = rng.random(n) < 0.01
        tenths = np.clip(np.rint(rng.lognormal(3.4, 0.9, n)), 1, 5000).astype(np.int64) * 10
        tenths = np.where(frac, rng.integers(0, 300, n) * 10 + rng.integers(1, 10, n), tenths)
        has_start = pending | (rng.random(n) < 0.95)
        # The over-redemption of a member going negative names their first lot: keep that lot open
        # (redeemable, never expiring, same center) so the overdraft is the row's only anomaly.
        first = np.searchsorted(mem, np.flatnonzero(self.negative[lo:hi]) + lo)
        start[first], has_start[first], has_end[first] = t[first], True, False
        center[first] = self.center[mem[first]]
        lots = {"mem": mem, "center": center, "t": t, "start": start, "has_start": has_start,
                "end": end, "has_end": has_end, "tenths": tenths, "frac": frac,
                "action": rng.choice(len(ACCRUAL_ACTIONS), n, p=ACTION_P),
                "program": (rng.random(n) < 0.15).astype(np.int64), "k": rng.choice(3, n, p=[0.5, 0.35, 0.15])}
        if lo == 0:
            self._worked_examples(lots)
        return lots

    def _worked_examples(self, lots: dict[str, np.ndarray]) -> None:
        """Seed 004's shapes: member 1's welcome bonus then spend (bronze -> silver), member 2's lot ab3cde."""
        y = self.year
        examples = ((datetime(y - 2, 5, 21, 10, 0), 100, "Welcome bonus", 0, False),
                    (datetime(y - 2, 5, 30, 15, 30), 110, "Amount spent", 0, False),
                    (datetime(y - 1, 3, 3, 11, 0), 1000, "Purchase a service", 1, True))
        for j, (when, tenths, action, k, expires) in enumerate(examples[: len(lots["mem"])]):
            s = _sec(when)
            values = {"t": s, "start": s, "end": s + 730 * DAY, "has_start": True, "has_end": expires,
                      "tenths": tenths, "frac": False, "action": ACCRUAL_ACTIONS.index(action), "program": 0,
                      "k": k, "center": self.center[lots["mem"][j]]}
            for key, v in values.items():
                lots[key][j] = v

    def _redemptions(self, rng: np.random.Generator, lots: dict[str, np.ndarray], lo: int,
                     hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        """(lot, tenths, time, payment center) per redemption, the negative ones last; and their count."""
        c, n = self.cutover, len(lots["mem"])
        # A day of margin at both ends: the payment center's clock may be 6 hours off the lot's.
        r_lo = np.where(lots["has_start"], lots["start"], lots["t"]) + DAY
        r_hi = np.minimum(np.where(lots["has_end"], lots["end"] - DAY, c), c) - 60
        unit = np.where(lots["frac"], 1, 10)
        units = lots["tenths"] // unit
        k = lots["k"] = np.where(r_hi - r_lo < 3600, 0, np.minimum(lots["k"], units))
        lot = np.repeat(np.arange(n), k)
        second = np.r_[False, lot[1:] == lot[:-1]][: len(lot)]
        total = np.clip(np.ceil(units * rng.uniform(0.2, 1.0, n)), k, np.maximum(units, k)).astype(np.int64)
        first = np.where(k == 2, np.clip(np.rint(total * rng.uniform(0.2, 0.8, n)), 1, np.maximum(total - 1, 1)), total)
        amount = np.where(second, total[lot] - first[lot], first[lot]).astype(np.int64) * unit[lot]
        u = np.sort(rng.random((n, 2)), axis=1)[lot, second.astype(np.int64)]
        when = r_lo[lot] + ((r_hi - r_lo)[lot] * u).astype(np.int64)
        pay = lots["center"][lot]
        pay = np.where(rng.random(len(lot)) < 0.1, (pay + rng.integers(1, 4, len(lot))) % 4, pay)
        if lo == 0 and n > 2:  # member 2 redeems 75 of the 100 points of lot ab3cde
            ex = lot == 2
            amount[ex], when[ex], pay[ex] = 750, _sec(datetime(self.year - 1, 3, 20, 16, 45)), lots["center"][2]
        # Members chosen to go negative redeem, after everything else, more than all they accrued.
        neg = np.flatnonzero(self.negative[lo:hi]) + lo
        if len(neg):
            mem_r = lots["mem"][lot]
            accrued = np.bincount(lots["mem"] - lo, lots["tenths"], hi - lo)[neg - lo]
            spent = np.bincount(mem_r - lo, amount, hi - lo)[neg - lo]
            last = np.zeros(hi - lo, np.int64)
            np.maximum.at(last, lots["mem"] - lo, lots["t"])
            np.maximum.at(last, mem_r - lo, when)
            last = last[neg - lo]
            lot = np.r_[lot, np.searchsorted(lots["mem"], neg)]
            amount = np.r_[amount, np.rint(accrued - spent).astype(np.int64) + rng.integers(10, 200, len(neg)) * 10]
            when = np.r_[when, last + np.maximum(1, ((c - last) * rng.uniform(0.2, 0.8, len(neg))).astype(np.int64))]
            pay = np.r_[pay, self.center[neg]]
        return lot, amount, when, pay, len(neg)

    def _chunk(self, rng: np.random.Generator, lo: int, hi: int) -> bytes:
        c = self.cutover
        lots = self._lots(rng, lo, hi)
        lot, amount, when, pay, n_neg = self._redemptions(rng, lots, lo, hi)
        n_lots, n = len(lots["mem"]), len(lots["mem"]) + len(lot)
        if n == 0:
            return b""
        row_lot = np.r_[np.arange(n_lots), lot]
        red = np.r_[np.zeros(n_lots, bool), np.ones(len(lot), bool)]
        mem = lots["mem"][row_lot]
        t = np.r_[lots["t"], when]
        pts = np.r_[lots["tenths"], -amount]
        neg_row = np.r_[np.zeros(n - n_neg, bool), np.ones(n_neg, bool)]
        center = np.r_[lots["center"], pay]
        order = np.lexsort((row_lot, red, t, mem))
        row_lot, red, mem, t, pts, neg_row, center = (a[order] for a in (row_lot, red, mem, t, pts, neg_row, center))
        gp = np.empty(n_lots, np.int64)
        gp[row_lot[~red]] = self.lots + 1 + np.arange(n_lots)  # lots numbered in file order
        self.lots += n_lots
        prev_tier, cur_tier, acc_tier = _tiers(mem, t, red, pts)
        if lo == 0:  # seed 004: bronze after the welcome bonus, silver after the spend
            prev_tier[:2], cur_tier[:2], acc_tier[:2] = (0, 1), (1, 2), (1, 2)
        example = (row_lot == 2) & (lo == 0)

        uid = mem + 1
        eligible = ~red & (lots["k"][row_lot] == 0) & (mem >= SPECIAL_MEMBERS) & ~self.negative[mem]
        unknown = pick(rng, np.flatnonzero(eligible), max(1, round(UNKNOWN_MEMBER_RATE * n)))
        uid[unknown] = self.n + self.unknown + 1 + np.arange(len(unknown))  # guests absent from members.csv
        self.unknown += len(unknown)
        linkable = np.flatnonzero(red & ~neg_row & ~example)
        no_link = pick(rng, linkable, max(1, round(NO_LINK_RATE * len(linkable))))
        has_start, has_end = lots["has_start"][row_lot] & ~red, lots["has_end"][row_lot] & ~red
        start, end = lots["start"][row_lot], lots["end"][row_lot]
        found = {UNKNOWN_MEMBER: unknown, REDEMPTION_NO_LINK: no_link,
                 EXPIRED_LOT: np.flatnonzero(has_end & (end <= c)),
                 PENDING_LOT: np.flatnonzero(has_start & (start > c)),
                 FRACTIONAL_POINTS: np.flatnonzero(pts % 10 != 0), NEGATIVE_BALANCE: np.flatnonzero(neg_row)}
        at = np.concatenate(list(found.values()))
        codes = np.concatenate([np.full(len(v), CODES.index(k)) for k, v in found.items()])
        self.log.add(self.rel, self.rows + 2 + at, np.asarray([f"G{u:07d}" for u in uid[at].tolist()], dtype=object),
                     codes)
        self.rows += n

        blank_gp = example.copy()
        blank_gp[no_link] = True
        action = np.where(red, len(ACCRUAL_ACTIONS), lots["action"][row_lot])
        invoiced = _INVOICED[action]
        seq = self.invoices + np.cumsum(invoiced)
        self.invoices = int(seq[-1])
        whole = pts % 10 == 0
        fields = [
            [_const(n, ORGANIZATION)],
            [_const(n, "G"), _digits(uid, 7)],
            [_pick("type", red.astype(np.int64))],
            [_blank(_const(n, "gp-"), blank_gp), _blank(_digits(gp[row_lot]), blank_gp),
             _pick("example", example.astype(np.int64))],
            [_datetimes(t)],
            [_pick("action", action)],
            [_pick("sign", red.astype(np.int64)), _digits(np.abs(pts) // 10), _blank(_const(n, "."), whole),
             _blank(_digits(np.abs(pts) % 10), whole)],
            [_blank(_datetimes(start), ~has_start)],
            [_blank(_datetimes(end), ~has_end)],
            [_pick("program", lots["program"][row_lot])],
            [_pick("center", np.where(red, 4, center))],
            [_pick("center", np.where(red, center, 4))],
            [_pick("minutes", np.where(red, 4, center))],
            [_pick("minutes", np.where(red, center, 4))],
            [_pick("tier", prev_tier)], [_pick("tier", cur_tier)], [_pick("tier", acc_tier)],
            [_blank(_guids(rng, n), ~invoiced)],
            [_blank(_pick("invoice", center), ~invoiced), _blank(_digits(seq, 8), ~invoiced)],
        ]
        return _join(fields)
