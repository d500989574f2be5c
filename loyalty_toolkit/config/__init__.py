"""The migration config: one YAML file per migration, validated on load.

Paths are relative to the config file. Errors name the file and the field, for example
``migration.yml: sources.members.path: no such file: legacy/guests.csv``. Unknown keys are
errors too: a typo in a config must not silently fall back to a default. Field-by-field
documentation is in docs/config.md.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from loyalty_toolkit.config.sources import (  # noqa: F401  (re-exported: the config's public names)
    BALANCE_EXPORT_COLUMNS, LEDGER_COLUMNS, MEMBER_COLUMNS, MEMBER_REQUIRED, OPENING_COLUMNS, REWARD_EXPORT_COLUMNS,
    CsvSource, Encoding, LedgerSource, MembersSource, OpeningBalancesSource, RewardMasterExport, RewardsSource,
    Sources, TargetBalancesSource, TargetMembersSource, _Strict,
)
from loyalty_toolkit.errors import ConfigError
from loyalty_toolkit.model import STAGE_NAMES
from loyalty_toolkit.yaml_marks import check_directory, decode_config, field_position, load_yaml, placed


class Migration(_Strict):
    name: str
    cutover: datetime
    output_dir: Path = Path("runs")

    @field_validator("cutover")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2026-06-30T23:59:59+00:00")
        return v

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v


class Subset(_Strict):
    fraction: float = Field(1.0, gt=0, le=1)
    salt: str = "loyalty-migrate"


class OpenLoyaltyMembers(_Strict):
    active: bool = True
    agreement1: bool = False
    send_activation_mail: bool = False
    max_file_mb: float = Field(95.0, gt=0, lt=100)


# Open Loyalty target profiles (the rule tables live in targets/ol_profiles.py; a test keeps the names in step).
OPENLOYALTY_PROFILES = ("hosted", "oss-3")


class OpenLoyaltySettings(_Strict):
    """The target's global points settings, which a profile that ignores per-transfer expiry and lock
    (oss-3: pointsDaysActive, pointsDaysLocked) applies to every imported transfer."""

    points_days_active: int | None = Field(None, gt=0)  # None: points never expire at the target
    points_days_locked: int = Field(0, ge=0)


class OpenLoyalty(_Strict):
    profile: str = "hosted"  # which importer the files are for: the hosted platform or the OSS 3.x one
    members: OpenLoyaltyMembers = OpenLoyaltyMembers()
    settings: OpenLoyaltySettings | None = None  # required when the profile ignores expiry or lock (oss-3)


class Targets(_Strict):
    openloyalty: OpenLoyalty = OpenLoyalty()


ROUNDING_MODES = ("ROUND_DOWN", "ROUND_HALF_UP", "ROUND_HALF_EVEN", "ROUND_UP", "ROUND_FLOOR", "ROUND_CEILING")


def _rounding_mode(v: str) -> str:
    """A ``decimal`` rounding mode by name; the config names it, the stages apply it."""
    if v not in ROUNDING_MODES:
        raise ValueError(f"must be one of {', '.join(ROUNDING_MODES)}")
    return v


class OpeningRule(_Strict):
    """How a Haravan opening revenue (DTDauKy) becomes points: ``points`` per ``amount`` of money."""

    amount: Decimal = Decimal("10000")
    points: Decimal = Decimal("1")
    rounding: str = "ROUND_DOWN"
    validity_days: int | None = Field(365, gt=0)  # None = the imported points never expire
    action_name: str = "Imported Points"

    @field_validator("rounding")
    @classmethod
    def _mode(cls, v: str) -> str:
        return _rounding_mode(v)


class Transfers(_Strict):
    """Stage 03: how open lots become the target's unit transfers."""

    wallet_type_code: str = "default"
    granularity: Literal["lot", "member_expiry"] = "lot"
    rounding: str = "ROUND_HALF_EVEN"  # the target refuses fractions: round once, report the residue
    negative_balance: Literal["carry", "review"] = "review"
    point_value: Decimal | None = None  # money per point, for the liability roll-forward
    currency: str = "EUR"
    formats: list[Literal["json", "xml"]] = Field(default_factory=lambda: ["json", "xml"])
    opening: OpeningRule = OpeningRule()

    @field_validator("rounding")
    @classmethod
    def _mode(cls, v: str) -> str:
        return _rounding_mode(v)


class Rewards(_Strict):
    """Stage 04: how rewards go to Splio (docs/rewards.md, "Two steps")."""

    # The day the earnreward file is imported: every earn_date written is on it (Splio: "the import
    # day or after"). Required when rewards are migrated as earned; on or after the cutover's day.
    import_date: date | None = None
    historical: bool = False  # also write burned and expired rewards as history files (outside the spec)
    erase_on_null: bool = False  # NULL erases a stored value (a universe option in Splio)
    reward_id_map: dict[str, str] = Field(default_factory=dict)  # legacy internal id -> external_id


class MappingGates(_Strict):
    min_member_coverage: float = Field(1.0, ge=0, le=1)


class Gates(_Strict):
    mapping: MappingGates = MappingGates()


class Run(_Strict):
    cell_timeout_seconds: int = Field(1800, gt=0)
    show_pii: bool = False


class Config(_Strict):
    """A validated migration config; ``path`` is the YAML file it came from."""

    migration: Migration
    sources: Sources
    subset: Subset = Subset()
    targets: Targets = Targets()
    gates: Gates = Gates()
    transfers: Transfers = Transfers()
    rewards: Rewards = Rewards()
    run: Run = Run()
    path: Path = Field(exclude=True)

    @property
    def root(self) -> Path:
        return self.path.parent

    def output_root(self) -> Path:
        return _resolve(self.root, self.migration.output_dir)

    def input_files(self) -> dict[str, Path]:
        """The legacy inputs stage 00 freezes, as ``{name: absolute path}``; reward files are
        ``rewards/<file>``. The target's export is a late input, frozen by stage 02."""
        out: dict[str, Path] = {}
        s = self.sources
        for name in ("members", "ledger", "opening_balances"):
            src = getattr(s, name)
            if src is not None:
                out[name] = src.path
        if s.rewards is not None:
            for p in s.rewards.files:
                out[f"rewards/{p.name}"] = p
        return out

    def stage_plan(self) -> dict[str, str | None]:
        """Which stages this program needs: ``{stage: None}`` when it applies, else the reason it
        does not (``not_applicable``). Members, mapping and the report always apply; transfers when
        a ledger or opening balances are configured, and so does the verify step after the import;
        rewards when reward files are."""
        s = self.sources
        plan: dict[str, str | None] = {name: None for name in STAGE_NAMES}
        if s.ledger is None and s.opening_balances is None:
            plan["transfers"] = "no sources.ledger and no sources.opening_balances: the program has no points"
        if s.rewards is None or not s.rewards.files:
            plan["rewards"] = "no sources.rewards.files: the program has no rewards"
        if plan["transfers"] is not None:
            plan["verify"] = "no points transferred: nothing to verify at the target"
        return plan

    def stage_applies(self, stage: str) -> bool:
        return self.stage_plan()[stage] is None

    def phone_region(self, source: str) -> str:
        """The region national-format phones of ``source`` are read in: the source's own
        ``default_region`` (members, opening_balances, target_members), else the members'."""
        src = getattr(self.sources, source, None)
        region = getattr(src, "default_region", None)
        return region or self.sources.members.default_region

    def resolved(self) -> dict[str, Any]:
        """The config as plain JSON data (paths absolute), for the manifest."""
        return json.loads(self.model_dump_json())

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.resolved(), sort_keys=True).encode()).hexdigest()


def _resolve(root: Path, p: Path) -> Path:
    return p if p.is_absolute() else (root / p).resolve()


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(x) for x in loc)


def _resolve_paths(data: dict[str, Any], root: Path, cfg_name: str) -> None:
    """Make every source path absolute and check that it exists, naming the field when not."""
    sources = data.get("sources")
    if not isinstance(sources, dict):
        return
    for name, src in sources.items():
        if not isinstance(src, dict):
            continue
        if "path" in src and isinstance(src["path"], str):
            raw = src["path"]
            p = _resolve(root, Path(raw))
            if not p.is_file():
                raise ConfigError(f"no such file: {raw}", file=cfg_name, field=f"sources.{name}.path")
            src["path"] = str(p)
        for key in ("import_result", "before"):
            if key in src and isinstance(src[key], str):
                raw = src[key]
                p = _resolve(root, Path(raw))
                if not p.is_file():
                    raise ConfigError(f"no such file: {raw}", file=cfg_name, field=f"sources.{name}.{key}")
                src[key] = str(p)
        if "files" in src and isinstance(src["files"], list):
            files = []
            for i, raw in enumerate(src["files"]):
                p = _resolve(root, Path(str(raw)))
                if not p.is_file():
                    raise ConfigError(f"no such file: {raw}", file=cfg_name, field=f"sources.{name}.files.{i}")
                files.append(str(p))
            src["files"] = files


def parse_config(text: str, path: Path) -> Config:
    """Validate config text as if it were the file at ``path`` (used by load and by tests)."""
    name = path.name
    data = load_yaml(text, name)
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping with migration: and sources:", file=name)
    try:
        _resolve_paths(data, path.parent.resolve(), name)
    except ConfigError as exc:
        raise placed(exc, text) from None
    data["path"] = str(path.resolve())
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _field_path(err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; docs/config.md lists every field)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        line, column = field_position(text, tuple(err["loc"]), key=err["type"] == "extra_forbidden")
        raise ConfigError(msg, file=name, field=field, line=line, column=column) from None
    _check_import_date(cfg, text, name)
    _check_profile(cfg, text, name)
    check_directory(cfg.output_root(), text, name, ("migration", "output_dir"))
    return cfg


def _check_profile(cfg: Config, text: str, name: str) -> None:
    """An unknown target profile is named with its line and column (the tables would not know it)."""
    value = cfg.targets.openloyalty.profile
    if value not in OPENLOYALTY_PROFILES:
        line, column = yaml_position(text, ("targets", "openloyalty", "profile"))
        raise ConfigError(f"unknown target profile {value!r}; known: {', '.join(OPENLOYALTY_PROFILES)}",
                          file=name, line=line, column=column, field="targets.openloyalty.profile")


def splio_import_floor(cfg: Config) -> date:
    """The earliest import day Splio's earn files may carry: the cutover's day in Splio's timezone."""
    from zoneinfo import ZoneInfo

    tz = cfg.sources.rewards.timezone if cfg.sources.rewards is not None else RewardsSource.model_fields[
        "timezone"].default
    return cfg.migration.cutover.astimezone(ZoneInfo(tz)).date()


def _check_import_date(cfg: Config, text: str, name: str) -> None:
    """``rewards.import_date`` is a day the legacy program has stopped by: not before the cutover's
    day (Splio's timezone), else the rewards would be earned in Splio before the cutover."""
    day = cfg.rewards.import_date
    if day is None:
        return
    floor = splio_import_floor(cfg)
    if day < floor:
        line, column = yaml_position(text, ("rewards", "import_date"))
        raise ConfigError(f"import day {day} is before the cutover ({cfg.migration.cutover.isoformat()}, "
                          f"{floor} in Splio's timezone)", file=name, line=line, column=column,
                          field="rewards.import_date")


def yaml_position(text: str, keys: tuple[str, ...]) -> tuple[int | None, int | None]:
    """1-based line and column of the value at ``keys`` in YAML ``text`` (see ``yaml_marks``)."""
    return field_position(text, keys)


def load_config(path: str | Path) -> Config:
    """Read and validate the YAML config at ``path``."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("no such config file", file=str(path))
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror or exc}", file=p.name) from None
    return parse_config(decode_config(data, p.name), p)
