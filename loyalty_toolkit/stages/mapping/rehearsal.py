"""``rehearse-import``: import a run's members XML into the local rehearsal target.

This is a rehearsal, not the platform. It applies the target profile's member-import rules
(:mod:`loyalty_toolkit.targets.ol_profiles`, applied by :mod:`loyalty_toolkit.targets.ol_rehearsal`), assigns member IDs that look random but come from a
seeded generator (so a rehearsal replays byte for byte), and writes what the real platform gives
back: the per-item import result and a member export in the platform's format, under
``RUN_DIR/rehearsal/``. Stage 02 then maps members exactly as it would against a real export.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from loyalty_toolkit.errors import UsageError
from loyalty_toolkit.sources.target_members import write_target_members_csv
from loyalty_toolkit.store.rehearsal import RehearsalTargetStore
from loyalty_toolkit.targets.ol_profiles import Profile
from loyalty_toolkit.targets.ol_rehearsal import ExistingIdentifiers, RehearsalImport, iter_members_xml, result_json

NOTICE = ("REHEARSAL: these files come from loyalty-migrate's local emulation of the target's member "
          "import rules, not from the platform. Member IDs here are not the platform's.\n")


@dataclass
class RehearsalResult:
    folder: Path
    import_result: Path
    members_export: Path
    totals: dict[str, int]


def _id_factory(seed: int, xml_files: list[Path]):
    """UUIDv4-shaped IDs from a generator seeded by the seed and the XML content."""
    h = hashlib.sha256(str(seed).encode())
    for f in xml_files:
        h.update(f.read_bytes())
    rng = random.Random(h.digest())
    return lambda: uuid.UUID(int=rng.getrandbits(128), version=4)


def rehearse_import(run_dir: str | Path, *, seed: int = 0, fresh: bool = True,
                    profile: Profile | None = None) -> RehearsalResult:
    """Import ``RUN_DIR/output/openloyalty/members_*.xml`` into the rehearsal target, applying the
    target profile's member rules (default ``hosted``; stage 02 passes the config's).

    ``fresh`` starts from an empty target (what stage 02 does, so a re-run replays); without it
    the members of earlier rehearsal imports stay, and importing them again is refused as the
    platform would refuse it.
    """
    run_dir = Path(run_dir)
    xml_files = sorted((run_dir / "output" / "openloyalty").glob("members_*.xml"))
    if not xml_files:
        raise UsageError("no members XML to import; stage 01 must pass first", file=str(run_dir / "output"))
    folder = run_dir / "rehearsal"
    new_id = _id_factory(seed, xml_files)
    items: list[dict] = []
    with RehearsalTargetStore(folder / "target.db", fresh=fresh) as target:
        existing = ExistingIdentifiers.from_members(target.members())
        for xml in xml_files:
            outcome = RehearsalImport(profile=profile).import_customers(iter_members_xml(xml), existing,
                                                                        id_factory=new_id)
            result = result_json(outcome)
            target.record_import(xml.name, outcome.new_members, {k: result[k] for k in
                                                                 ("totalProcessed", "totalSuccess", "totalFailed")})
            # what the target holds now, without reading every member back once per file
            existing = existing.with_members(outcome.new_members)
            items.extend(outcome.items)
        export = target.members()
    combined = {"rehearsal": True, "items": items, "totalProcessed": len(items),
                "totalSuccess": sum(i["status"] == "success" for i in items),
                "totalFailed": sum(i["status"] != "success" for i in items)}
    result_path = folder / "import_result.json"
    result_path.write_text(json.dumps(combined, ensure_ascii=False) + "\n", encoding="utf-8")
    export_path = write_target_members_csv(export if len(export) else pd.DataFrame(columns=["target_id"]),
                                           folder / "members_export.csv")
    (folder / "README.txt").write_text(NOTICE, encoding="utf-8")
    return RehearsalResult(folder, result_path, export_path,
                           {k: combined[k] for k in ("totalProcessed", "totalSuccess", "totalFailed")})
