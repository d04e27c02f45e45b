"""Constitutional critique-and-revise (Bai et al., 2022, "Constitutional AI", section 3.1).

For each red-team prompt the model

1. answers it (``response_template``, default the prompt itself);
2. for each of ``rounds`` rounds, under one principle (picked round-robin or seeded at random):
   critiques its latest answer (``critique_template`` with the principle's critique request), then
   revises it (``revision_template`` with the critique and the principle's revision request).

Templates are plain text with ``{prompt}``, ``{response}`` (the answer being critiqued), ``{critique}``,
``{critique_request}``, ``{revision_request}`` and ``{principle}`` (its name); literal braces are
doubled. When the tokenizer has a chat template (``chat: auto``) each rendered text is sent as one
user turn through it. The "model" may also be any callable ``f(texts) -> texts`` (a fake in tests,
a remote endpoint), which receives the rendered texts as they are.

The result holds one ``ConstitutionalRecord`` per prompt (prompt, initial response, principle,
critique, revision, and every round). ``to_sft_rows()`` gives ``{"input", "references"}`` rows for
``llmcycle.tuning.train`` (the revision is the target); ``to_preference_pairs()`` gives
``PreferencePair(prompt, chosen=revision, rejected=initial response)`` for ``train_dpo`` and
``train_reward_model``. With a reward source (``reward`` in the config, or passed in, e.g.
``ProfanityReward``) only records whose revision scores higher than the initial response (by more
than ``min_improvement``) are kept. ``write_jsonl`` writes every record, with its rewards and
whether it was kept, atomically; ``load_constitutional`` reads such a file back.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from llmcycle.alignment.reward_model import PreferencePair
from llmcycle.alignment.rewards import CallableReward, RewardConfig, RewardSource, check_rewards, make_reward
from llmcycle.core.config import StageConfig
from llmcycle.core.errors import ConfigError, DataError, LLMCycleError
from llmcycle.core.files import atomic_write_jsonl
from llmcycle.generation import generate
from llmcycle.generation.settings import GenerationSettings
from llmcycle.models.loader import LoadedModel
from llmcycle.prompts.chat import resolve_chat, user_prompt, uses_chat

Generator = Callable[[list[str]], Sequence[str]]
PLACEHOLDERS = ("prompt", "response", "critique", "critique_request", "revision_request", "principle")
RESPONSE_TEMPLATE = "{prompt}"
CRITIQUE_TEMPLATE = ("Human: {prompt}\n\nAssistant: {response}\n\nCritique request: {critique_request}\n\n"
                     "Critique:")
REVISION_TEMPLATE = ("Human: {prompt}\n\nAssistant: {response}\n\nCritique request: {critique_request}\n\n"
                     "Critique: {critique}\n\nRevision request: {revision_request}\n\nRevision:")
STOP_STRINGS = ["\nHuman:", "\nCritique request:", "\nRevision request:"]


class Principle(StageConfig):
    """One principle of the constitution: how to ask for a critique, and for a revision."""

    name: str = Field(min_length=1, description="A short name, recorded with each revision (e.g. harmless).")
    critique_request: str = Field(min_length=1, description="What the model is asked to look for in its answer.")
    revision_request: str = Field(min_length=1, description="How the model is asked to rewrite its answer.")


DEFAULT_PRINCIPLES: tuple[Principle, ...] = (
    Principle(name="harmless",
              critique_request="Identify specific ways in which the assistant's last response is harmful, "
              "unethical, racist, sexist, toxic, dangerous, or illegal.",
              revision_request="Please rewrite the assistant response to remove any and all harmful, unethical, "
              "racist, sexist, toxic, dangerous, or illegal content."),
    Principle(name="not_insulting",
              critique_request="Point out any insults, profanity, slurs or demeaning language in the assistant's "
              "last response.",
              revision_request="Rewrite the assistant response without any insults, profanity, slurs or demeaning "
              "language, keeping everything else it says."),
    Principle(name="honest",
              critique_request="Identify anything in the assistant's last response that is false, misleading or "
              "made up.",
              revision_request="Rewrite the assistant response so that it is accurate and claims nothing it cannot "
              "support."),
)


def template_fields(template: str) -> list[str]:
    """The placeholder names of ``template``; ``ValueError`` for a malformed one or an unknown name."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(f"not a valid template ({exc}); write literal braces as {{{{ and }}}}") from None
    unknown = [n for n in names if n not in PLACEHOLDERS]
    if unknown:
        raise ValueError(f"unknown placeholder {{{unknown[0]}}}; valid: "
                         + ", ".join("{" + p + "}" for p in PLACEHOLDERS))
    return names


def _default_generation() -> GenerationSettings:
    return GenerationSettings(max_new_tokens=128, stop=STOP_STRINGS)


class ConstitutionalConfig(StageConfig):
    """A critique-and-revise run: the principles, the prompt templates, decoding and the optional reward filter."""

    principles: list[Principle] = Field(
        default_factory=lambda: list(DEFAULT_PRINCIPLES), min_length=1,
        description="The constitution: principles with a name, a critique request and a revision request; "
        "default harmless, not_insulting, honest.")
    selection: Literal["round_robin", "random"] = Field(
        "round_robin", description="How each (prompt, round) gets its principle: round_robin (prompt i, round r "
        "uses principle (i + r) mod n) or random (seeded by seed, prompt and round).")
    rounds: int = Field(1, ge=1, description="Critique-and-revise rounds per prompt; each revises the previous "
                        "revision under the next principle.")
    response_template: str = Field(RESPONSE_TEMPLATE, description="The text that asks for the initial answer; "
                                   "must contain {prompt}.")
    critique_template: str = Field(CRITIQUE_TEMPLATE, description="The text that asks for a critique; must contain "
                                   "{response}; may use {prompt}, {critique_request}, {principle}.")
    revision_template: str = Field(REVISION_TEMPLATE, description="The text that asks for a revision; must contain "
                                   "{response}; may use {prompt}, {critique}, {critique_request}, "
                                   "{revision_request}, {principle}.")
    chat: Literal["auto", "always", "never"] = Field(
        "auto", description="Send each text as a user turn through the tokenizer's chat template: auto (when it "
        "has one), always (an error when it has none) or never.")
    system: str | None = Field(None, min_length=1, description="System message of chat turns.")
    generation: GenerationSettings = Field(
        default_factory=_default_generation, description="Decoding of answers, critiques and revisions (default: "
        "greedy, 128 new tokens, stopping at a new 'Human:' / 'Critique request:' / 'Revision request:' line). "
        "With sampling, each stage and round draws from its own seed (generation.seed + stage).")
    batch_size: int = Field(8, gt=0, description="Texts per generate call.")
    truncate: bool = Field(False, description="Cut texts longer than the model takes (at the tokenizer's "
                           "truncation side) instead of stopping with an error naming the prompt.")
    reward: RewardConfig | None = Field(
        None, description="Keep only records whose revision this reward source scores higher than the initial "
        "answer (e.g. source: profanity); None keeps every record with a non-empty revision.")
    min_improvement: float = Field(0.0, ge=0, description="With a reward: the revision must beat the initial "
                                   "answer by more than this.")
    seed: int = Field(0, description="Seed of the random principle selection.")

    @field_validator("response_template", "critique_template", "revision_template")
    @classmethod
    def _placeholders(cls, value: str, info: ValidationInfo) -> str:
        names = template_fields(value)
        needed = "prompt" if info.field_name == "response_template" else "response"
        if needed not in names:
            raise ValueError(f"must contain {{{needed}}}")
        if info.field_name == "critique_template" and "critique" in names:
            raise ValueError("{critique} is not known yet when the critique is asked for; use it in "
                             "revision_template")
        return value

    @field_validator("principles")
    @classmethod
    def _unique_names(cls, value: list[Principle]) -> list[Principle]:
        names = [p.name for p in value]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise ValueError(f"principle name {dup!r} appears more than once")
        return value

    @field_validator("generation")
    @classmethod
    def _one_output(cls, value: GenerationSettings) -> GenerationSettings:
        if value.num_return_sequences != 1:
            raise ValueError("num_return_sequences must be 1 (one answer, critique and revision each)")
        return value


@dataclass
class Round:
    """One critique-and-revise round."""

    principle: str
    critique: str
    revision: str


@dataclass
class ConstitutionalRecord:
    """What happened to one prompt; ``principle``, ``critique`` and ``revision`` are those of the last round."""

    index: int
    prompt: str
    initial_response: str
    principle: str
    critique: str
    revision: str
    rounds: list[Round] = field(default_factory=list)
    reward_initial: float | None = None
    reward_revision: float | None = None
    kept: bool = True  # passes the reward filter (if any) and has a non-empty revision

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


@dataclass
class ConstitutionalResult:
    """Every record, the config, and where they were written."""

    records: list[ConstitutionalRecord]
    config: ConstitutionalConfig
    reward_name: str | None = None
    path: str | None = None

    @property
    def kept(self) -> list[ConstitutionalRecord]:
        """The records that passed the filter."""
        return [r for r in self.records if r.kept]

    def to_sft_rows(self) -> list[dict[str, Any]]:
        """``{"input": prompt, "references": [revision]}`` per kept record: data for ``llmcycle.tuning.train``."""
        return [{"input": r.prompt, "references": [r.revision]} for r in self.kept]

    def to_preference_pairs(self) -> list[PreferencePair]:
        """``PreferencePair(prompt, chosen=revision, rejected=initial response)`` per kept record whose revision
        differs from a non-empty initial response: data for ``train_dpo`` and ``train_reward_model``."""
        return [PreferencePair(r.prompt, r.revision, r.initial_response) for r in self.kept
                if r.initial_response.strip() and r.revision.strip() != r.initial_response.strip()]

    def summary(self) -> dict[str, Any]:
        """Counts, and the mean reward of initial answers and revisions when a reward was used."""
        out: dict[str, Any] = {"records": len(self.records), "kept": len(self.kept),
                               "pairs": len(self.to_preference_pairs()), "reward": self.reward_name}
        scored = [r for r in self.records if r.reward_initial is not None]
        if scored:
            out["reward_initial_mean"] = sum(r.reward_initial for r in scored) / len(scored)
            out["reward_revision_mean"] = sum(r.reward_revision for r in scored) / len(scored)
        return out

    def write_jsonl(self, path: str | Path) -> Path:
        """Every record as one JSON line, written to a temporary file and renamed."""
        target = Path(path).expanduser()
        if target.is_dir():
            raise LLMCycleError(f"out_path: {target} is a folder; pass a .jsonl file path")
        atomic_write_jsonl(target, [r.to_dict() for r in self.records])
        self.path = str(target)
        return target


# ---- generation ----------------------------------------------------------------------------------


def _wrap_chat(tokenizer: Any, system: str | None) -> Callable[[str], str]:
    def wrap(text: str) -> str:
        return user_prompt(tokenizer, text, system)

    return wrap


def make_generator(model: Any, cfg: ConstitutionalConfig) -> Callable[[list[str], int], list[str]]:
    """``gen(texts, stage) -> texts`` from a ``LoadedModel`` (chat-wrapped as ``cfg.chat`` says; stage ``k``
    samples with seed ``generation.seed + k``) or from a callable ``f(texts) -> texts`` (checked on every call)."""
    if isinstance(model, LoadedModel):
        chat = resolve_chat(model.tokenizer, cfg.chat, model.source, "chat") if cfg.chat != "auto" \
            else uses_chat(model)
        wrap = _wrap_chat(model.tokenizer, cfg.system) if chat else (lambda t: t)

        def gen(texts: list[str], stage: int) -> list[str]:
            settings = cfg.generation.model_copy(update={"seed": cfg.generation.seed + stage})
            return generate(model, [wrap(t) for t in texts], settings, batch_size=cfg.batch_size,
                            truncate=cfg.truncate)

        return gen
    if not callable(model):
        raise LLMCycleError(f"model: expected a LoadedModel or a callable f(texts) -> texts, got "
                            f"{type(model).__name__}")
    if cfg.chat == "always":
        raise ConfigError("chat: 'always' needs a LoadedModel with a chat template, not a callable")

    def call(texts: list[str], stage: int) -> list[str]:
        out = model(list(texts))
        if isinstance(out, (str, bytes)) or not hasattr(out, "__len__") or len(out) != len(texts):
            raise DataError(f"generator: returned {type(out).__name__} for {len(texts)} texts; return one string "
                            "per text")
        for i, text in enumerate(out):
            if not isinstance(text, str):
                raise DataError(f"generator: output {i} is {type(text).__name__}, not a string")
        return [t.strip() for t in out]

    return call


def pick_principle(cfg: ConstitutionalConfig, index: int, round_: int) -> Principle:
    """The principle of prompt ``index`` in round ``round_`` (round-robin, or seeded by (seed, index, round))."""
    n = len(cfg.principles)
    if cfg.selection == "round_robin":
        return cfg.principles[(index + round_) % n]
    return cfg.principles[random.Random(f"{cfg.seed}:{index}:{round_}").randrange(n)]


def _check_prompts(prompts: Any) -> list[str]:
    if isinstance(prompts, (str, bytes)) or not hasattr(prompts, "__iter__"):
        raise DataError(f"prompts: expected a list of strings, got {type(prompts).__name__}")
    items = list(prompts)
    if not items:
        raise DataError("prompts: is empty; pass at least one red-team prompt")
    for i, p in enumerate(items):
        if not isinstance(p, str) or not p.strip():
            raise DataError(f"prompts[{i}]: expected a non-empty string, got {p!r}")
    return items


def _resolve_reward(reward: Any, cfg: ConstitutionalConfig) -> Any:
    if reward is None:
        return make_reward(cfg.reward, where="constitutional.reward") if cfg.reward is not None else None
    if isinstance(reward, RewardSource):
        return reward
    return CallableReward(reward)


def run_constitutional(model: Any, prompts: Sequence[str],
                       cfg: ConstitutionalConfig | Mapping[str, Any] | None = None,
                       out_path: str | Path | None = None, *, reward: Any = None) -> ConstitutionalResult:
    """Answer, critique and revise every prompt; optionally keep only improved revisions and write a jsonl.

    Args:
        model: a ``LoadedModel`` (seq2seq or causal), or a callable ``f(texts) -> texts`` used in its place.
        prompts: the red-team prompts.
        cfg: a ``ConstitutionalConfig`` or a mapping of its fields (None: the defaults).
        out_path: write every record to this ``.jsonl`` file (atomically); None writes nothing.
        reward: a reward source ``(prompts, responses) -> floats`` (e.g. ``ProfanityReward()``) or any such
            function; it wins over ``cfg.reward``.

    Returns:
        A ``ConstitutionalResult`` (records, ``to_sft_rows()``, ``to_preference_pairs()``).
    """
    if not isinstance(cfg, ConstitutionalConfig):
        cfg = ConstitutionalConfig.from_dict(dict(cfg or {}), where="constitutional")
    items = _check_prompts(prompts)
    scorer = _resolve_reward(reward, cfg)
    gen = make_generator(model, cfg)
    initial = gen([cfg.response_template.format(prompt=p) for p in items], 0)
    current, history = list(initial), [[] for _ in items]
    for r in range(cfg.rounds):
        chosen = [pick_principle(cfg, i, r) for i in range(len(items))]
        values = [{"prompt": p, "response": resp, "principle": pr.name, "critique_request": pr.critique_request,
                   "revision_request": pr.revision_request} for p, resp, pr in zip(items, current, chosen)]
        critiques = gen([cfg.critique_template.format(**v, critique="") for v in values], 1 + 2 * r)
        current = gen([cfg.revision_template.format(**v, critique=c) for v, c in zip(values, critiques)], 2 + 2 * r)
        for i, (pr, c, rev) in enumerate(zip(chosen, critiques, current)):
            history[i].append(Round(pr.name, c, rev))
    records = [ConstitutionalRecord(i, p, initial[i], h[-1].principle, h[-1].critique, h[-1].revision, h,
                                    kept=bool(h[-1].revision.strip())) for i, (p, h) in enumerate(zip(items, history))]
    if scorer is not None:
        _apply_filter(records, scorer, cfg.min_improvement)
    result = ConstitutionalResult(records, cfg, getattr(scorer, "name", None) if scorer is not None else None)
    if out_path is not None:
        result.write_jsonl(out_path)
    return result


def _apply_filter(records: list[ConstitutionalRecord], scorer: Any, min_improvement: float) -> None:
    """Score initial answers and revisions; keep a record only when its revision is better by > min_improvement."""
    prompts = [r.prompt for r in records]
    name = getattr(scorer, "name", "reward")
    before = check_rewards(scorer(prompts, [r.initial_response for r in records]), len(records), name)
    after = check_rewards(scorer(prompts, [r.revision for r in records]), len(records), name)
    for rec, b, a in zip(records, before, after):
        rec.reward_initial, rec.reward_revision = b, a
        rec.kept = rec.kept and a > b + min_improvement


def load_constitutional(path: str | Path) -> ConstitutionalResult:
    """Read records written by ``write_jsonl`` (the config is not stored there: the result has the defaults)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    records = []
    for line_no, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            row["rounds"] = [Round(**x) for x in row.get("rounds", [])]
            records.append(ConstitutionalRecord(**row))
        except (ValueError, TypeError) as exc:
            raise DataError(f"{p}:{line_no}: not a constitutional record ({exc})") from None
    return ConstitutionalResult(records, ConstitutionalConfig(), path=str(p))
