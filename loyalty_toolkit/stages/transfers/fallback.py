"""The slow path of the lot engine: members whose redemptions need a fallback, one at a time.

Per member, redemptions are replayed in action order against a heap of the lots accrued so far,
keyed (expiry, action time, line), so the lot that expires first, then the oldest, is taken
first; lots that expired by the redemption leave the heap for good because time only moves
forward. What those lots cannot pay is taken from lots accrued later, oldest first, and what is
still missing is the member's deficit. Plain Python lists, processed in batches of members so the
lists stay small: this loop is the only per-event Python code of the engine.
"""

from __future__ import annotations

import heapq

import numpy as np

_NAT = np.iinfo(np.int64).min
_NEVER = np.iinfo(np.int64).max

_SLOW_CHUNK = 50_000  # members per batch: bounds the Python lists the slow path holds at once


def allocate_slow(slow_user, lot_user, lot_amt, lot_act, lot_line, lot_end,
                  red_user, red_amt, red_act, red_line, link, first_method):
    """Walk the members that need a fallback, event by event (rules 1-3 of ``stages.lots``).

    Inputs are the engine's lot and redemption arrays (integer member codes, micro-points, UTC
    microseconds; ``link`` = lot index or -1, ``first_method`` = 0 link, 1 missing, 2 unknown).

    Returns allocation pieces in order: redemption index, lot index (-1 = deficit, method 4), points,
    method.
    """
    lsel = np.flatnonzero(slow_user[lot_user])
    lsel = lsel[np.lexsort((lot_line[lsel], lot_act[lsel], lot_user[lsel]))]
    rsel = np.flatnonzero(slow_user[red_user])
    rsel = rsel[np.lexsort((red_line[rsel], red_act[rsel], red_user[rsel]))]
    members = np.flatnonzero(slow_user)
    lb = np.append(np.searchsorted(lot_user[lsel], members, side="left"), len(lsel))
    rb = np.append(np.searchsorted(red_user[rsel], members, side="left"), len(rsel))
    # position of each slow lot within its member, so a link resolves without a dict; the extra
    # last element answers the "no link" index -1
    local = np.full(len(lot_user) + 1, -1, dtype=np.int64)
    local[lsel] = np.arange(len(lsel)) - np.repeat(lb[:-1], np.diff(lb))
    r_link = local[link[rsel]]
    l_end = np.where(lot_end[lsel] == _NAT, _NEVER, lot_end[lsel])
    del local

    out: list[tuple[np.ndarray, ...]] = []
    for m0 in range(0, len(members), _SLOW_CHUNK):
        m1 = min(m0 + _SLOW_CHUNK, len(members))
        la, lz, ra, rz = lb[m0], lb[m1], rb[m0], rb[m1]
        out.append(_walk(
            (lb[m0:m1 + 1] - la).tolist(), (rb[m0:m1 + 1] - ra).tolist(),
            lsel[la:lz].tolist(), lot_amt[lsel[la:lz]].tolist(), lot_act[lsel[la:lz]].tolist(),
            lot_line[lsel[la:lz]].tolist(), l_end[la:lz].tolist(),
            rsel[ra:rz].tolist(), red_amt[rsel[ra:rz]].tolist(), red_act[rsel[ra:rz]].tolist(),
            r_link[ra:rz].tolist(), first_method[rsel[ra:rz]].tolist()))
    return tuple(np.concatenate([o[i] for o in out]) for i in range(4))


def _walk(lb, rb, L_idx, L_amt, L_act, L_line, L_end, R_idx, R_amt, R_act, R_link, R_meth):
    """The per-member loop over one batch (plain lists: this is the hot loop)."""
    out_r: list[int] = []
    out_l: list[int] = []
    out_p: list[int] = []
    out_m: list[int] = []
    push, pop = heapq.heappush, heapq.heappop
    for m in range(len(lb) - 1):
        l0, l1, r0, r1 = lb[m], lb[m + 1], rb[m], rb[m + 1]
        nl = l1 - l0
        rem = L_amt[l0:l1]
        act, end, line = L_act[l0:l1], L_end[l0:l1], L_line[l0:l1]
        heap: list[tuple[int, int, int, int]] = []
        ptr = fut = 0
        for k in range(r0, r1):
            t, need, r = R_act[k], R_amt[k], R_idx[k]
            while ptr < nl and act[ptr] <= t:
                push(heap, (end[ptr], act[ptr], line[ptr], ptr))
                ptr += 1
            method = R_meth[k]
            if method == 0:
                j = R_link[k]
                take = rem[j] if rem[j] < need else need
                if take:
                    rem[j] -= take
                    need -= take
                    out_r.append(r); out_l.append(L_idx[l0 + j]); out_p.append(take); out_m.append(0)
                method = 3  # what the named lot could not pay is an overflow (codes index lots.METHODS)
            # lots already accrued: expiring first, then oldest; expired ones leave the heap for good
            while need and heap:
                e_, _, _, j = heap[0]
                if rem[j] == 0 or e_ <= t:
                    pop(heap)
                    continue
                take = rem[j] if rem[j] < need else need
                rem[j] -= take
                need -= take
                out_r.append(r); out_l.append(L_idx[l0 + j]); out_p.append(take); out_m.append(method)
            # later accruals pay what is still owed, oldest first
            if need:
                fut = max(fut, ptr)
                while fut < nl and rem[fut] == 0:
                    fut += 1
                j = fut
                while need and j < nl:
                    if rem[j] and end[j] > t:
                        take = rem[j] if rem[j] < need else need
                        rem[j] -= take
                        need -= take
                        out_r.append(r); out_l.append(L_idx[l0 + j]); out_p.append(take); out_m.append(method)
                    j += 1
            if need:  # no lot can pay it: the deficit (method 4, lots.DEFICIT), whatever the link said
                out_r.append(r); out_l.append(-1); out_p.append(need); out_m.append(4)
    return (np.asarray(out_r, dtype=np.int64), np.asarray(out_l, dtype=np.int64),
            np.asarray(out_p, dtype=np.int64), np.asarray(out_m, dtype=np.int8))
