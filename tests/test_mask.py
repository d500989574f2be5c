import pandas as pd
import pytest

from loyalty_toolkit.mask import (mask_card, mask_date, mask_email, mask_frame, mask_group, mask_key, mask_name,
                                  mask_phone, mask_rejects, mask_text)


@pytest.mark.parametrize("fn, value, expected", [
    (mask_email, "jean.dupont@example.com", "j***@example.com"),
    (mask_email, "", ""),
    (mask_email, "broken", "b***"),
    (mask_phone, "+33612345678", "********5678"),
    (mask_name, "Nguyễn Thị Thu", "N. T. T."),
    (mask_group, "email:ann@x.fr", "email:a***@x.fr"),
    (mask_group, "phone:+33612345678", "phone:********5678"),
    (mask_card, "9653853806", "******3806"),
    (mask_date, "1955-07-30", "1955-**-**"),
    (mask_date, "30/07/1955", "**/**/1955"),
    (mask_text, "12 rue de la Paix", "[17 characters]"),
    (mask_key, "+33612345678|ann@x.fr", "********5678|a***@x.fr"),
    (mask_key, "G0000025", "G0000025"),
    (mask_key, "at-000219", "at-000219"),
    (mask_key, "06 12 34 56 78", "**********6 78"),
])
def test_maskers(fn, value, expected):
    assert fn(value) == expected


def test_mask_frame_masks_only_personal_columns():
    f = pd.DataFrame({"legacy_id": ["G1"], "email": ["ann@x.fr"], "phone": ["+33612345678"], "first_name": ["Ann"]})
    m = mask_frame(f)
    assert m.iloc[0].tolist() == ["G1", "a***@x.fr", "********5678", "A."]
    assert mask_frame(f, show_pii=True).equals(f)


def test_mask_frame_masks_cards_and_birth_dates():
    f = pd.DataFrame({"card_number": ["9653853806"], "birth_date": ["1955-07-30"], "gender": ["male"]})
    assert mask_frame(f).iloc[0].tolist() == ["******3806", "1955-**-**", "male"]


def test_mask_rejects_masks_value_key_and_message_by_column():
    r = pd.DataFrame({"stage": ["x", "x"], "file": ["f", "f"], "line": [1, 2], "record_key": ["G1", "at-1"],
                      "column": ["Courriel", "card_code"], "reason_code": ["R", "R"],
                      "message": ["Courriel ann@x.fr invalid", "card 4225652824 unknown"],
                      "value": ["ann@x.fr", "4225652824"]})
    m = mask_rejects(r, kinds={"Courriel": "email"})
    assert m["value"].tolist() == ["a***@x.fr", "******2824"]
    assert m["message"].tolist() == ["Courriel a***@x.fr invalid", "card ******2824 unknown"]
    assert m["record_key"].tolist() == ["G1", "at-1"]
    assert r["value"].tolist() == ["ann@x.fr", "4225652824"], "the input frame is not changed"
