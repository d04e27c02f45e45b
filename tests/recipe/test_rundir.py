"""changed_fields: what tune, PPO and DPO compare before resuming a run folder."""

from llmcycle.core.files import changed_fields

DEFAULTS = {"steps": 10, "lr": 1e-4, "kl": {"coef": 0.2, "eos": 0.0}, "new": 0.0}


def test_fields_added_since_a_run_started_count_at_their_defaults():
    saved = {"steps": 10, "lr": 1e-4, "kl": {"coef": 0.2}}  # written before "new" and "kl.eos" existed
    assert changed_fields(saved, DEFAULTS, DEFAULTS) == []
    assert changed_fields(saved, DEFAULTS | {"new": 0.5}, DEFAULTS) == ["new"]
    assert changed_fields(saved, DEFAULTS | {"kl": {"coef": 0.2, "eos": 1.0}}, DEFAULTS) == ["kl"]


def test_real_differences_are_reported_unless_ignored():
    current = DEFAULTS | {"lr": 1e-3, "steps": 20}
    assert changed_fields(DEFAULTS, current, DEFAULTS) == ["lr", "steps"]
    assert changed_fields(DEFAULTS, current, DEFAULTS, ignore={"steps"}) == ["lr"]
    assert changed_fields(DEFAULTS | {"gone": 1}, DEFAULTS, DEFAULTS) == ["gone"]  # a field since removed
