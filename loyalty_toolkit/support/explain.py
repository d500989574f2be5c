"""Explain one member: why the migration gives them the points it gives (``loyalty-migrate explain``).

Pure: :func:`build_story` (``support.explain_story``) turns the member's staging rows
(``store.lookup.member_rows``) into a :class:`MemberStory`; :func:`render_story` turns that into
text, in the order a support engineer asks: who is it, how was it mapped, which lots and
redemptions, which transfers, what did the run's reconciliation say, opening balance, rewards,
rejects, and a closing "why this balance" in exact Decimal arithmetic.

Personal data (names, emails, phones, card numbers) is masked unless ``show_pii``, as in every
report: the text ends up in tickets and chats. Legacy ids, target ids and lot ids are not personal.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from loyalty_toolkit.mask import mask_email, mask_group, mask_identifier, mask_name, mask_phone
from loyalty_toolkit.model import EXPIRED, PENDING, SPENDING
from loyalty_toolkit.sources.ledger.parse import UNITS_PER_POINT
from loyalty_toolkit.stages.transfers.engine import MEMBER_UNMAPPED
from loyalty_toolkit.store import stored_decimal
from loyalty_toolkit.support.explain_story import Lot, MemberStory, Piece, build_story, fmt

__all__ = ["MemberStory", "build_story", "mask_query", "render_story"]


class _Masker:
    """Masks personal data unless ``show_pii``; legacy ids, target ids and lot ids are not personal."""

    def __init__(self, show_pii: bool) -> None:
        self.show = show_pii

    def email(self, v: Any) -> str:
        return str(v or "") if self.show else mask_email(str(v or ""))

    def phone(self, v: Any) -> str:
        return str(v or "") if self.show else mask_phone(str(v or ""))

    card = phone  # a card number keeps its last four digits, as stage 04's reports show it

    def name(self, v: Any) -> str:
        return str(v or "") if self.show else mask_name(str(v or ""))

    def identifier(self, v: Any) -> str:
        return str(v or "") if self.show else mask_identifier(str(v or ""))

    def group(self, v: Any) -> str:
        return str(v or "") if self.show else mask_group(str(v or ""))

    def value(self, column: Any, v: Any) -> str:
        """A reject's or orphan's value, masked by what its column holds ('a|b' pairs part by part)."""
        text, col = str(v if v is not None else ""), str(column or "").lower()
        if self.show or not text:
            return text
        if "name" in col and "_id" not in col:
            return mask_name(text)
        if any(k in col for k in ("email", "phone", "card")):
            return "|".join(mask_identifier(part) for part in text.split("|"))
        return text

    def query(self, text: str, matched_by: list[str]) -> str:
        return mask_query(text, matched_by, show_pii=self.show)


def mask_query(text: str, matched_by: list[str] | None = None, *, show_pii: bool = False) -> str:
    """The member query as it may be shown: masked when it matched (or looks like) an email, a phone
    or a card number, i.e. has an @ or is all digits (separators and + aside)."""
    digits = "".join(ch for ch in text if ch not in " +-.()")
    personal = bool(set(matched_by or []) & {"email", "phone", "card"}) or "@" in text or (
        digits.isdigit() and len(digits) >= 6)
    return mask_identifier(text) if personal and not show_pii else text


def render_story(story: MemberStory, *, show_pii: bool = False) -> str:
    """The story as plain text: sections in the order a support engineer asks their questions,
    ending with the "why this balance" arithmetic."""
    m = _Masker(show_pii)
    out: list[str] = []
    how = ", ".join(story.matched_by) or "legacy id"
    out.append(f"Member {story.legacy_id} (query {m.query(story.query or story.legacy_id, story.matched_by)!r}"
               f" matched by {how})")
    out.append(f"Cutover {story.cutover or '(not recorded)'}. Amounts are points."
               + ("" if show_pii else " Personal data masked (--show-pii shows it)."))
    if story.missing_stages:
        out.append(f"Not in this staging database yet: stage(s) {', '.join(story.missing_stages)} "
                   "did not commit, so their part of the story is missing.")
    for section in (_identifiers, _mapping, _lots, _redemptions, _transfers, _reconciliation, _opening,
                    _rewards, _rejects, _why):
        lines = section(story, m)
        if lines:
            out.append("")
            out.extend(lines)
    return "\n".join(out) + "\n"


def _identifiers(s: MemberStory, m: _Masker) -> list[str]:
    out = ["Identifiers (stage 01)"]
    r = s.member
    if r is None and s.rows.get("members") is None:
        return out + ["  stage 01 has not committed in this run: no member data"]
    if r is None:
        rejected = [x for x in s.table("member_rejects") if x.get("stage") == "members"]
        if rejected:
            why = "; ".join(f"{x['reason_code']} ({x.get('file')} line {x.get('line')})" for x in rejected)
            out.append(f"  not migrated: stage 01 rejected legacy id {s.legacy_id}: {why}")
        else:
            out.append(f"  not in the member export: {s.legacy_id} is a ledger user id that no accepted member has")
        return out
    name = " ".join(p for p in (m.name(r.get("first_name")), m.name(r.get("last_name"))) if p)
    out.append(f"  legacy id  {s.legacy_id}  ({r.get('source_file')} line {r.get('source_line')})")
    out.append(f"  name       {name or '-'}")
    out.append(f"  email      {m.email(r.get('email')) or '-'}")
    out.append(f"  phone      {m.phone(r.get('phone')) or '-'}")
    out.append(f"  card       {m.card(r.get('card_number')) or '-'}")
    out.append(f"  created    {r.get('created_at_utc') or '-'}, base center {r.get('base_center') or '-'}")
    peers = defaultdict(list)
    for p in s.table("duplicate_peers"):
        peers[p["group_id"]].append(str(p["legacy_id"]))
    for group, ids in peers.items():
        out.append(f"  duplicate candidate: {m.group(group)} shared with {', '.join(sorted(ids))} (listed, never merged)")
    return out


def _mapping(s: MemberStory, m: _Masker) -> list[str]:
    if s.rows.get("member_map") is None or s.member is None:
        return []
    out = ["Mapping (stage 02)"]
    mapped = s.table("member_map")
    if mapped:
        out.append(f"  target id {mapped[0]['target_id']}, matched by {mapped[0].get('matched_by')}")
    else:
        out.append("  not mapped: no target member ID, so no points or rewards can be transferred")
    for r in s.table("import_results"):
        msg = f": {r['message']}" if r.get("message") else ""
        out.append(f"  import result: {r.get('status')}{msg}")
    for r in s.table("mapping_review"):
        ident = f" {r.get('identifier')} {m.identifier(r.get('identifier_key'))}" if r.get("identifier") else ""
        out.append(f"  review: {r.get('reason')}{ident}: {r.get('detail')}")
    return out


def _when(lot: Lot) -> str:
    end = lot.row.get("expires_at_utc") or ""
    return f"expires {end}" if end else "no expiry"


def _lots(s: MemberStory, m: _Masker) -> list[str]:
    if s.rows.get("lots") is None:
        return []
    opening = sum(lot.opening for lot in s.lots)
    out = [f"Lots at the cutover (stage 03): {len(s.lots) - opening} from the ledger, {opening} opening"]
    if not s.lots:
        out.append("  none: the ledger holds no accrual of this member up to the cutover")
    for lot in s.lots:
        r = lot.row
        where = (f"opening balance, {r.get('source_file')} line {r.get('line')}" if lot.opening
                 else f"ledger line {r.get('line')}")
        out.append(f"  {r['lot_id']}: accrued {fmt(lot.amount('accrued'))} on {r.get('action_at_utc')} ({where}), "
                   f"{r.get('program')} at {r.get('center')}, {_when(lot)}")
        if lot.pieces:
            used = ", ".join(f"{fmt(p.points)} by line {p.line} ({_method(p)})" for p in lot.pieces)
            out.append(f"      consumed {fmt(lot.amount('consumed'))}: {used}")
        remaining, status = fmt(lot.amount("remaining")), r.get("status")
        if status == EXPIRED:
            tail = (f"{remaining} expired at the cutover (end <= cutover): lost to the member"
                    if lot.amount("remaining") else "nothing left when it expired")
            out.append(f"      expired: {tail}")
        elif status == PENDING:
            out.append(f"      pending: {remaining} owed, locked until {r.get('unlock_at_utc')}")
        else:
            out.append(f"      {status}: {remaining} remaining")
    return out


def _method(p: Piece) -> str:
    text = f"{p.method}: FALLBACK" if p.fallback else p.method
    if p.cross_center:
        text += f", lot earned at {p.lot_center}"
    return text


def _redemptions(s: MemberStory, m: _Masker) -> list[str]:
    if s.rows.get("lot_allocations") is None:
        return []
    out = [f"Redemptions (stage 03): {len(s.redemptions)}"]
    for line, pieces in sorted(s.redemptions.items()):
        total = sum((p.points for p in pieces), Decimal(0))
        paid = ", ".join(f"{p.lot_id} {fmt(p.points)} ({_method(p)})" if p.lot_id
                         else f"NO LOT {fmt(p.points)} (negative balance)" for p in pieces)
        out.append(f"  ledger line {line}: {fmt(total)} at {pieces[0].redemption_center}: {paid}")
    d = s.balance.deficit
    if d:
        held = s.table("transfer_review")
        fate = (f"held for review ({held[0].get('reason')})" if held
                else "carried as a spending transfer" if any(t.get("type") == SPENDING for t in s.table("unit_transfers"))
                else "rejected with the member's lots" if s.balance.rejected else "not transferred")
        out.append(f"  negative balance: {fmt(d)} redeemed beyond every lot (never clipped); {fate}")
    return out


def _transfers(s: MemberStory, m: _Masker) -> list[str]:
    if s.rows.get("unit_transfers") is None:
        return []
    rows = s.table("unit_transfers")
    out = [f"Unit transfers produced (stage 03): {len(rows)}"
           + (f" to target member {s.target_id}" if rows else "")]
    for t in rows:
        extra = f", locked until {t['unlock_at']}" if t.get("unlock_at") else ""
        expiry = f"expires {t['expires_at']}" if t.get("expires_at") else "no expiry"
        out.append(f"  {t['transfer_id']}: {t.get('type')} {t.get('points')} (exact {fmt(stored_decimal(t.get('points_exact')))}, "
                   f"residue {fmt(stored_decimal(t.get('residue')))}), registered {t.get('registered_on')}, {expiry}{extra}; "
                   f"lots {t.get('lot_ids')}")
    for t in s.table("unit_transfers_zero"):
        out.append(f"  not emitted (rounds to 0 points): lots {t.get('lot_ids')}, residue {fmt(stored_decimal(t.get('residue')))}")
    return out


def _reconciliation(s: MemberStory, m: _Masker) -> list[str]:
    rec, per = s.table("reconciliation_member"), s.table("transfer_per_member")
    if not rec and not per:
        return []
    out = ["Reconciliation as the run stored it (stage 03 gate, tolerance zero)"]
    if rec:
        r = {k: fmt(stored_decimal(v)) if k not in ("user_id", "ok") else v for k, v in rec[0].items()}
        out.append(f"  ledger: accrued {r['accrued']} - redeemed {r['redeemed']} - expired {r['expired']} "
                   f"= owed {r['owed_ledger']}")
        out.append(f"  lots: open {r['open']} + pending {r['pending']} - deficit {r['deficit']} = {r['owed_lots']} "
                   f"(difference {r['difference']})")
        out.append(f"  transfers: {r['transfers']} (difference {r['transfer_difference']}): "
                   f"{'ok' if r.get('ok') else 'NOT OK'}")
    if per:
        p = per[0]
        opening = stored_decimal(p.get("opening_units")) / UNITS_PER_POINT
        out.append(f"  per member: transferred {p.get('points')} + residue {fmt(stored_decimal(p.get('residue')))} + rejected "
                   f"{fmt(stored_decimal(p.get('rejected')))} + held for review {fmt(stored_decimal(p.get('review')))} = owed "
                   f"{fmt(stored_decimal(p.get('owed')))} (opening balance {fmt(opening)} included)")
    return out


def _opening(s: MemberStory, m: _Masker) -> list[str]:
    rows = s.table("opening_balances")
    if not rows:
        return []
    unmatched = {u.get("lot_id"): u for u in s.table("opening_unmatched")}
    mine = {lot.row["lot_id"] for lot in s.lots if lot.opening}
    out = ["Opening balances (Haravan) with this member's phone or email"]
    for r in rows:
        head = (f"  {r.get('source_file')} line {r.get('line')}: phone {m.phone(r.get('phone'))}, email "
                f"{m.email(r.get('email'))}, revenue {r.get('opening_revenue')} -> {fmt(stored_decimal(r.get('points_exact')))} "
                f"points, {r.get('points')} whole (conversion residue {fmt(stored_decimal(r.get('residue')))})")
        if r.get("lot_id") in mine:
            fate = f"lot {r['lot_id']} of this member"
        elif r.get("lot_id") in unmatched:
            u = unmatched[r["lot_id"]]
            fate = f"matched no migrated member: {u.get('reason_code')}: {u.get('message')}"
        else:
            fate = "another member's (phone and email must both match)"
        out.append(f"{head}: {fate}")
    return out


def _rewards(s: MemberStory, m: _Masker) -> list[str]:
    if s.rows.get("reward_state") is None:
        return []
    state = s.table("reward_state")
    counts = defaultdict(int)
    for r in state:
        counts[str(r.get("state"))] += 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    out = [f"Rewards (stage 04): {len(state)} earned" + (f" ({summary})" if summary else "")]
    for r in state:
        st = r.get("state")
        when = (f" on {r.get('burned_at_utc')}" if st == "burned" else f", valid until {r.get('validity_end_utc')}")
        out.append(f"  {r.get('attribution_id') or '(auto code)'}: {r.get('reward_external_id')} x{r.get('quantity')}, "
                   f"card {m.card(r.get('card_code'))} ({r.get('file')} line {r.get('line')}): {st}{when}")
    for c in s.table("reward_coupons"):
        out.append(f"  coupon {c.get('code')} of {c.get('reward_external_id')} in {c.get('coupon_file')}, "
                   f"valid until {c.get('validity_end_utc')}")
    return out


def _rejects(s: MemberStory, m: _Masker) -> list[str]:
    orphans = s.table("reference_orphans")
    if not s.rejects and not orphans:
        return ["Rejects touching this member: none"]
    out = [f"Rejects touching this member: {len(s.rejects)}"]
    for r in s.rejects:
        value = m.value(r.get("column"), r.get("value"))
        out.append(f"  [{r.get('stage')}] {r.get('file')} line {r.get('line')}: {r.get('reason_code')} "
                   f"({r.get('column')}{' = ' + repr(value) if value else ''}): {r.get('message')}")
    if orphans:
        out.append(f"Member references that resolve to no target member (stage 02): {len(orphans)}")
    for o in orphans:
        value = m.value(o.get("ref_kind"), o.get("ref_value"))
        out.append(f"  {o.get('file')} line {o.get('line')}: {o.get('ref_kind')} {value}: {o.get('reason')} "
                   f"({o.get('detail')})")
    return out


def _why(s: MemberStory, m: _Masker) -> list[str]:
    if s.rows.get("lots") is None:
        return []
    b = s.balance
    equation = (f"accrued {fmt(b.accrued)} - redeemed {fmt(b.redeemed)} - expired {fmt(b.expired)}"
                f" + opening {fmt(b.opening)} = owed {fmt(b.owed)} = transferred {fmt(b.transferred)}"
                f" + residue {fmt(b.residue)} + rejected {fmt(b.rejected)} + held for review {fmt(b.review)}")
    said: list[str] = []
    if b.deficit:
        said.append(f"the redemptions exceed the lots by {fmt(b.deficit)} (a negative balance, counted in redeemed).")
    fallbacks = sum(1 for pieces in s.redemptions.values() if any(p.fallback for p in pieces))
    if fallbacks:
        said.append(f"{fallbacks} redemption(s) were paid at least partly by a fallback (no usable link, or the "
                    "linked lot ran short: the lot expiring first, then the oldest), marked FALLBACK above.")
    if b.expired:
        said.append(f"{fmt(b.expired)} points expired on lots whose end is at or before the cutover.")
    if b.pending:
        said.append(f"{fmt(b.pending)} of them are pending (owed, locked until their start date).")
    if b.rejected:
        said.append(f"{fmt(b.rejected)} could not be transferred ({MEMBER_UNMAPPED}: no target member ID).")
    if b.review:
        said.append(f"{fmt(-b.review)} of negative balance is held for review, not sent.")
    if b.residue:
        said.append(f"Rounding to whole points left a residue of {fmt(b.residue)}, logged per transfer.")
    if b.unmatched_opening:
        said.append(f"An opening balance of {fmt(b.unmatched_opening)} points matched this member but could not "
                    "become a lot (see the opening balances); it stays in the liability as unmatched.")
    if s.ledger_rejects:
        lines = ", ".join(f"line {r.get('line')} ({r.get('reason_code')}, {r.get('value') or 'no value'})"
                          for r in s.ledger_rejects)
        said.append(f"{len(s.ledger_rejects)} ledger row(s) were refused and count in none of these figures: {lines}.")
    ties = b.owed == b.accounted and b.owed == b.owed_lots
    out = ["Why this balance", f"  {equation}.",
           f"  {s.legacy_id} is owed {fmt(b.owed)} points at the cutover" + (": " + " ".join(said) if said else ".")]
    if ties:
        out.append(f"  Both sides tie exactly ({fmt(b.owed)} = {fmt(b.accounted)}), as the run's gate proved.")
    else:
        out.append(f"  DOES NOT TIE: owed {fmt(b.owed)}, lots {fmt(b.owed_lots)}, accounted {fmt(b.accounted)} "
                   "(the stored rows disagree with the gate's proof: report it)")
    stored = s.table("reconciliation_member")
    if stored and stored_decimal(stored[0].get("owed_ledger")) != b.owed - b.opening:
        out.append(f"  The stored reconciliation says the ledger owes {fmt(stored_decimal(stored[0].get('owed_ledger')))}, "
                   f"the rows {fmt(b.owed - b.opening)}: report it.")
    return out
