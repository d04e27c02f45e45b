"""Few-shot prompts: shot order and separators, and the four selectors (first, indices, random, nearest)."""

from __future__ import annotations

import pytest

from llmcycle.prompts import (
    FirstShots,
    IndexShots,
    NearestShots,
    PromptError,
    RandomShots,
    build_prompt,
    build_prompts,
    get_template,
)


def test_zero_one_and_three_shots_in_order_with_separator(tok, pool, row) -> None:
    template = get_template("instruction")
    query = template.render(row)
    zero = build_prompt(template, row, tokenizer=tok)
    assert zero.text == query and zero.shot_ids == [] and zero.shots_requested == 0
    one = build_prompt(template, row, tokenizer=tok, shots=FirstShots(pool, 1))
    assert one.text == f"{template.render(pool[0])} {pool[0]['summary']}\n\n{query}"
    three = build_prompt("flan", row, tokenizer=tok, shots=IndexShots(pool, [3, 1, 4]), separator="\n###\n")
    flan = get_template("flan")
    parts = three.text.split("\n###\n")
    assert parts == [flan.render_shot(pool[3]), flan.render_shot(pool[1]), flan.render_shot(pool[4]), flan.render(row)]
    assert all(p.endswith("\n" + pool[i]["summary"]) for p, i in zip(parts, [3, 1, 4]))
    assert three.shot_ids == [3, 1, 4] and three.shots_requested == 3 and not three.was_cut
    assert three.n_tokens == len(tok(three.text, add_special_tokens=True)["input_ids"])


def test_query_in_pool_is_never_its_own_shot(tok, pool) -> None:
    query = pool[0]
    first = build_prompt("instruction", query, tokenizer=tok, shots=FirstShots(pool, 2))
    assert first.shot_ids == [1, 2] and first.shots_excluded == [0]
    explicit = build_prompt("instruction", query, tokenizer=tok, shots=IndexShots(pool, [0, 3]))
    assert explicit.shot_ids == [3] and explicit.shots_excluded == [0] and explicit.shots_requested == 2
    for seed in range(20):
        drawn = build_prompt("instruction", query, tokenizer=tok, shots=RandomShots(pool, 5, seed=seed))
        assert 0 not in drawn.shot_ids and len(drawn.shot_ids) == 5


def test_random_draw_is_seeded_per_row_or_shared(pool, row) -> None:
    rows = [row, dict(row, input="another query", dialogue="another query")]
    a = [RandomShots(pool, 3, seed=7).select(r, i).ids for i, r in enumerate(rows)]
    b = [RandomShots(pool, 3, seed=7).select(r, i).ids for i, r in enumerate(rows)]
    assert a == b  # deterministic under a seed
    draws = {tuple(RandomShots(pool, 3, seed=s).select(row, 0).ids) for s in range(10)}
    assert len(draws) > 1  # different seeds, different shots
    per_row = {tuple(RandomShots(pool, 3, seed=7).select(row, i).ids) for i in range(10)}
    assert len(per_row) > 1  # different rows can get different shots
    shared = {tuple(RandomShots(pool, 3, seed=7, per_row=False).select(row, i).ids) for i in range(10)}
    assert len(shared) == 1  # or the same shots for every row


def test_nearest_picks_the_semantic_neighbours_and_never_the_row_itself(tok, pool, make_row) -> None:
    query = make_row("#Person1#: Hello, could I book a table for two this Friday evening?\n#Person2#: Of course, "
                     "what time would you like?", "#Person1# books a table for Friday.", "restaurant booking")
    selector = NearestShots(pool + [query], 2)
    chosen = selector.select(query)
    assert sorted(chosen.ids) == [0, 4]  # the two table bookings, out of weather, cars, jobs, flights
    assert chosen.excluded == [len(pool)]  # the query itself, also in the pool, is skipped
    assert chosen.scores == sorted(chosen.scores, reverse=True)
    cached = selector.pool_embeddings
    batch = build_prompts("instruction", [query, pool[1]], tokenizer=tok, shots=selector)
    assert selector.pool_embeddings is cached  # the pool is embedded once
    assert batch[0].shot_ids == chosen.ids and 1 not in batch[1].shot_ids
    assert batch[0].text.count("Summary:") == 3


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: IndexShots(p, [1, 99]), r"shot index 99 is out of range: the shot pool has 6 rows"),
        (lambda p: IndexShots(p, [-1]), r"shot index -1 is out of range"),
        (lambda p: IndexShots(p, [2, 2]), r"shot indices repeat a row"),
        (lambda p: FirstShots(p, 7), r"7 shots asked for but the shot pool has only 6 rows"),
        (lambda p: RandomShots(p, -1), r"number of shots must be an integer >= 0"),
        (lambda p: FirstShots(None, 1), r"shot pool must be a datasets.Dataset or a list of rows"),
    ],
)
def test_bad_selectors_are_clear_errors(pool, make, expected) -> None:
    with pytest.raises(PromptError, match=expected):
        make(pool)


def test_pool_can_be_a_dataset(tok, pool, row) -> None:
    from datasets import Dataset

    dataset = Dataset.from_list(pool)
    built = build_prompt("instruction", row, tokenizer=tok, shots=IndexShots(dataset, [2]))
    assert built.text.startswith(get_template("instruction").render_shot(pool[2]))
