import pytest

from loyalty_toolkit.errors import UsageError
from loyalty_toolkit.runner import _plan, parse_stages


def test_parse_stages_orders_by_pipeline_and_rejects_unknown_names():
    assert parse_stages("members, subset") == ["subset", "members"]
    assert parse_stages(None) is None
    with pytest.raises(UsageError, match="unknown stage"):
        parse_stages("membres")


def test_a_stage_reruns_only_when_the_stages_before_it_passed():
    assert _plan(["members"], {"subset": "passed", "members": "failed"}) == (["members"], set())
    with pytest.raises(UsageError, match="needs stage subset"):
        _plan(["members"], {"subset": "failed"})
    with pytest.raises(UsageError, match="needs stage subset"):
        _plan(["members"], {})


def test_rerunning_a_stage_makes_the_later_passed_stages_stale():
    _, stale = _plan(["subset"], {"subset": "passed", "members": "passed"})
    assert stale == {"members"}


def test_a_not_applicable_stage_is_neither_required_nor_run():
    # re-running the report after members and mapping passed: transfers and rewards do not apply
    previous = {"subset": "passed", "members": "passed", "mapping": "passed", "transfers": "not_applicable",
                "rewards": "not_applicable", "report": "failed"}
    assert _plan(["report"], previous, {"transfers", "rewards"}) == (["report"], set())
    with pytest.raises(UsageError, match="needs stage transfers"):
        _plan(["report"], previous)
