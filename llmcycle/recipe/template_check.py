"""The template contract: a model is trained on the very prompt tokens it is later evaluated and served with.

One example is rendered three ways, by the code that does each job:

1. the training collator (``llmcycle.tuning.data.tokenize_pairs``: the prompt part of a training row,
   its labels -100);
2. the evaluation prompt builder (``llmcycle.prompts.build_prompts`` then the generation engine's
   tokenisation);
3. the server (``/v1/chat/completions``: ``ServedModels.chat_prompt`` of the row as one user message,
   then the engine's tokenisation; ``/v1/completions`` receives the evaluation prompt as it is).

The three token sequences must be equal, and the training labels must end with a token the generation
config stops on (else the tuned model never learns to stop where generation would). A mismatch names
the two renderings and the first differing token. ``llmcycle check-template MODEL`` runs it on one
model; ``llmcycle run`` runs it before every ``tune`` stage trains, for each later stage that prompts the
tuned model with a row template (evaluate, generate, optimize's measurement, serve).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from llmcycle.core.errors import ConfigError
from llmcycle.generation.engine import eos_token_ids
from llmcycle.models.chat import uses_chat
from llmcycle.prompts import build_prompts, get_template
from llmcycle.serving.models import ServedModels
from llmcycle.tuning.data import IGNORE, to_pairs, tokenize_pairs

BIG = 1_000_000  # no truncation: a cut is not a template mismatch


@dataclass
class Rendering:
    """One job's tokens of the example prompt."""

    name: str
    ids: list[int]


@dataclass
class TemplateCheck:
    """What ``check_template`` found; ``problems`` is empty when the contract holds."""

    model: str
    chat: bool
    template: str
    renderings: list[Rendering]
    label_end: int | None
    stop_ids: list[int]
    tokens: Any = field(repr=False, default=None)  # ids -> token strings
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> list[str]:
        """Lines for the terminal: each rendering's length and head, the stop check, the verdict."""
        lines = [f"model {self.model} ({'chat template' if self.chat else 'plain prompts'}), template "
                 f"'{self.template}'"]
        for r in self.renderings:
            head = " ".join(self.tokens(r.ids[:12]))
            lines.append(f"  {r.name}: {len(r.ids)} tokens: {head}{' ...' if len(r.ids) > 12 else ''}")
        end = self.tokens([self.label_end])[0] if self.label_end is not None else "(none)"
        lines.append(f"  training labels end with {end!r}; generation stops on "
                     f"{', '.join(repr(t) for t in self.tokens(self.stop_ids)) or '(nothing)'}")
        lines += [f"  MISMATCH: {p}" for p in self.problems] or ["  ok: the same prompt tokens everywhere, and the "
                                                                  "labels end where generation stops"]
        return lines


def _first_difference(a: Sequence[int], b: Sequence[int]) -> int:
    return next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def check_template(loaded: Any, row: Mapping[str, Any], template: str = "none",
                   train_templates: Sequence[str] | None = None) -> TemplateCheck:
    """Render ``row`` with ``template`` by the training collator, the evaluation prompt builder and the server
    of ``loaded`` (in chat form when ``uses_chat``), and compare; see the module docstring.

    ``train_templates``: what the training stage renders with (its ``templates``); ``template`` must be one.
    """
    tok, kind = loaded.tokenizer, loaded.kind
    chat = uses_chat(loaded)
    stops = sorted(eos_token_ids(loaded.model, tok))
    check = TemplateCheck(loaded.source, chat, template, [], None, stops,
                          tokens=lambda ids: tok.convert_ids_to_tokens([int(i) for i in ids]))
    if train_templates is not None and template not in train_templates:
        check.problems.append(f"prompts are rendered with template '{template}', which training never used "
                              f"(its templates: {', '.join(train_templates)})")
    get_template(template)
    trained = tokenize_pairs(to_pairs([row], [template]), tok, kind, BIG, BIG, chat, stops).rows[0]
    labels = trained["labels"]
    if kind == "causal":
        first = next((k for k, v in enumerate(labels) if v != IGNORE), len(labels))
        train_ids = trained["input_ids"][:first]
    else:
        train_ids = trained["input_ids"]
    check.label_end = next((v for v in reversed(labels) if v != IGNORE), None)
    text = build_prompts(template, [row], tokenizer=tok, chat=chat, max_input_tokens=BIG).texts[0]
    eval_ids = list(tok(text)["input_ids"])
    served = ServedModels(loaded, {"base": None})
    turns = row.get("messages")
    if isinstance(turns, list) and turns:
        messages = [(t["role"], t["content"]) for t in turns[:-1]]
    else:
        messages = [("user", get_template(template).render(row))]
    server_ids = list(tok(served.chat_prompt(messages))["input_ids"])
    check.renderings = [Rendering("training collator", list(train_ids)), Rendering("evaluation prompt builder",
                        eval_ids), Rendering("server (/v1/chat/completions)", server_ids)]
    base = check.renderings[0]
    for other in check.renderings[1:]:
        if other.ids != base.ids:
            k = _first_difference(base.ids, other.ids)
            a = check.tokens(base.ids[k:k + 1]) or ["(end)"]
            b = check.tokens(other.ids[k:k + 1]) or ["(end)"]
            check.problems.append(f"the {base.name} and the {other.name} render the prompt differently: first "
                                  f"difference at token {k}: {a[0]!r} ({base.name}) vs {b[0]!r} ({other.name})")
    if check.label_end is None:
        check.problems.append("the training example has no labelled token")
    elif stops and check.label_end not in stops:
        end = check.tokens([check.label_end])[0]
        check.problems.append(f"the training labels end with {end!r}, which generation does not stop on "
                              f"(generation_config.eos_token_id: {', '.join(check.tokens(stops))}): the tuned "
                              "model would not end its answer where generation stops")
    return check


def example_row(rows: Any) -> Mapping[str, Any]:
    """The shortest of the first 32 rows (a check must not trip over truncation)."""
    n = min(len(rows), 32)
    if n == 0:
        raise ConfigError("template check: the data has no rows")
    candidates = [dict(rows[i]) for i in range(n)]
    return min(candidates, key=lambda r: len(str(r.get("input", ""))))


PROMPTING = ("evaluate", "generate", "optimize", "serve")  # stages that prompt a model with a row template (the
# application stages' templates, react's or pal's, build their own prompts around other fields)


def prompting_template(cfg: Any) -> str | None:
    """The template a stage prompts its model with: ``template`` (evaluate, generate, serve) or
    ``measure.template`` (optimize); None for stages that do not prompt with one."""
    template = getattr(cfg, "template", None)
    if isinstance(template, str):
        return template
    measure = getattr(cfg, "measure", None)
    template = getattr(measure, "template", None)
    return template if isinstance(template, str) else None


def recipe_pairs(steps: Sequence[Any]) -> list[tuple[Any, Any, str]]:
    """``(tune step, later step, template)`` for every stage that prompts a model a ``tune`` stage trained
    (up to the next tune stage)."""
    pairs = []
    for i, step in enumerate(steps):
        if step.kind != "tune":
            continue
        for later in steps[i + 1:]:
            if later.kind == "tune":
                break
            if later.kind not in PROMPTING:
                continue
            template = prompting_template(later.cfg)
            if template is not None:
                pairs.append((step, later, template))
    return pairs


def check_recipe(loaded: Any, rows: Any, steps: Sequence[Any], only: Any = None) -> list[str]:
    """The template contract of a planned recipe on the model its tune stage(s) receive and the training rows:
    one line per problem (empty: it holds). ``only``: check this tune step alone."""
    problems: list[str] = []
    row = None
    for tune, later, template in recipe_pairs(steps):
        if only is not None and tune is not only:
            continue
        row = row if row is not None else example_row(rows)
        found = check_template(loaded, row, template, list(tune.cfg.templates))
        problems += [f"{tune.name} -> {later.name}: {p}" for p in found.problems]
    return problems
