"""Open Loyalty target profiles: what each flavour of the platform accepts, as one table of rules each.

``hosted`` is the current platform, whose rules come from its help pages only; ``oss-3`` is the
open-source 3.x importer, whose rules come from its code (repository DivanteLtd/open-loyalty-framework,
paths below relative to ``src/OpenLoyalty/``). Every rule names its source. The member writer, the
rehearsal target, the hold-back list and the gates read these tables and nothing else, so a rule is
changed here once. ``docs/targets.md`` prints the tables (``render_markdown``; a test keeps it in step).

Member rules are listed in the order the importer applies them: the first rule a member breaks is
the one it is refused with. Rule kinds:

* ``required``: the element must be present (oss-3: the node exists, XmlNodeValidator.php:42);
  ``required_value``: present and not blank;
* ``any_of``: at least one of the ``|``-separated elements is present and not blank;
* ``format``: ``value`` is ``bool``, ``date`` (strict: a real YYYY-MM-DD day), ``date_php`` (what
  PHP's ``createFromFormat('Y-m-d')`` takes: the shape only, 1990-02-30 passes), ``uuid`` or
  ``enum:a|b``; ``when`` says which values are looked at: ``present`` (text that is not blank),
  ``node`` (the element is there, even empty), ``php_nonempty`` (PHP's ``empty()`` is false: not
  '' nor '0', XmlNodeValidator.php:82, 91) or ``always`` (an absent element reads as '');
* ``unique``: refused when an earlier member (in the target or the same file) holds the same value
  (``value`` ``lower``: compared lower-cased);
* ``transfer_*``, ``file_*``, ``ignored``, ``upload_limit``, ``coupon_format``: facts the transfer and
  coupon writers and stage 03 read (``value`` as described on each).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from loyalty_toolkit.errors import ConfigError

OSS = "DivanteLtd/open-loyalty-framework src/OpenLoyalty/"
CUSTOMER_CONVERTER = OSS + "Bundle/UserBundle/Import/CustomerXmlImportConverter.php"
NODE_VALIDATOR = OSS + "Component/Import/Infrastructure/Validator/XmlNodeValidator.php"
REGISTER = OSS + "Bundle/UserBundle/Service/RegisterCustomerManager.php"
TRANSFER_CONVERTER = OSS + "Bundle/PointsBundle/Import/PointsTransferXmlImportConverter.php"
TRANSFERS_MANAGER = OSS + "Bundle/PointsBundle/Service/PointsTransfersManager.php"
IMPORT_FILE = OSS + "Bundle/ImportBundle/Model/ImportFile.php"
COUPON_UPLOAD = ("DivanteLtd/open-loyalty frontend/src/component/global/csv/CsvUploadDirective.js "
                 "(admin reads the file as text and splits it on ';'; reference openloyalty_imports.md section 6)")
HELP = "help.openloyalty.io "
HELP_MEMBERS = HELP + "/main-features/members/member-list/adding-members"
HELP_MEMBER_CONFIG = HELP + "/main-features/members/configuration"
HELP_SAMPLES = HELP + "/main-features/imports-exports/imports/sample-import-files"
HELP_TRANSFERS = HELP + "/main-features/wallets/unit-transfers/importing-unit-transfers"

DEFAULT_PROFILE = "hosted"
MEMBER_KINDS = ("required", "required_value", "any_of", "format", "unique")


@dataclass(frozen=True)
class Rule:
    """One thing the target checks or decides, and where we read it."""

    rule_id: str
    applies_to: str  # member | transfer | file | coupon
    kind: str
    element: str
    value: str
    message: str  # the target's own wording when it refuses (member rules), else what the rule means
    source: str
    when: str = "present"  # format rules: "present" (only when the element has text) or "always"


def _member(rule_id, kind, element, value, message, source, when="present") -> Rule:
    return Rule(rule_id, "member", kind, element, value, message, source, when)


_REQ = "{} is required node"
_BOOL = "{} should one of (true, false)"

OSS_3: tuple[Rule, ...] = (
    _member("OSS_EMAIL_REQUIRED", "required", "email", "", _REQ.format("email"),
            CUSTOMER_CONVERTER + ":25; " + NODE_VALIDATOR + ":42-43"),
    _member("OSS_FIRSTNAME_REQUIRED", "required", "firstName", "", _REQ.format("firstName"), CUSTOMER_CONVERTER + ":26"),
    _member("OSS_LASTNAME_REQUIRED", "required", "lastName", "", _REQ.format("lastName"), CUSTOMER_CONVERTER + ":27"),
    _member("OSS_ACTIVE_REQUIRED", "required", "active", "", _REQ.format("active"), CUSTOMER_CONVERTER + ":28-31"),
    _member("OSS_ACTIVE_BOOL", "format", "active", "bool", _BOOL.format("active"),
            CUSTOMER_CONVERTER + ":30; " + NODE_VALIDATOR + ":77-88", when="php_nonempty"),
    _member("OSS_SENDMAIL_BOOL", "format", "sendActivationMail", "bool", _BOOL.format("sendActivationMail"),
            CUSTOMER_CONVERTER + ":32-34", when="php_nonempty"),
    _member("OSS_BIRTHDATE_FORMAT", "format", "birthDate", "date_php",
            "birthDate has invalid date format (Y-m-d required)",
            CUSTOMER_CONVERTER + ":35-37; " + NODE_VALIDATOR + ":46-58 (an absent node reads as '', which fails)",
            when="always"),
    _member("OSS_AGREEMENT1_REQUIRED", "required", "agreement1", "", _REQ.format("agreement1"),
            CUSTOMER_CONVERTER + ":38-41"),
    _member("OSS_AGREEMENT1_BOOL", "format", "agreement1", "bool", _BOOL.format("agreement1"), CUSTOMER_CONVERTER + ":40",
            when="php_nonempty"),
    _member("OSS_AGREEMENT2_BOOL", "format", "agreement2", "bool", _BOOL.format("agreement2"),
            CUSTOMER_CONVERTER + ":42-44", when="php_nonempty"),
    _member("OSS_AGREEMENT3_BOOL", "format", "agreement3", "bool", _BOOL.format("agreement3"),
            CUSTOMER_CONVERTER + ":45-47", when="php_nonempty"),
    _member("OSS_GENDER_REQUIRED", "required", "gender", "", _REQ.format("gender"), CUSTOMER_CONVERTER + ":48-52"),
    _member("OSS_GENDER_ENUM", "format", "gender", "enum:male|female|not_disclosed",
            "gender should one of (male, female, not_disclosed)", CUSTOMER_CONVERTER + ":50-51",
            when="php_nonempty"),
    _member("OSS_LEVELID_UUID", "format", "levelId", "uuid", "levelId should be UUID", CUSTOMER_CONVERTER + ":53-55",
            when="php_nonempty"),
    _member("OSS_POSID_UUID", "format", "posId", "uuid", "posId should be UUID", CUSTOMER_CONVERTER + ":56-58",
            when="php_nonempty"),
    _member("OSS_SELLERID_UUID", "format", "sellerId", "uuid", "sellerId should be UUID", CUSTOMER_CONVERTER + ":59-61",
            when="php_nonempty"),
    _member("OSS_EMAIL_UNIQUE", "unique", "email", "lower", "Customer with such email already exists.",
            REGISTER + ":116-121 (lower-cased first)"),
    _member("OSS_CARD_UNIQUE", "unique", "loyaltyCardNumber", "",
            "Customer with such loyalty card number already exists.", REGISTER + ":124-129"),
    _member("OSS_PHONE_UNIQUE", "unique", "phone", "", "Customer with such phone already exists.",
            REGISTER + ":130-132"),
    Rule("OSS_TRANSFER_POINTS_INTEGER", "transfer", "transfer_points", "points", "integer",
         "points is required and must read back as the same integer; written without a decimal point",
         TRANSFER_CONVERTER + ":94; " + NODE_VALIDATOR + ":72-76"),
    Rule("OSS_TRANSFER_TYPE", "transfer", "transfer_required", "type", "adding|spending",
         "type is required; any other value than adding or spending is refused",
         TRANSFER_CONVERTER + ":95, 114-143"),
    Rule("OSS_TRANSFER_VALIDITY_REQUIRED", "transfer", "transfer_required", "validityDuration", "",
         "validityDuration is required (and then ignored, see OSS_IGNORES_EXPIRY)", TRANSFER_CONVERTER + ":96"),
    Rule("OSS_TRANSFER_IDENTIFIERS", "transfer", "transfer_identifiers", "member",
         "customerId|customerEmail|customerLoyaltyCardNumber|customerPhoneNumber",
         "at least one of these names the member; unknown -> 'Account does not exist for given data'",
         TRANSFER_CONVERTER + ":75-84, 100-111"),
    Rule("OSS_IGNORES_EXPIRY", "transfer", "ignored", "expiry", "pointsDaysActive",
         "per-transfer expiry is ignored: every transfer expires after the global points validity days",
         TRANSFERS_MANAGER + ":133, 139"),
    Rule("OSS_IGNORES_LOCK", "transfer", "ignored", "lock", "pointsDaysLocked",
         "per-transfer lock is ignored: every transfer is locked for the global locked days",
         TRANSFERS_MANAGER + ":134, 140"),
    Rule("OSS_IGNORES_DATE", "transfer", "ignored", "registeredOn", "import time",
         "the transfer is dated when it is imported (createdAt null)", TRANSFER_CONVERTER + ":118-126"),
    Rule("OSS_FILE_FORMATS", "file", "file_formats", "transfers", "xml",
         "members and transfers are XML files (application/xml or text/xml)", IMPORT_FILE + ":34-37"),
    Rule("OSS_UPLOAD_LIMIT", "file", "upload_limit", "any", "16000000",
         "an uploaded file is at most 16M (Symfony: 16,000,000 bytes)", IMPORT_FILE + ":36"),
    Rule("OSS_COUPON_FORMAT", "coupon", "coupon_format", "coupons", ";",
         "a coupon file is text holding the codes separated by ';'", COUPON_UPLOAD),
)

HOSTED: tuple[Rule, ...] = (
    _member("HOSTED_IDENTIFIER", "any_of", "email|phone|loyaltyCardNumber", "", _REQ.format("email"),
            HELP_MEMBER_CONFIG + " (one identifier per member, any of the three)"),
    _member("HOSTED_FIRSTNAME_REQUIRED", "required_value", "firstName", "", _REQ.format("firstName"),
            HELP_SAMPLES + " (generator's members always carry it; OSS " + CUSTOMER_CONVERTER + ":26)"),
    _member("HOSTED_LASTNAME_REQUIRED", "required_value", "lastName", "", _REQ.format("lastName"),
            HELP_SAMPLES + " (OSS " + CUSTOMER_CONVERTER + ":27)"),
    _member("HOSTED_ACTIVE_REQUIRED", "required_value", "active", "", _REQ.format("active"),
            HELP_SAMPLES + " (OSS " + CUSTOMER_CONVERTER + ":28-31)"),
    _member("HOSTED_ACTIVE_BOOL", "format", "active", "bool", _BOOL.format("active"), NODE_VALIDATOR + ":77-88"),
    _member("HOSTED_SENDMAIL_BOOL", "format", "sendActivationMail", "bool", _BOOL.format("sendActivationMail"),
            NODE_VALIDATOR + ":77-88"),
    _member("HOSTED_BIRTHDATE_FORMAT", "format", "birthDate", "date",
            "birthDate has invalid date format (Y-m-d required)",
            HELP_MEMBERS + " (birthDate YYYY-MM-DD; unused elements are left out, so checked only when present)",
            when="node"),
    _member("HOSTED_AGREEMENT1_REQUIRED", "required_value", "agreement1", "", _REQ.format("agreement1"),
            HELP_SAMPLES + " (OSS " + CUSTOMER_CONVERTER + ":38-41)"),
    _member("HOSTED_AGREEMENT1_BOOL", "format", "agreement1", "bool", _BOOL.format("agreement1"), NODE_VALIDATOR + ":77-88"),
    _member("HOSTED_AGREEMENT2_BOOL", "format", "agreement2", "bool", _BOOL.format("agreement2"), NODE_VALIDATOR + ":77-88"),
    _member("HOSTED_AGREEMENT3_BOOL", "format", "agreement3", "bool", _BOOL.format("agreement3"), NODE_VALIDATOR + ":77-88"),
    _member("HOSTED_GENDER_REQUIRED", "required_value", "gender", "", _REQ.format("gender"),
            HELP_SAMPLES + " (OSS " + CUSTOMER_CONVERTER + ":48-52)"),
    _member("HOSTED_GENDER_ENUM", "format", "gender", "enum:male|female|not_disclosed",
            "gender should one of (male, female, not_disclosed)", HELP_SAMPLES),
    _member("HOSTED_LEVELID_UUID", "format", "levelId", "uuid", "levelId should be UUID", NODE_VALIDATOR + ":90-93"),
    _member("HOSTED_POSID_UUID", "format", "posId", "uuid", "posId should be UUID", NODE_VALIDATOR + ":90-93"),
    _member("HOSTED_SELLERID_UUID", "format", "sellerId", "uuid", "sellerId should be UUID", NODE_VALIDATOR + ":90-93"),
    _member("HOSTED_EMAIL_UNIQUE", "unique", "email", "lower", "Customer with such email already exists.",
            HELP_MEMBER_CONFIG + " (identifiers can be unique)"),
    _member("HOSTED_CARD_UNIQUE", "unique", "loyaltyCardNumber", "",
            "Customer with such loyalty card number already exists.", HELP_MEMBER_CONFIG),
    _member("HOSTED_PHONE_UNIQUE", "unique", "phone", "", "Customer with such phone already exists.",
            HELP_MEMBER_CONFIG),
    Rule("HOSTED_TRANSFER_POINTS_INTEGER", "transfer", "transfer_points", "units", "integer",
         "units written as whole numbers without a decimal point (the page does not say; our decision)",
         HELP_TRANSFERS),
    Rule("HOSTED_TRANSFER_REQUIRED", "transfer", "transfer_required", "customerId|units|walletTypeCode", "",
         "Customer ID, units and walletTypeCode are required", HELP_TRANSFERS),
    Rule("HOSTED_TRANSFER_IDENTIFIERS", "transfer", "transfer_identifiers", "member", "customerId",
         "only the platform's member ID names the member (map email/phone/card to it first)", HELP_TRANSFERS),
    Rule("HOSTED_TRANSFER_DATE", "transfer", "transfer_optional", "registeredOn", "YYYY-MM-DD HH:mm:ss",
         "optional registration date", HELP_TRANSFERS),
    Rule("HOSTED_FILE_FORMATS", "file", "file_formats", "transfers", "json|xml",
         "members as XML only; unit transfers as JSON or XML", HELP_MEMBERS + "; " + HELP_TRANSFERS),
    Rule("HOSTED_UPLOAD_LIMIT", "file", "upload_limit", "any", "100000000", "a members file is at most 100 MB",
         HELP_MEMBERS),
    Rule("HOSTED_COUPON_FORMAT", "coupon", "coupon_format", "coupons", "\\n",
         "a CSV of coupon codes: one code per line, no header", HELP_SAMPLES),
)

PROFILES: dict[str, tuple[Rule, ...]] = {"hosted": HOSTED, "oss-3": OSS_3}


@dataclass(frozen=True)
class Profile:
    """A named rule table, with the few facts the writers need read out of it (``need``)."""

    name: str
    rules: tuple[Rule, ...]
    config_file: str = ""
    line: int | None = None
    column: int | None = None

    def member_rules(self) -> tuple[Rule, ...]:
        """The member rules in the importer's order."""
        return tuple(r for r in self.rules if r.applies_to == "member")

    def rules_of(self, kind: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.kind == kind)

    def need(self, kind: str) -> Rule:
        """The one rule of ``kind`` a writer needs; ConfigError naming the config's profile line when the
        table lacks it (a profile must say, not leave the writer to guess)."""
        found = self.rules_of(kind)
        if not found:
            raise ConfigError(f"target profile {self.name!r} has no {kind} rule, which the writers need",
                              file=self.config_file or None, line=self.line, column=self.column,
                              field="targets.openloyalty.profile")
        return found[0]

    def upload_limit_bytes(self) -> int:
        return int(self.need("upload_limit").value)

    def coupon_separator(self) -> str:
        value = self.need("coupon_format").value
        return "\n" if value == "\\n" else value

    def transfer_formats(self) -> tuple[str, ...]:
        return tuple(self.need("file_formats").value.split("|"))

    def ignored(self) -> tuple[Rule, ...]:
        return self.rules_of("ignored")


def profile(name: str, *, config_file: str | Path | None = None, line: int | None = None,
            column: int | None = None) -> Profile:
    """The profile called ``name``; ConfigError (file, line, column of the config value) when unknown."""
    where = {"file": Path(config_file).name if config_file else None, "line": line, "column": column}
    if name not in PROFILES:
        raise ConfigError(f"unknown target profile {name!r}; known: {', '.join(PROFILES)}",
                          field="targets.openloyalty.profile", **where)
    return Profile(name, PROFILES[name], where["file"] or "", line, column)


def profile_of(cfg) -> Profile:
    """The profile a migration config names (``targets.openloyalty.profile``), located in its YAML."""
    from loyalty_toolkit.config import yaml_position

    name = cfg.targets.openloyalty.profile
    line = column = None
    if cfg.path.is_file():
        line, column = yaml_position(cfg.path.read_text(encoding="utf-8"), ("targets", "openloyalty", "profile"))
    return profile(name, config_file=cfg.path, line=line, column=column)


RULE_FIELDS = tuple(f.name for f in fields(Rule))


def render_markdown() -> str:
    """Every profile's table, as ``docs/targets.md`` prints it."""
    out = []
    for name, rules in PROFILES.items():
        out.append(f"### Profile `{name}`\n")
        out.append("| rule | applies to | kind | element | value | when | message | source |")
        out.append("|---|---|---|---|---|---|---|---|")
        for r in rules:
            cells = [r.rule_id, r.applies_to, r.kind, r.element, r.value, r.when if r.kind == "format" else "",
                     r.message, r.source]
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        out.append("")
    return "\n".join(out)
