"""Stage 00, test subset: freeze every input into the run dir, optionally as a rehearsal subset.

The frozen copies (``RUN_DIR/inputs/...``) are what every later stage reads, so a run can be
replayed from its own folder. Their path, size, sha256 and row count go to ``inputs/inputs.json``
(the runner copies them into ``manifest.json``) and to the ``inputs`` staging table.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from loyalty_toolkit.sources.csvfile import CsvTable, count_records, read_table, sniff, to_frame, write_records
from loyalty_toolkit.stages.context import INPUTS_FILE, StageContext, StageFigures, file_sha256
from loyalty_toolkit.stages.subset import selection as logic


def frozen_relpath(name: str, source: Path) -> str:
    """``inputs/members/<file>``; reward files keep their Splio names under ``inputs/rewards/``."""
    folder = "rewards" if name.startswith("rewards/") else name
    return f"inputs/{folder}/{source.name}"


@dataclass
class SubsetOutcome:
    inputs: pd.DataFrame           # one row per input: rows read, kept, left out, sha256 ...
    members: pd.DataFrame          # chosen member lines and why (empty when fraction == 1)
    fraction: float

    def figures(self) -> StageFigures:
        return StageFigures(rows_in=int(self.inputs["rows_read"].sum()), rows_out=int(self.inputs["rows_kept"].sum()),
                            rows_rejected=0, totals={"fraction": self.fraction,
                                                      "rows_left_out": int(self.inputs["rows_left_out"].sum()),
                                                      "inputs": len(self.inputs)})

    def reasons(self) -> pd.DataFrame:
        """How many chosen members came in by hash and by each defect example."""
        if self.members.empty:
            return pd.DataFrame({"reason": ["all members (fraction = 1)"], "members": [None]})
        return self.members.groupby("reason").size().rename("members").reset_index()


def _source_options(ctx: StageContext, name: str) -> tuple[str, str]:
    src = getattr(ctx.config.sources, name, None) if "/" not in name else None
    if src is not None and hasattr(src, "encoding"):
        return src.encoding, src.delimiter
    return "auto", "auto"


def _select(ctx: StageContext, tables: dict[str, CsvTable]) -> tuple[dict[str, list[int]], pd.DataFrame]:
    """Indices of the records kept per input, and the chosen members with their reasons."""
    cfg = ctx.config
    msrc = cfg.sources.members
    members = to_frame(tables["members"], msrc.column_map())
    classes = logic.member_classes(members, source_file=tables["members"].path.name, default_region=msrc.default_region,
                                   timezone=msrc.timezone, date_format=msrc.date_format)
    sel = logic.select_members(members, fraction=cfg.subset.fraction, salt=cfg.subset.salt, classes=classes)
    line_index = {int(ln): i for i, ln in enumerate(members["_line"])}
    id_index: dict[str, int] = {}
    for ln, key in zip(members["_line"], members["legacy_id"].str.strip()):
        id_index.setdefault(key, int(ln))
    all_ids = set(id_index)
    ledger = None
    if "ledger" in tables:
        ledger = to_frame(tables["ledger"], cfg.sources.ledger.column_map())
        classes_l = logic.ledger_classes(ledger, all_ids=all_ids, cutover=cfg.migration.cutover)
        chosen_ids = {members["legacy_id"].iloc[line_index[ln]].strip() for ln in sel.lines}
        keep = ledger["user_id"].str.strip().isin(chosen_ids)
        for name, mask in classes_l.items():  # pull in the owner of one example row per class
            if mask.any() and not (mask & keep).any():
                owner = ledger["user_id"].iloc[int(mask.to_numpy().argmax())].strip()
                if owner in id_index:
                    sel.add(id_index[owner], f"example:ledger:{name}")
    chosen = members.iloc[sorted(line_index[ln] for ln in sel.lines)]
    keys = logic.MemberKeys.of(chosen, msrc.default_region)
    kept: dict[str, list[int]] = {"members": sorted(line_index[ln] for ln in sel.lines)}

    if ledger is not None:
        keep = ledger["user_id"].str.strip().isin(keys.legacy_ids)
        keep = logic.select_rows(ledger, keep, logic.ledger_classes(ledger, all_ids=all_ids,
                                                                     cutover=cfg.migration.cutover))
        # An unknown member's example brings all of that user's rows, so its story is complete.
        unknown = keep & ~ledger["user_id"].str.strip().isin(all_ids)
        keep |= ledger["user_id"].isin(set(ledger.loc[unknown, "user_id"]))
        kept["ledger"] = list(keep[keep].index)
    if "opening_balances" in tables:
        ob = to_frame(tables["opening_balances"], cfg.sources.opening_balances.column_map())
        ekey, phone = logic.opening_keys(ob, cfg.phone_region("opening_balances"))
        keep = ekey.isin(keys.email_keys) | phone.isin(keys.phones)
        all_members = logic.MemberKeys.of(members, msrc.default_region)
        unmatched = ~(ekey.isin(all_members.email_keys) | phone.isin(all_members.phones))
        kept["opening_balances"] = list(logic.select_rows(ob, keep, {"unmatched": unmatched})[lambda s: s].index)
    attributions: set[str] = set()
    for name in sorted(n for n in tables if n.startswith("rewards/")):
        t = tables[name]
        frame = pd.DataFrame(t.rows, columns=t.header, dtype=str) if t.rows else pd.DataFrame(columns=t.header, dtype=str)
        scope = name.split("_")[1] if "_" in name else ""
        if scope == "masterreward" or "card_code" not in frame.columns:
            kept[name] = list(range(len(frame)))
            continue
        cards = frame["card_code"].str.strip()
        keep = cards.isin(keys.cards)
        classes_r = {"unknown_card": ~cards.isin(set(members["card_number"].str.strip()))}
        if scope == "burnreward" and "attribution_id" in frame.columns:
            att = frame["attribution_id"].str.strip()
            keep |= att.isin(attributions)
            classes_r["unknown_attribution"] = ~att.isin(attributions) & keep.eq(False)
        keep = logic.select_rows(frame, keep, classes_r)
        if scope == "earnreward" and "attribution_id" in frame.columns:
            attributions |= set(frame.loc[keep, "attribution_id"].str.strip())
        kept[name] = list(keep[keep].index)
    chosen_frame = pd.DataFrame({"line": sorted(sel.lines), "legacy_id": [members["legacy_id"].iloc[line_index[ln]]
                                                                          for ln in sorted(sel.lines)],
                                 "reason": [sel.lines[ln] for ln in sorted(sel.lines)]})
    return kept, chosen_frame


def run(ctx: StageContext) -> SubsetOutcome:
    """Freeze every declared input into ``RUN_DIR/inputs`` (a subset when fraction < 1)."""
    cfg = ctx.config
    fraction = cfg.subset.fraction
    sources = cfg.input_files()
    tables: dict[str, CsvTable] = {}
    if fraction < 1:
        for name, path in sources.items():
            enc, delim = _source_options(ctx, name)
            tables[name] = read_table(path, encoding=enc, delimiter=delim, keep_raw=True,
                                      allow_empty=name != "members", stage=ctx.stage)
        kept, chosen = _select(ctx, tables)
    else:
        kept, chosen = {}, pd.DataFrame(columns=["line", "legacy_id", "reason"])
    rows = []
    record = {}
    for name, path in sources.items():
        rel = frozen_relpath(name, path)
        dest = ctx.run_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if fraction < 1:
            t = tables[name]
            idx = kept.get(name, list(range(len(t.rows))))
            write_records(dest, t.format, t.header_raw, (t.raw[i] for i in idx))
            fmt, read, kept_n = t.format, len(t.rows), len(idx)
        else:
            enc, delim = _source_options(ctx, name)
            fmt = sniff(path, enc, delim, stage=ctx.stage)
            read = count_records(path, fmt)
            shutil.copyfile(path, dest)
            kept_n = read
        digest = file_sha256(dest)
        # Recount the frozen copy independently: the gate checks it holds exactly the rows chosen.
        written = count_records(dest, fmt)
        info = {"source_path": str(path), "frozen_path": rel, "size": dest.stat().st_size, "sha256": digest,
                "source_sha256": file_sha256(path), "rows_read": read, "rows_kept": kept_n,
                "encoding": fmt.encoding, "delimiter": fmt.delimiter}
        record[name] = info
        rows.append({"input": name, "file": path.name, "encoding": fmt.encoding,
                     "delimiter": {"\t": "tab"}.get(fmt.delimiter, fmt.delimiter), "rows_read": read,
                     "rows_kept": kept_n, "rows_left_out": read - kept_n, "rows_written": written,
                     "size": info["size"], "sha256": digest, "source_sha256": info["source_sha256"],
                     "copy_identical": (digest == info["source_sha256"]) if fraction >= 1 else True})
    (ctx.run_dir / INPUTS_FILE).write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
    return SubsetOutcome(inputs=pd.DataFrame(rows), members=chosen, fraction=fraction)


def gate(ctx: StageContext, outcome: SubsetOutcome):
    """Run the stage's suites over the frozen-inputs table."""
    return ctx.gate(_tables(outcome))


def commit(ctx: StageContext, outcome: SubsetOutcome, gate_report) -> None:
    """Record the figures and commit the tables; raises GateFailed on a critical failure."""
    ctx.finish(gate_report, outcome.figures(), _tables(outcome), parameters={"fraction": outcome.fraction})


def _tables(outcome: SubsetOutcome) -> dict[str, pd.DataFrame]:
    return {"inputs": outcome.inputs, "subset_members": outcome.members}
