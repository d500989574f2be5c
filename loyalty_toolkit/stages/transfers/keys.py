"""Array helpers of ``stages.transfers``: transfer ids, timestamp text, text order, file order,
lookups and frames.

Each works on whole columns so that millions of transfers cost seconds: a timestamp is formatted
once per distinct value, text is ranked once per distinct value, and the only per-transfer Python
call is the SHA-1 of its UUIDv5. Every result is exactly what the plain per-row definition gives
(``uuid.uuid5``, ``numpy.datetime_as_string``, Python's ``str`` order); the transfers tests
compare them with those definitions.
"""

from __future__ import annotations

import hashlib
import uuid

import numpy as np
import pandas as pd

_NAT = np.iinfo(np.int64).min  # "no time"
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
# where the 32 hex digits of a UUID go in its 36-character text (dashes at 8, 13, 18, 23)
_HEX_AT = np.asarray([i for i in range(36) if i not in (8, 13, 18, 23)])


def uuid5_strings(namespace: uuid.UUID, names: np.ndarray, prefix: str = "", suffix: str = "",
                  chunk: int = 1 << 18) -> np.ndarray:
    """``str(uuid.uuid5(namespace, prefix + name + suffix))`` for every name, byte for byte.

    One SHA-1 per name; the version and variant bits and the hex text are array operations, a
    chunk of names at a time so that the temporaries stay small.
    """
    n = len(names)
    out = np.empty(n, dtype=object)
    ns, sha1 = namespace.bytes, hashlib.sha1
    for lo in range(0, n, chunk):
        part = names[lo:lo + chunk].tolist()
        k = len(part)
        digests = b"".join([sha1(ns + f"{prefix}{name}{suffix}".encode("utf-8")).digest() for name in part])
        raw = np.frombuffer(digests, dtype=np.uint8).reshape(k, 20)[:, :16].copy()
        raw[:, 6] = (raw[:, 6] & 0x0F) | 0x50  # version 5 (RFC 4122), as uuid.UUID(version=5) sets it
        raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # variant RFC 4122
        text = np.full((k, 36), ord("-"), dtype=np.uint8)
        text[:, _HEX_AT[0::2]] = _HEX[raw >> 4]
        text[:, _HEX_AT[1::2]] = _HEX[raw & 0x0F]
        joined = text.tobytes().decode("ascii")
        # dtype=object keeps these str objects (a plain list would go through numpy text first)
        out[lo:lo + k] = np.asarray([joined[i:i + 36] for i in range(0, 36 * k, 36)], dtype=object)
    return out


def format_utc(utc_us: np.ndarray) -> np.ndarray:
    """UTC microseconds (int64 min = none) as ``YYYY-MM-DD HH:MM:SS`` (fraction dropped), "" for none."""
    return utc_text_and_rank(utc_us)[0]


def utc_text_and_rank(utc_us: np.ndarray, chunk: int = 1 << 18) -> tuple[np.ndarray, np.ndarray]:
    """(text, rank): ``format_utc`` of each value, and an int64 rank whose order is the text's
    ``str`` order (equal texts, equal ranks; "" = none ranks first). Each distinct second is
    formatted once."""
    utc_us = np.asarray(utc_us, dtype=np.int64)
    if not len(utc_us):
        return np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64)
    none = utc_us == _NAT
    # the text keeps whole seconds: rank seconds, not microseconds, so that equal texts tie
    seconds = np.where(none, _NAT, utc_us // 1_000_000)
    uniq, inverse = np.unique(seconds, return_inverse=True)
    text = np.full(len(uniq), "", dtype=object)
    first = int(uniq[0] == _NAT)  # uniq is sorted: "none" comes first
    for lo in range(first, len(uniq), chunk):  # numpy text takes 4 bytes a character: a chunk at a time
        stamps = np.datetime_as_string(uniq[lo:lo + chunk].view("datetime64[s]"), unit="s")
        text[lo:lo + chunk] = np.char.replace(stamps, "T", " ").astype(object)
    return text[inverse], text_rank(text)[inverse]


def text_rank(values: np.ndarray) -> np.ndarray:
    """Dense int64 rank of each str in Python's order (code points): equal values, equal ranks."""
    values = np.asarray(values, dtype=object)
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n == 1 or bool((values[1:] > values[:-1]).all()):  # already strictly increasing (sorted distinct)
        return np.arange(n, dtype=np.int64)
    # object comparisons are Python's own; stable, so the dense rank is exact
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    step = np.ones(n, dtype=np.int64)
    step[0] = 0
    step[1:] = ordered[1:] != ordered[:-1]
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.cumsum(step)
    return rank


def join_sorted(group: np.ndarray, text: np.ndarray, n_groups: int, sep: str = ",") -> np.ndarray:
    """Per group 0..n_groups-1 (each non-empty), its ``text`` values sorted and joined with ``sep``."""
    counts = np.bincount(group, minlength=n_groups)
    out = np.empty(n_groups, dtype=object)
    single = counts[group] == 1
    out[group[single]] = text[single]
    multi = np.flatnonzero(~single)
    if len(multi):
        g, t = group[multi], text[multi]
        order = np.lexsort((text_rank(t), g))
        g, t = g[order], t[order]
        last = np.ones(len(g), dtype=bool)
        last[:-1] = g[1:] != g[:-1]
        t = t.copy()
        t[~last] = t[~last] + sep  # object arrays add element by element: "a" + ","
        starts = np.flatnonzero(np.concatenate(([True], last[:-1])))
        out[g[starts]] = np.add.reduceat(t, starts)
    return out


def file_order(int_keys: list[np.ndarray], text_keys: list[np.ndarray]) -> np.ndarray:
    """The stable sort order of rows by ``int_keys`` then ``text_keys`` (str, Python order), most
    significant first, as ``DataFrame.sort_values(kind="stable")`` over those columns gives it.

    The text keys only break ties left by the integer keys, so they are ranked over the tied rows
    alone (usually a handful).
    """
    n = len(int_keys[0]) if int_keys else 0
    order = np.lexsort(tuple(reversed(int_keys))) if n else np.zeros(0, dtype=np.int64)
    if n < 2 or not text_keys:
        return order
    same = np.ones(n - 1, dtype=bool)
    for k in int_keys:
        ks = k[order]
        same &= ks[1:] == ks[:-1]
    if not same.any():
        return order
    tied = np.zeros(n, dtype=bool)
    tied[1:] |= same
    tied[:-1] |= same
    pos = np.flatnonzero(tied)
    run = np.cumsum(np.concatenate(([True], ~same)))[pos]  # tie runs, in file order
    rows = order[pos]
    sub = np.lexsort(tuple(text_rank(t[rows]) for t in reversed(text_keys)) + (run,))
    order[pos] = rows[sub]
    return order


def group_ids(*keys: np.ndarray) -> tuple[np.ndarray, int]:
    """(codes, n): rows with equal values in every key share a code; codes in order of first
    appearance, as ``pd.factorize`` of the keys' MultiIndex numbers them."""
    code = np.zeros(len(keys[0]), dtype=np.int64) if keys else np.zeros(0, dtype=np.int64)
    n = 1
    for k in keys:
        kc, kn = pd.factorize(k)
        code = pd.factorize(code * max(len(kn), 1) + kc)[0].astype(np.int64)  # < rows * distinct: no overflow
        n = int(code.max()) + 1 if len(code) else 0
    return code, n


def isin(values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Per value: is it one of ``wanted`` (hash lookups, str equality)."""
    return pd.Series(np.asarray(values, dtype=object), dtype=object).isin(
        pd.Series(np.asarray(wanted, dtype=object), dtype=object)).to_numpy(dtype=bool)


def holders(*columns: np.ndarray) -> dict[tuple[str, ...], list[str]]:
    """Key (all columns but the last) -> the sorted distinct ids (the last column) holding it.
    A loop over the given rows: callers pass only the few rows they need."""
    out: dict[tuple[str, ...], set[str]] = {}
    for *key, i in zip(*(c.tolist() for c in columns)):
        out.setdefault(tuple(key), set()).add(i)
    return {key: sorted(v) for key, v in out.items()}


def column_frame(data: dict[str, object]) -> pd.DataFrame:
    """A frame of these columns, object arrays kept as object (not inferred as ``str``), none copied
    into a consolidated block: that copy would briefly double millions of transfers."""
    return pd.DataFrame({k: pd.Series(v, dtype=object, copy=False) if isinstance(v, np.ndarray) and v.dtype == object
                         else v for k, v in data.items()}, copy=False)
