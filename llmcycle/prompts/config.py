"""``PromptConfig``: one prompt setup (template, shots, budget) as a recipe stage gives it.

``prompt_template(config)`` and ``shot_selector(config, pool)`` turn it into the objects
``build_prompts`` takes; ``build_prompts_from_config`` does both.
"""

from __future__ import annotations

from typing import Any, Iterable, Literal, Mapping

from pydantic import Field, NonNegativeInt, model_validator

from llmcycle.core.config import StageConfig
from llmcycle.prompts.builder import PromptBatch, build_prompts
from llmcycle.prompts.registry import get_template, load_templates
from llmcycle.prompts.shots import FirstShots, IndexShots, NearestShots, Pool, RandomShots, ShotSelector
from llmcycle.prompts.templates import PromptError, PromptTemplate

SelectionKind = Literal["first", "random", "nearest", "indices"]


class PromptConfig(StageConfig):
    """How to build prompts: which template, how many solved examples, which ones, what budget."""

    template: str = Field("instruction", min_length=1, description="Prompt template name: a builtin "
                          "(none, instruction, flan, flan-briefly, ...; `llmcycle.prompts.TEMPLATES`) or one defined "
                          "in templates_file.")
    templates_file: str | None = Field(None, description="YAML file of user templates (a list of {name, text, "
                                       "target, task, description}); its names are looked up before the builtins.")
    n_shots: int = Field(0, ge=0, le=64, description="Solved examples (shots) before the query: 0 zero-shot, "
                         "1 one-shot, k few-shot. With selection 'indices': 0 or len(indices).")
    selection: SelectionKind = Field("first", description="How shots are picked from the pool (the train split): "
                                 "'first' rows, seeded 'random' draw, 'nearest' by MiniLM embedding similarity, "
                                 "or explicit 'indices'. The query itself is never shown as a shot.")
    indices: list[NonNegativeInt] | None = Field(None, min_length=1, description="Pool row indices shown as shots, "
                                                 "in order (selection 'indices' only).")
    seed: int = Field(42, description="Seed of the 'random' draw.")
    same_shots_for_all: bool = Field(False, description="'random': one draw shared by every row instead of one "
                                     "draw per (seed, row index).")
    separator: str = Field("\n\n", description="Text between shots and before the query; give it to generation as "
                           "the stop sequence.")
    max_input_tokens: int | None = Field(None, ge=1, description="Token budget of a prompt; default: the "
                                         "tokenizer's model_max_length (512 for T5). Over it, shots are dropped "
                                         "(last first), then the input is truncated, and both are reported.")
    chat: bool = Field(False, description="Wrap prompts in the tokenizer's chat template (chat models only); shots "
                       "become user/assistant turns.")
    system: str | None = Field(None, description="System message for chat prompts.")

    @model_validator(mode="after")
    def _check(self) -> "PromptConfig":
        if self.selection == "indices":
            if not self.indices:
                raise ValueError("indices: required when selection is 'indices'")
            if self.n_shots not in (0, len(self.indices)):
                raise ValueError(f"n_shots: {self.n_shots} does not match the {len(self.indices)} indices given "
                                 "(leave n_shots at 0 or make them equal)")
        elif self.indices is not None:
            raise ValueError(f"indices: only used with selection 'indices' (selection is '{self.selection}')")
        if self.system is not None and not self.chat:
            raise ValueError("system: only used with chat: true")
        return self

    @property
    def shots(self) -> int:
        """The number of shots asked for."""
        return len(self.indices) if self.selection == "indices" and self.indices else self.n_shots


def prompt_template(config: PromptConfig) -> PromptTemplate:
    """The template ``config`` names: from ``templates_file`` first (not registered globally), else the registry."""
    if config.templates_file:
        for template in load_templates(config.templates_file):
            if template.name == config.template:
                return template
    return get_template(config.template)


def shot_selector(config: PromptConfig, pool: Pool | None) -> ShotSelector | None:
    """The selector ``config`` asks for over ``pool``; ``None`` for zero-shot."""
    if config.shots == 0:
        return None
    if pool is None:
        raise PromptError(f"{config.shots} shots asked for but no shot pool was given (normally the train split)")
    if config.selection == "indices":
        return IndexShots(pool, config.indices or [])
    if config.selection == "random":
        return RandomShots(pool, config.n_shots, seed=config.seed, per_row=not config.same_shots_for_all)
    if config.selection == "nearest":
        return NearestShots(pool, config.n_shots)
    return FirstShots(pool, config.n_shots)


def build_prompts_from_config(config: PromptConfig, rows: Iterable[Mapping[str, Any]], *, tokenizer: Any,
                              pool: Pool | None = None) -> PromptBatch:
    """Prompts for ``rows`` as ``config`` describes, shots drawn from ``pool``."""
    return build_prompts(prompt_template(config), rows, tokenizer=tokenizer, shots=shot_selector(config, pool),
                         max_input_tokens=config.max_input_tokens, separator=config.separator,
                         chat=config.chat, system=config.system)
