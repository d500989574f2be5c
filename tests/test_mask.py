import pandas as pd
import pytest

from loyalty_toolkit.mask import mask_email, mask_frame, mask_group, mask_name, mask_phone


@pytest.mark.parametrize("fn, value, expected", [
    (mask_email, "jean.dupont@example.com", "j***@example.com"),
    (mask_email, "", ""),
    (mask_email, "broken", "b***"),
    (mask_phone, "+33612345678", "********5678"),
    (mask_name, "Nguyễn Thị Thu", "N. T. T."),
    (mask_group, "email:ann@x.fr", "email:a***@x.fr"),
    (mask_group, "phone:+33612345678", "phone:********5678"),
])
def test_maskers(fn, value, expected):
    assert fn(value) == expected


def test_mask_frame_masks_only_personal_columns():
    f = pd.DataFrame({"legacy_id": ["G1"], "email": ["ann@x.fr"], "phone": ["+33612345678"], "first_name": ["Ann"]})
    m = mask_frame(f)
    assert m.iloc[0].tolist() == ["G1", "a***@x.fr", "********5678", "A."]
    assert mask_frame(f, show_pii=True).equals(f)
