"""Every config field is documented once, and docs/recipes.md is generated from those docs."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmcycle.core.config import DataConfig, ModelConfig
from llmcycle.recipe.recipe import Recipe
from llmcycle.recipe.reference import recipe_reference
from llmcycle.stages import get_stage, stage_kinds

DOC = Path(__file__).resolve().parents[2] / "docs" / "recipes.md"


STAGE_CONFIGS = {kind: get_stage(kind).config_cls for kind in stage_kinds()}


@pytest.mark.parametrize("cls", [Recipe, ModelConfig, DataConfig, *STAGE_CONFIGS.values()], ids=lambda c: c.__name__)
def test_every_field_has_a_description(cls):
    missing = [name for name, f in cls.model_fields.items() if not (f.description or "").strip()]
    assert not missing, f"{cls.__name__} fields without a description: {missing}"
    assert (cls.__doc__ or "").strip(), f"{cls.__name__} has no docstring"


def test_reference_doc_is_up_to_date():
    assert DOC.read_text(encoding="utf-8") == recipe_reference() + "\n", \
        "docs/recipes.md is stale: regenerate it with `llmcycle reference > docs/recipes.md`"


def test_reference_lists_every_stage_and_field():
    ref = recipe_reference()
    for kind, cls in STAGE_CONFIGS.items():
        assert f"### {kind}" in ref
        for name in cls.model_fields:
            assert f"`{name}`" in ref
