"""Generation settings: one typed class, checked before any model runs.

Each field maps onto ``transformers.GenerationConfig``; invalid combinations raise
``ConfigError`` naming the field. (The prompt-engineering issue extends this with penalties,
stop sequences and presets.)
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from llmcycle.config import StageConfig


class GenerationSettings(StageConfig):
    """How to decode."""

    max_new_tokens: int = Field(64, ge=1, description="Most tokens to generate after the input.")
    min_new_tokens: int = Field(0, ge=0, description="Fewest tokens to generate before the end token is allowed.")
    do_sample: bool = Field(False, description="Sample from the distribution instead of greedy/beam search.")
    temperature: float = Field(1.0, description="Softmax temperature when sampling (> 0).")
    top_k: int = Field(0, ge=0, description="Sample only among the k most likely tokens (0: off).")
    top_p: float = Field(1.0, description="Nucleus sampling: smallest token set with this much probability, in (0, 1].")
    num_beams: int = Field(1, ge=1, description="Beam search width (1: no beam search).")
    no_repeat_ngram_size: int = Field(0, ge=0, description="Never repeat an n-gram of this size (0: off).")
    repetition_penalty: float = Field(1.0, gt=0, description="CTRL-style penalty on tokens already present (1: off).")
    seed: int = Field(0, description="Seed for sampling; each example is seeded from it and its position.")

    @model_validator(mode="after")
    def _check(self) -> "GenerationSettings":
        if self.do_sample and self.temperature <= 0:
            raise ValueError("temperature must be > 0 when do_sample is true (use do_sample: false for greedy)")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError("min_new_tokens must not exceed max_new_tokens")
        return self

    def to_generation_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``model.generate`` (sampling knobs only when sampling)."""
        kw: dict[str, Any] = dict(max_new_tokens=self.max_new_tokens, min_new_tokens=self.min_new_tokens or None,
                                  num_beams=self.num_beams, do_sample=self.do_sample,
                                  no_repeat_ngram_size=self.no_repeat_ngram_size or None,
                                  repetition_penalty=self.repetition_penalty)
        if self.do_sample:
            kw.update(temperature=self.temperature, top_k=self.top_k or None, top_p=self.top_p)
        return {k: v for k, v in kw.items() if v is not None}
