"""``build_prompt``: shots + query within the model's context budget, with a record of every cut.

Layout (plain models)::

    <template(shot 1)><target(shot 1)> SEP ... SEP <template(shot k)><target(shot k)> SEP <template(query)>

``SEP`` is the separator, also the stop sequence generation should use. Chat models get the same
shots as user / assistant turns (``chat=True``).

The budget, in order: (1) the whole prompt is counted with the model's tokenizer; (2) while it is
over ``max_input_tokens``, shots are dropped one at a time from the end of the selection (the
last drawn / least similar); (3) with no shots left, the query's input field (the dialogue) is cut
from its end until the prompt fits; the instruction text is never cut. ``BuiltPrompt`` records
each step, so nothing is silently cut.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from llmcycle.prompts.budget import count_tokens, resolve_max_tokens, truncate_to_fit
from llmcycle.prompts.chat import render_chat
from llmcycle.prompts.registry import get_template
from llmcycle.prompts.shots import Selection, ShotSelector
from llmcycle.prompts.templates import PromptError, PromptTemplate, resolve_field


@dataclass
class BuiltPrompt:
    """One prompt and what the budget did to it."""

    text: str
    n_tokens: int  # tokens of ``text``, special tokens included
    max_tokens: int  # the budget it was built against
    template: str
    shots_requested: int
    shot_ids: list[int]  # pool ids shown, in order
    shots_dropped: list[int] = field(default_factory=list)  # pool ids dropped for the budget
    shots_excluded: list[int] = field(default_factory=list)  # pool ids skipped: they hold the query itself
    input_truncated: bool = False
    tokens_removed: int = 0  # tokens cut from the end of the input field
    n_tokens_full: int = 0  # tokens the prompt would take with every selected shot and the whole input
    max_tokens_source: str = "max_input_tokens"
    row_index: int | None = None

    @property
    def was_cut(self) -> bool:
        """Whether the budget dropped a shot or truncated the input."""
        return bool(self.shots_dropped) or self.input_truncated

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON reports."""
        return asdict(self)


Composer = Callable[[int, "str | None"], str]


def _composer(template: PromptTemplate, row: Mapping[str, Any], shot_rows: Sequence[Mapping[str, Any]],
              tokenizer: Any, separator: str, chat: bool, system: str | None) -> Composer:
    """``compose(n_shots, input_override)``: the prompt text with the first ``n_shots`` shots."""
    field_name = template.input_field or ""
    if chat:
        def compose_chat(n: int, value: str | None) -> str:
            overrides = {field_name: value} if value is not None else None
            return render_chat(template, row, tokenizer, system, shot_rows[:n], overrides)
        return compose_chat
    shot_texts = [template.render_shot(s) for s in shot_rows]

    def compose(n: int, value: str | None) -> str:
        query = template.render(row, {field_name: value} if value is not None else None)
        return separator.join(shot_texts[:n] + [query])
    return compose


def build_prompt(
    template: PromptTemplate | str,
    row: Mapping[str, Any],
    *,
    tokenizer: Any,
    shots: ShotSelector | None = None,
    max_input_tokens: int | None = None,
    separator: str = "\n\n",
    row_index: int | None = None,
    chat: bool = False,
    system: str | None = None,
) -> BuiltPrompt:
    """The prompt for ``row``: shots chosen by ``shots`` then the query, fitted to the budget.

    Args:
        template: a ``PromptTemplate`` or a registered name.
        row: the query row (a ``load_data`` row, or any mapping with the template's fields).
        tokenizer: the model's tokenizer; every count uses it.
        shots: a ``ShotSelector`` over the pool of solved examples; ``None`` for zero-shot.
        max_input_tokens: the budget; default ``tokenizer.model_max_length`` (see ``resolve_max_tokens``).
        separator: between shots and before the query (the stop sequence for generation).
        row_index: the row's position in its split (seeds per-row random draws).
        chat: wrap in the tokenizer's chat template, shots as earlier turns.
        system: system message for chat prompts.
    """
    template = get_template(template)
    limit, source = resolve_max_tokens(tokenizer, max_input_tokens)
    selection = shots.select(row, row_index) if shots is not None else Selection([])
    shot_rows = [shots.pool_row(i) for i in selection.ids] if shots is not None else []
    compose = _composer(template, row, shot_rows, tokenizer, separator, chat, system)
    text = compose(len(shot_rows), None)
    n_full = n = count_tokens(tokenizer, text)
    kept = len(shot_rows)
    while n > limit and kept > 0:  # (2) drop shots, last chosen first
        kept -= 1
        text = compose(kept, None)
        n = count_tokens(tokenizer, text)
    truncated, removed = n > limit, 0
    if truncated:  # (3) zero shots and still over: cut the input field, keep the instruction
        text, removed = _truncate_query(template, row, tokenizer, compose, limit)
        n = count_tokens(tokenizer, text)
    return BuiltPrompt(
        text=text, n_tokens=n, max_tokens=limit, template=template.name,
        shots_requested=shots.k if shots is not None else 0, shot_ids=selection.ids[:kept],
        shots_dropped=selection.ids[kept:], shots_excluded=list(selection.excluded),
        input_truncated=truncated, tokens_removed=removed,
        n_tokens_full=n_full, max_tokens_source=source, row_index=row_index,
    )


def _truncate_query(template: PromptTemplate, row: Mapping[str, Any], tokenizer: Any, compose: Composer,
                    limit: int) -> tuple[str, int]:
    """The zero-shot prompt with the input field cut from its end to fit ``limit``; (text, tokens removed)."""
    field_name = template.input_field or ""

    def fits(value: str) -> bool:
        return count_tokens(tokenizer, compose(0, value)) <= limit

    if not fits(""):
        bare = count_tokens(tokenizer, compose(0, ""))
        raise PromptError(f"template '{template.name}' takes {bare} tokens with an empty {{{field_name}}}, more "
                          f"than max_input_tokens={limit}; raise the budget or use a shorter template")
    value = resolve_field(row, field_name, template.name)
    kept, removed = truncate_to_fit(tokenizer, value, fits)
    return compose(0, kept), removed


@dataclass
class PromptSummary:
    """What the budget did across a batch of prompts."""

    n_prompts: int
    max_tokens: int | None
    n_with_dropped_shots: int
    shots_dropped: int
    n_truncated: int
    tokens_removed: int
    n_with_excluded_shots: int
    max_n_tokens: int
    mean_n_tokens: float

    def describe(self) -> str:
        """One line for logs and reports."""
        return (f"{self.n_prompts} prompts, at most {self.max_n_tokens} of {self.max_tokens} tokens "
                f"(mean {self.mean_n_tokens:.0f}); {self.n_with_dropped_shots} dropped shots "
                f"({self.shots_dropped} in all); {self.n_truncated} had the input truncated "
                f"({self.tokens_removed} tokens removed); {self.n_with_excluded_shots} skipped a shot "
                "equal to the query")


@dataclass
class PromptBatch:
    """Prompts for a whole split, in row order, with a summary of the budget's cuts."""

    prompts: list[BuiltPrompt]

    @property
    def texts(self) -> list[str]:
        """The prompt texts, in row order (what generation takes)."""
        return [p.text for p in self.prompts]

    @property
    def summary(self) -> PromptSummary:
        """Counts of dropped shots and truncations."""
        ps, n = self.prompts, len(self.prompts)
        return PromptSummary(
            n_prompts=n, max_tokens=ps[0].max_tokens if ps else None,
            n_with_dropped_shots=sum(bool(p.shots_dropped) for p in ps),
            shots_dropped=sum(len(p.shots_dropped) for p in ps),
            n_truncated=sum(p.input_truncated for p in ps), tokens_removed=sum(p.tokens_removed for p in ps),
            n_with_excluded_shots=sum(bool(p.shots_excluded) for p in ps),
            max_n_tokens=max((p.n_tokens for p in ps), default=0),
            mean_n_tokens=sum(p.n_tokens for p in ps) / n if n else 0.0,
        )

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, i: int) -> BuiltPrompt:
        return self.prompts[i]


def build_prompts(
    template: PromptTemplate | str,
    rows: Iterable[Mapping[str, Any]],
    *,
    tokenizer: Any,
    shots: ShotSelector | None = None,
    max_input_tokens: int | None = None,
    separator: str = "\n\n",
    chat: bool = False,
    system: str | None = None,
) -> PromptBatch:
    """``build_prompt`` for every row of a split (a ``Dataset`` or a list), rows indexed from 0."""
    rows = list(rows)
    if shots is not None:
        shots.prepare(rows)
    return PromptBatch([
        build_prompt(template, row, tokenizer=tokenizer, shots=shots, max_input_tokens=max_input_tokens,
                     separator=separator, row_index=i, chat=chat, system=system)
        for i, row in enumerate(rows)
    ])
