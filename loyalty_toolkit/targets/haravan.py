"""Haravan / Haraloyalty opening-balance import file (seed 003): ``phone,email,DTDauKy,DTTichLuy``.

Haravan hands the merchant a sample CSV template to fill in, typically in Excel, and reads back
what Excel saves. Decision: we write what Excel's "CSV UTF-8" writes, UTF-8 **with a BOM** and
**CRLF** line endings, so the file opens in Excel with Vietnamese text intact and has the
same shape as a template filled in by hand (the importer has to accept that shape). ``bom=False``
gives plain UTF-8 if the tenant's importer turns out to choke on the BOM.

Columns, in the template's order: ``phone`` (the frame's ``phone_column``, default the E.164 phone;
pass the spelling the customer has in Haravan if it differs: seed 003 says phone and email must
be exactly right; ``phone_raw`` of ``parse_opening`` is the source's own spelling), ``email``
(``email_column``, default the trimmed address with its domain lower-cased; ``email_raw`` is the
source's spelling), ``DTDauKy`` (opening revenue) and ``DTTichLuy`` (accumulated
revenue) as plain whole numbers without separators (VND has no decimals). Rows keep the frame's
order; minimal CSV quoting. The same frame gives the same bytes.

Excel caveat: opening the file in Excel and saving it again turns ``+84912345678`` into a number
(and drops a national ``0``); upload the file as written.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pandas as pd

from loyalty_toolkit.csv_cells import is_formula, neutralise_row

HEADER = ("phone", "email", "DTDauKy", "DTTichLuy")


def _amount(value: object, what: str, row: int) -> str:
    if isinstance(value, float):
        raise TypeError(f"row {row}: {what} must be Decimal or int, not float ({value!r})")
    try:
        d = Decimal(str(value).strip())
    except ArithmeticError:
        raise ValueError(f"row {row}: {what} is not a number: {value!r}") from None
    if not d.is_finite() or d != d.to_integral_value() or d < 0:
        raise ValueError(f"row {row}: {what} must be a whole amount >= 0, not {value!r}")
    return str(int(d))


def write_opening_balances(frame: pd.DataFrame, path: Path, *, phone_column: str = "phone",
                           email_column: str = "email", bom: bool = True) -> Path:
    """Write ``frame`` (phone, email, opening_revenue, accumulated_revenue) as Haravan's template."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(HEADER)
    cols = [frame[c].tolist() for c in (phone_column, email_column, "opening_revenue", "accumulated_revenue")]
    for i, (phone, email, opening, accumulated) in enumerate(zip(*cols)):
        phone, email = ("" if pd.isna(v) else str(v).strip() for v in (phone, email))
        if not phone or not email:
            raise ValueError(f"row {i}: Haravan needs both phone and email")
        if is_formula(email):  # Haravan takes the email as written: stage 03 refuses it (FORMULA_CELL)
            raise ValueError(f"row {i}: the email starts like a spreadsheet formula")
        writer.writerow(neutralise_row((phone, email, _amount(opening, "DTDauKy", i),
                                        _amount(accumulated, "DTTichLuy", i))))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue().encode("utf-8-sig" if bom else "utf-8"))
    return path
