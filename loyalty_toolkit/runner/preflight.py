"""``validate``: a preflight over a config, running no stage.

For every declared input: readable, encoding and delimiter detected, the mapped columns present,
the row count. Then which stages the program needs and why (``Config.stage_plan``), and whether
every stage that applies has the sources it needs. The result is one table and the stage plan;
any problem makes the command exit 2, before any stage runs. A header-only ledger, opening-balance
or Splio file is zero rows (accounted for like any other); a header-only member export is refused,
since a migration with no member has nothing to migrate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tabulate import tabulate

from loyalty_toolkit.config import Config, load_config
from loyalty_toolkit.errors import LoyaltyError
from loyalty_toolkit.model import notebook_name
from loyalty_toolkit.sources.csvfile import count_records, read_header, sniff

# Canonical fields each input must provide (the rest of a mapping is optional).
REQUIRED_FIELDS = {
    "members": ("legacy_id",),
    "ledger": ("user_id", "record_type", "guestpointsid", "action_date", "points", "effective_start",
               "effective_end", "program", "accrual_center", "payment_center"),
    "opening_balances": ("phone", "email", "opening_revenue", "accumulated_revenue"),
}
SPLIO_REQUIRED = {
    "masterreward": ("external_id", "name", "monetary", "nqp_value", "holding_days", "validity_interval_count",
                     "validity_interval_type", "forced_validity"),
    "earnreward": ("reward_id", "card_code", "attribution_id", "earn_date", "validity_start_date",
                   "validity_end_date"),
    "burnreward": ("card_code", "attribution_id"),
}


# Delimiters a reader cannot see in a table.
DELIMITER_NAMES = {"\t": "tab", " ": "space"}


@dataclass
class PreflightRow:
    input: str
    file: str
    encoding: str = ""
    delimiter: str = ""
    columns: str = ""
    rows: int | None = None
    problem: str = ""


@dataclass
class PreflightReport:
    config: Config
    rows: list[PreflightRow] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [r.problem for r in self.rows if r.problem]

    def stage_plan(self) -> str:
        """One line per stage: whether it runs and why."""
        plan = self.config.stage_plan()
        s = self.config.sources
        why_runs = {
            "subset": "freezes every input" + (f" (subset fraction {self.config.subset.fraction})"
                                              if self.config.subset.fraction < 1 else ""),
            "members": "sources.members",
            "mapping": "sources.target_members" + (" (local rehearsal target)" if s.target_members is not None
                                                   and s.target_members.rehearsal else ""),
            "transfers": " and ".join(n for n, src in (("sources.ledger", s.ledger),
                                                        ("sources.opening_balances", s.opening_balances))
                                      if src is not None),
            "rewards": f"sources.rewards.files ({len(s.rewards.files)} files)" if s.rewards is not None else "",
            "report": "the sign-off report over the stages that apply",
            "verify": ("sources.target_balances" + (" (local rehearsal target)" if s.target_balances.rehearsal else "")
                       if s.target_balances is not None else
                       "after the transfer import; waiting until sources.target_balances is given"),
        }
        lines = ["stages:"]
        for stage, reason in plan.items():
            state = "runs" if reason is None else "not applicable"
            lines.append(f"  {notebook_name(stage):<14}{state:<16}{why_runs[stage] if reason is None else reason}")
        return "\n".join(lines)

    def table(self) -> str:
        """The inputs, one row each; every column as wide as its longest value (tabulate), so a
        long Splio file name never runs into the next column."""
        rows = [(r.input, r.encoding, DELIMITER_NAMES.get(r.delimiter, r.delimiter), r.columns,
                 "" if r.rows is None else f"{r.rows:,}", r.problem or "ok") for r in self.rows]
        return tabulate(rows, headers=("input", "encoding", "delim", "columns", "rows", "status"), tablefmt="simple",
                        colalign=("left", "left", "left", "left", "right", "left"), disable_numparse=True)


def required_headers(config: Config, name: str, header: list[str]) -> list[str]:
    """The headers input ``name`` must have under the config's column mapping."""
    s = config.sources
    if name == "members":
        cmap = s.members.column_map()
        fields = set(REQUIRED_FIELDS["members"]) | set(s.members.columns)
        return [cmap[f] for f in sorted(fields)]
    if name in ("ledger", "opening_balances"):
        cmap = getattr(s, name).column_map()
        return [cmap[f] for f in REQUIRED_FIELDS[name]]
    if name.startswith("rewards/"):
        scope = Path(name).name.split("_")[1] if Path(name).name.count("_") >= 3 else ""
        return list(SPLIO_REQUIRED.get(scope, ()))
    if name == "target_members":
        return ["memberId"]
    return []


def _options(config: Config, name: str) -> tuple[str, str]:
    src = getattr(config.sources, name, None) if "/" not in name else None
    return (src.encoding, src.delimiter) if src is not None and hasattr(src, "encoding") else ("auto", "auto")


def preflight(config_path: str | Path) -> PreflightReport:
    """Check every input of the config; never raises for an input problem, it reports it."""
    config = load_config(config_path)
    report = PreflightReport(config)
    for name, path in config.input_files().items():
        row = PreflightRow(input=name, file=path.name)
        report.rows.append(row)
        try:
            enc, delim = _options(config, name)
            fmt = sniff(path, enc, delim, stage="validate")
            row.encoding, row.delimiter = fmt.encoding, {"\t": "tab"}.get(fmt.delimiter, fmt.delimiter)
            header = read_header(path, fmt, stage="validate")
            need = required_headers(config, name, header)
            missing = [c for c in need if c not in header]
            row.columns = f"{len(need) - len(missing)}/{len(need)} mapped"
            if missing:
                row.problem = f"{path.name}:1: column {missing[0]}: mapped column missing from header" + (
                    f" (+{len(missing) - 1} more)" if len(missing) > 1 else "")
                continue
            row.rows = count_records(path, fmt, stage="validate")
            if name == "members" and row.rows == 0:
                row.problem = f"{path.name}: no data rows (header only)"
        except LoyaltyError as exc:
            row.problem = exc.one_line().removeprefix("[validate] ")
    if config.sources.target_members is None:
        # stage 02 always applies: without the target's IDs no member can be migrated
        report.rows.append(PreflightRow(
            input="target_members", file=config.path.name,
            problem=f"{config.path.name}: sources.target_members: stage 02 (mapping) always runs and needs it "
                    "(rehearsal: true, or path: the target's member export)"))
    return report
