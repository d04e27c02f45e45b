"""Generation settings: one typed class, checked before any model runs.

Every field is documented once, here. Single-field limits (``max_new_tokens >= 1``) come from
``Field``; combinations (temperature without sampling, more return sequences than beams, ...) are
checked together and reported with the offending field as the error location, so
``GenerationSettings.parse(data, where=...)`` raises ``ConfigError`` lines such as
``generate: temperature: temperature must be > 0 when do_sample is true ...``. Direct construction
raises pydantic's ``ValidationError`` with the same locations.

How the fields reach ``model.generate``: ``to_generation_kwargs()`` gives the keyword arguments
transformers understands; frequency/presence penalties are logits processors
(``logits_processors()``); stop strings are handled by the engine (``llmcycle.generation.engine``),
which stops each row when its text contains one and trims the text there.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from llmcycle.core.config import StageConfig
from llmcycle.core.errors import ConfigError
from llmcycle.generation.presets import PRESETS


class GenerationSettings(StageConfig):
    """How to decode: greedy, sampling or beam search, lengths, penalties, stop strings, seed."""

    preset: str | None = Field(
        None, description=f"Start from a named preset ({', '.join(PRESETS)}); fields set alongside override it.")
    max_new_tokens: int = Field(64, ge=1, description="Most tokens to generate after the input.")
    min_new_tokens: int = Field(0, ge=0, description="Fewest tokens to generate before the end token is allowed.")
    do_sample: bool = Field(False, description="Sample from the distribution instead of greedy/beam search.")
    temperature: float = Field(1.0, description="Softmax temperature when sampling (> 0; lower is more "
                               "deterministic). Only used when do_sample is true.")
    top_k: int = Field(0, ge=0, description="Sample only among the k most likely tokens (0: off). Sampling only.")
    top_p: float = Field(1.0, description="Nucleus sampling: smallest token set with this much probability, "
                         "in (0, 1] (1: off). Sampling only.")
    num_beams: int = Field(1, ge=1, description="Beam search width (1: no beam search).")
    length_penalty: float = Field(1.0, description="Beam search: beams are ranked by log-probability / "
                                  "length ** length_penalty (> 1 favours longer outputs, < 1 shorter).")
    early_stopping: bool | Literal["never"] = Field(
        False, description="Beam search: true stops once num_beams beams are finished; false stops when a better "
        "beam is unlikely; 'never' only at max_new_tokens.")
    no_repeat_ngram_size: int = Field(0, ge=0, description="Never repeat an n-gram of this size (0: off).")
    repetition_penalty: float = Field(1.0, gt=0, description="CTRL-style penalty on tokens already present "
                                      "(> 1 discourages repeats; 1: off).")
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0, description="OpenAI semantics: subtract count(token in "
                                     "the output so far) x this from its logit, in [-2, 2] (0: off).")
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0, description="OpenAI semantics: subtract this from the "
                                    "logit of every token already in the output, in [-2, 2] (0: off).")
    stop: list[str] = Field(default_factory=list, description="Stop strings: a row stops generating once its "
                            "output contains one, and the output is cut before it.")
    num_return_sequences: int = Field(1, ge=1, description="Outputs per input (sampled, or the best beams; "
                                      "at most num_beams without sampling).")
    seed: int = Field(0, ge=0, description="Seed for sampling; example i's outputs come from seed and i alone, "
                      "whatever the batch size.")

    @model_validator(mode="before")
    @classmethod
    def _expand_preset(cls, data: Any) -> Any:
        """``preset: NAME`` fills in the preset's fields; fields given alongside win."""
        if isinstance(data, dict) and data.get("preset") is not None:
            name = data["preset"]
            if name not in PRESETS:
                raise _field_error("preset", f"unknown preset {name!r}; valid: {', '.join(PRESETS)}", name)
            return {**PRESETS[name], **data}
        return data

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [value]  # a single stop string
        return value

    @field_validator("stop")
    @classmethod
    def _stop_nonempty(cls, value: list[str]) -> list[str]:
        if any(s == "" for s in value):
            raise ValueError("stop strings must not be empty (an empty string would stop at once)")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _check_combinations(self) -> "GenerationSettings":
        problems = self._problems()
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, [
                InitErrorDetails(type=PydanticCustomError("generation_settings", "{msg}", {"msg": msg}), loc=(field,),
                                 input=getattr(self, field)) for field, msg in problems])
        return self

    def _problems(self) -> list[tuple[str, str]]:
        """(field, message) for every invalid combination of fields."""
        p: list[tuple[str, str]] = []
        sampling = self.do_sample
        if sampling and self.temperature <= 0:
            p.append(("temperature", "temperature must be > 0 when do_sample is true (for greedy decoding set "
                      "do_sample: false)"))
        if not sampling and self.temperature != 1.0:
            p.append(("temperature", f"temperature={self.temperature} has no effect without sampling; set "
                      "do_sample: true (CLI: --sample) or leave temperature at 1.0"))
        if not 0 < self.top_p <= 1:
            p.append(("top_p", f"top_p must be in (0, 1], got {self.top_p}"))
        elif not sampling and self.top_p != 1.0:
            p.append(("top_p", f"top_p={self.top_p} has no effect without sampling; set do_sample: true"))
        if not sampling and self.top_k != 0:
            p.append(("top_k", f"top_k={self.top_k} has no effect without sampling; set do_sample: true"))
        if self.min_new_tokens > self.max_new_tokens:
            p.append(("min_new_tokens", f"min_new_tokens ({self.min_new_tokens}) must not exceed max_new_tokens "
                      f"({self.max_new_tokens})"))
        if sampling and self.num_beams > 1:
            p.append(("num_beams", "beam search cannot be combined with do_sample: true; choose sampling "
                      "(num_beams: 1) or beam search (do_sample: false)"))
        if not sampling and self.num_return_sequences > self.num_beams:
            p.append(("num_return_sequences", f"num_return_sequences ({self.num_return_sequences}) must not exceed "
                      f"num_beams ({self.num_beams}) without sampling: greedy and beam search return at most "
                      "one output per beam"))
        if self.num_beams == 1 and self.length_penalty != 1.0:
            p.append(("length_penalty", "length_penalty only applies to beam search; set num_beams > 1"))
        if self.num_beams == 1 and self.early_stopping is not False:
            p.append(("early_stopping", "early_stopping only applies to beam search; set num_beams > 1"))
        return p

    def __setattr__(self, name: str, value: Any) -> None:
        """Assignment is validated; a rejected value leaves the settings as they were."""
        before = dict(self.__dict__)
        try:
            super().__setattr__(name, value)
        except ValidationError:
            self.__dict__.update(before)
            raise

    def non_default_fields(self, allowed: set[str]) -> list[str]:
        """Fields set to something other than their default that are not in ``allowed`` (a stage that can
        honour only some decoding knobs refuses the others, naming them)."""
        return [name for name, f in type(self).model_fields.items() if name not in allowed and name != "preset"
                and getattr(self, name) != (f.default_factory() if f.default_factory else f.default)]

    # ---- construction helpers ------------------------------------------------------------------

    @classmethod
    def parse(cls, data: dict[str, Any] | None, where: str = "generation") -> "GenerationSettings":
        """Validate a mapping of fields (``preset`` allowed); errors are ``ConfigError`` naming the field."""
        return cls.from_dict(data, where=where)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "GenerationSettings":
        """Preset ``name`` (``greedy``, ``creative``, ``precise``, ``beam4``) with ``overrides`` applied."""
        if name not in PRESETS:
            raise ConfigError(f"unknown generation preset {name!r}; valid: {', '.join(PRESETS)}")
        return cls.parse({**overrides, "preset": name}, where=f"preset {name}")

    # ---- what model.generate receives ---------------------------------------------------------

    @property
    def uses_penalties(self) -> bool:
        return self.frequency_penalty != 0.0 or self.presence_penalty != 0.0

    def to_generation_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for transformers' ``model.generate`` (sampling knobs only when sampling).

        Every decoding field is given explicitly, so a model's own ``generation_config`` defaults
        (a hub BART's ``no_repeat_ngram_size: 3`` or ``min_length``, which ``min_new_tokens``
        overrides) do not leak in.
        Not included: the penalties (pass ``logits_processor=settings.logits_processors(n)``), stop
        strings and per-example seeding, which ``llmcycle.generation.generate`` handles.
        """
        kw: dict[str, Any] = dict(
            max_new_tokens=self.max_new_tokens, min_new_tokens=self.min_new_tokens,
            do_sample=self.do_sample, num_beams=self.num_beams, num_return_sequences=self.num_return_sequences,
            no_repeat_ngram_size=self.no_repeat_ngram_size, repetition_penalty=self.repetition_penalty,
            use_cache=True)
        if self.num_beams > 1:
            kw.update(length_penalty=self.length_penalty, early_stopping=self.early_stopping)
        if self.do_sample:
            kw.update(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)
        return kw

    def logits_processors(self, prompt_length: int) -> list[Any]:
        """The frequency/presence penalty processor (empty when both are 0).

        ``prompt_length``: leading columns of ``input_ids`` that are not generated tokens (the padded
        prompt for decoder-only models, 1 (the decoder start token) for encoder-decoder models).
        """
        if not self.uses_penalties:
            return []
        from llmcycle.generation.processors import FrequencyPresencePenalty  # imports torch and transformers

        return [FrequencyPresencePenalty(self.frequency_penalty, self.presence_penalty, prompt_length)]


def _field_error(field: str, message: str, value: Any) -> ValidationError:
    return ValidationError.from_exception_data("GenerationSettings", [
        InitErrorDetails(type=PydanticCustomError("generation_settings", "{msg}", {"msg": message}), loc=(field,),
                         input=value)])
