"""The config's sources: which legacy exports and target exports a migration reads, with the
column maps of their formats (seeds 003 and 004) and the checks each file's settings get on load.

Split from ``loyalty_toolkit.config``, which re-exports every name here: a source is what a stage
reads, the rest of the config is what the migration decides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from loyalty_toolkit.yaml_marks import text_codec

# Canonical member fields -> column header in the legacy export (the demo's defaults).
MEMBER_COLUMNS: dict[str, str] = {
    "legacy_id": "guest_id",
    "first_name": "first_name",
    "last_name": "last_name",
    "email": "email",
    "phone": "mobile_phone",
    "card_number": "card_number",
    "birth_date": "date_of_birth",
    "gender": "gender",
    "created_at": "created_at",
    "base_center": "base_center",
}
MEMBER_REQUIRED = ("legacy_id",)

# Canonical ledger fields -> Zenoti "Loyalty Points Liability" column names (seed 004).
LEDGER_COLUMNS: dict[str, str] = {
    "user_id": "user id",
    "record_type": "record type name",
    "guestpointsid": "guestpointsid",
    "action_date": "action date",
    "action_name": "action name",
    "points": "Loyalty Points",
    "effective_start": "effective start date",
    "effective_end": "effective end date",
    "program": "program name",
    "accrual_center": "accrual center name",
    "payment_center": "payment center name",
    "accrual_center_minutes": "accrual center minutes to add",
    "payment_center_minutes": "payment center minutes to add",
    "previous_tier": "previous tier name",
    "current_tier": "current tier name",
    "accrual_tier": "accrual tier name",
    "invoice_id": "invoiceid",
    "invoice_no": "invoiceno",
}

# Canonical opening-balance fields -> Haravan template columns (seed 003).
OPENING_COLUMNS: dict[str, str] = {
    "phone": "phone",
    "email": "email",
    "opening_revenue": "DTDauKy",
    "accumulated_revenue": "DTTichLuy",
}


Encoding = Annotated[str, AfterValidator(text_codec)]  # auto, or a text encoding Python knows


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CsvSource(_Strict):
    """A delimited legacy export."""

    path: Path
    encoding: Encoding = "auto"
    delimiter: str = "auto"
    timezone: str = "UTC"
    columns: dict[str, str] = Field(default_factory=dict)

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, v: str) -> str:
        if v != "auto" and v not in {",", ";", "\t", "|"}:
            raise ValueError("must be auto, ',', ';', '|' or a tab")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA timezone: {v}") from None
        return v


class MembersSource(CsvSource):
    """The legacy member export (stage 01)."""

    default_region: str = "FR"
    date_format: str | None = None  # strftime pattern of birth dates; None = ISO, then day-first guesses

    def column_map(self) -> dict[str, str]:
        return {**MEMBER_COLUMNS, **self.columns}

    @field_validator("columns")
    @classmethod
    def _known(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(MEMBER_COLUMNS))
        if unknown:
            raise ValueError(f"unknown member field(s) {unknown}; known: {sorted(MEMBER_COLUMNS)}")
        return v


class LedgerSource(CsvSource):
    """The Zenoti-style points-liability export (stage 03)."""

    def column_map(self) -> dict[str, str]:
        return {**LEDGER_COLUMNS, **self.columns}

    @field_validator("columns")
    @classmethod
    def _known(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(LEDGER_COLUMNS))
        if unknown:
            raise ValueError(f"unknown ledger field(s) {unknown}; known: {sorted(LEDGER_COLUMNS)}")
        return v


class OpeningBalancesSource(CsvSource):
    """The Haravan-style opening-balance file (stage 03)."""

    default_region: str | None = None  # phones without +country; None = the members' region

    def column_map(self) -> dict[str, str]:
        return {**OPENING_COLUMNS, **self.columns}


class RewardsSource(_Strict):
    """Splio reward files, named ``universe_scope_subsection_YYYYMMDD.csv`` (stage 04)."""

    files: list[Path]
    timezone: str = "Etc/GMT-1"  # Splio states its dates are GMT+1 (POSIX sign is inverted)


class TargetMembersSource(_Strict):
    """The target platform's member export, with the IDs it assigned (stage 02).

    With a real platform: ``path`` is the member export downloaded after importing the members XML,
    and ``import_result`` the platform's per-item import result, if it gave one. With
    ``rehearsal: true`` stage 02 first imports the run's members XML into the local rehearsal
    target (``loyalty-migrate rehearse-import``) and reads the export and result it writes.
    """

    path: Path | None = None
    import_result: Path | None = None
    rehearsal: bool = False
    rehearsal_seed: int = 0  # seeds the rehearsal's random member IDs, so a rehearsal replays
    default_region: str | None = None  # phones in the export without +country; None = the members' region

    @model_validator(mode="after")
    def _one_source(self) -> TargetMembersSource:
        if self.rehearsal == (self.path is not None):
            raise ValueError("set either rehearsal: true or path: <the target's member export>")
        return self


# Canonical fields of the target's balance export -> its headers (the rehearsal target's by default).
BALANCE_EXPORT_COLUMNS: dict[str, str] = {"target_id": "memberId", "balance": "points"}


class TargetBalancesSource(_Strict):
    """The target's member balance export taken after the unit-transfer import (stage 06, verify).

    ``path`` is that export; ``before`` the one taken before the import, when members already held
    points there; ``columns`` maps ``target_id`` and ``balance`` to its headers. With ``rehearsal:
    true`` stage 06 first imports the run's transfer files into the local rehearsal target and reads
    the export it writes.
    """

    path: Path | None = None
    before: Path | None = None
    rehearsal: bool = False
    encoding: str = "auto"
    delimiter: str = "auto"
    columns: dict[str, str] = Field(default_factory=dict)

    def column_map(self) -> dict[str, str]:
        return {**BALANCE_EXPORT_COLUMNS, **self.columns}

    @field_validator("columns")
    @classmethod
    def _known(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(BALANCE_EXPORT_COLUMNS))
        if unknown:
            raise ValueError(f"unknown balance export field(s) {unknown}; known: {sorted(BALANCE_EXPORT_COLUMNS)}")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> TargetBalancesSource:
        if self.rehearsal == (self.path is not None):
            raise ValueError("set either rehearsal: true or path: <the target's balance export after the import>")
        return self


# Canonical fields of Splio's master reward export -> column header (the rehearsal's own headers).
REWARD_EXPORT_COLUMNS: dict[str, str] = {
    "external_id": "external_id",
    "internal_id": "id",
}


class RewardMasterExport(_Strict):
    """Splio's master reward export, with the internal ids Splio assigned (stage 04, step two).

    Splio names a master reward in earnreward files by its internal id, which exists only once the
    masterreward file is imported. With a real universe: ``path`` is the export downloaded after
    that import, ``columns`` maps ``external_id`` and ``internal_id`` to its headers. With
    ``rehearsal: true`` stage 04 imports its own masterreward file into a local rehearsal that
    assigns internal ids from a seeded generator, and reads the export it writes.
    """

    path: Path | None = None
    rehearsal: bool = False
    rehearsal_seed: int = 0  # seeds the rehearsal's internal ids, so a rehearsal replays
    encoding: Encoding = "auto"
    delimiter: str = "auto"
    columns: dict[str, str] = Field(default_factory=dict)

    def column_map(self) -> dict[str, str]:
        return {**REWARD_EXPORT_COLUMNS, **self.columns}

    @field_validator("columns")
    @classmethod
    def _known(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(REWARD_EXPORT_COLUMNS))
        if unknown:
            raise ValueError(f"unknown master reward export field(s) {unknown}; known: {sorted(REWARD_EXPORT_COLUMNS)}")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> RewardMasterExport:
        if self.rehearsal == (self.path is not None):
            raise ValueError("set either rehearsal: true or path: <Splio's master reward export>")
        return self


class Sources(_Strict):
    members: MembersSource
    ledger: LedgerSource | None = None
    opening_balances: OpeningBalancesSource | None = None
    rewards: RewardsSource | None = None
    target_members: TargetMembersSource | None = None
    target_balances: TargetBalancesSource | None = None
    reward_master_export: RewardMasterExport | None = None
