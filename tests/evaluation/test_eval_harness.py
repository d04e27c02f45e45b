"""Benchmark harness: multiple-choice accuracy equals a hand computation, acc_norm, k-shot, generative."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from llmcycle.evaluation.harness import TaskConfig, choose, load_task, run_task
from llmcycle.evaluation.harness import runner as harness_runner

MC_ROWS = [
    {"question": "What colour is a clear daytime sky?", "choices": ["blue", "a deep shade of green", "red"],
     "answer": 0},
    {"question": "How many wheels does a bicycle have?", "choices": ["one", "two", "three wheels in a row"],
     "answer": 1},
    {"question": "Which animal says moo?", "choices": ["a cat", "a cow", "a dog that barks loudly", "a bird"],
     "answer": "B"},
    {"question": "What do you drink when you are thirsty?", "choices": ["water", "sand", "paper"],
     "answer": "water"},
    {"question": "Which month follows January?", "choices": ["March", "February", "December"], "answer": 1},
    {"question": "Where do fish live?", "choices": ["in trees", "in water", "in the desert sand"], "answer": 1},
    {"question": "What is two plus two?", "choices": ["four", "five", "twenty-two"], "answer": 0},
    {"question": "What falls from clouds when it rains?", "choices": ["water", "rocks", "leaves"], "answer": 0},
]
PROMPT = "Question: {question}\nAnswer:"


def write_task(folder: Path, rows: list[dict], name: str = "toy", **fields) -> Path:
    """A task YAML and its JSONL in ``folder``; ``fields`` override the YAML's keys."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    spec = {"name": name, "type": "multiple_choice", "data": f"{name}.jsonl", "prompt": PROMPT, **fields}
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(spec), encoding="utf-8")  # JSON is YAML
    return path


# --- the hand computation: plain forward passes, written out here, not the harness's own scoring ---

def hand_loglik_causal(loaded, context: str, continuation: str) -> float:
    tok, model = loaded.tokenizer, loaded.model
    ctx = tok(context)["input_ids"]  # [CLS] context
    whole = tok(context + continuation)["input_ids"]  # [CLS] context continuation (no EOS)
    assert whole[:len(ctx)] == ctx and ctx[0] == tok.cls_token_id and whole[-1] != tok.sep_token_id
    with torch.no_grad():
        logp = model(torch.tensor([whole])).logits.log_softmax(-1)[0]  # (T, V)
    return sum(float(logp[p - 1, whole[p]]) for p in range(len(ctx), len(whole)))


def hand_loglik_seq2seq(loaded, context: str, continuation: str) -> float:
    tok, model = loaded.tokenizer, loaded.model
    enc = tok(context)["input_ids"]  # [CLS] context [SEP]
    labels = tok(text_target=continuation)["input_ids"]  # [CLS] continuation [SEP]
    assert labels[0] == tok.cls_token_id and labels[-1] == tok.sep_token_id
    decoder_in = [model.config.decoder_start_token_id] + labels[:-1]  # teacher forcing, shifted right
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([enc]), decoder_input_ids=torch.tensor([decoder_in])).logits
        logp = logp.log_softmax(-1)[0]  # (T_out, V)
    # the leading [CLS] is decoder context, not answer; the trailing [SEP] (EOS) is scored
    return sum(float(logp[p, labels[p]]) for p in range(1, len(labels)))


def argmax(values: list[float]) -> int:
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-t5", "tiny-llama", "tiny-bart"])
def test_mc_accuracy_equals_hand_computation(tmp_path, load_builtin, name):
    loaded = load_builtin(name)
    result = run_task(write_task(tmp_path, MC_ROWS), loaded, batch_size=3)  # batches mix lengths: padding
    hand = hand_loglik_causal if loaded.kind == "causal" else hand_loglik_seq2seq
    golds = [0, 1, 1, 0, 1, 1, 0, 0]
    preds, preds_norm = [], []
    assert result.n == len(MC_ROWS) == len(result.records)
    for row, rec, gold in zip(MC_ROWS, result.records, golds):
        context = PROMPT.format(question=row["question"])
        lls = [hand(loaded, context, " " + c) for c in row["choices"]]
        assert rec["loglik"] == pytest.approx(lls, abs=1e-4)
        preds.append(argmax(lls))
        preds_norm.append(argmax([ll / len(c) for ll, c in zip(lls, row["choices"])]))
        assert (rec["pred"], rec["pred_norm"], rec["gold"]) == (preds[-1], preds_norm[-1], gold)
        assert rec["context"] == context and rec["choices"] == row["choices"]
    assert result.metrics["acc"] == sum(p == g for p, g in zip(preds, golds)) / len(golds)
    assert result.metrics["acc_norm"] == sum(p == g for p, g in zip(preds_norm, golds)) / len(golds)
    assert result.type == "multiple_choice" and result.untrained and result.model == f"builtin:{name} (untrained)"


def test_loglik_does_not_depend_on_batch_size(tmp_path, load_builtin):
    path = write_task(tmp_path, MC_ROWS[:4])
    one = run_task(path, load_builtin("tiny-gpt2"), batch_size=1)
    many = run_task(path, load_builtin("tiny-gpt2"), batch_size=16)
    for a, b in zip(one.records, many.records):
        assert a["loglik"] == pytest.approx(b["loglik"], abs=1e-4)


def test_seq2seq_eos_can_be_left_out(load_builtin):
    from llmcycle.evaluation.harness import loglikelihood

    loaded = load_builtin("tiny-t5")
    tok, model = loaded.tokenizer, loaded.model
    context, cont = "Question: Where do fish live?\nAnswer:", " in water"
    with_eos, without = (loglikelihood(loaded, [(context, cont)], score_eos=flag)[0] for flag in (True, False))
    labels = tok(text_target=cont)["input_ids"]
    decoder_in = [model.config.decoder_start_token_id] + labels[:-1]
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([tok(context)["input_ids"]]),
                     decoder_input_ids=torch.tensor([decoder_in])).logits.log_softmax(-1)[0]
    eos_term = float(logp[len(labels) - 1, labels[-1]])
    assert with_eos == pytest.approx(hand_loglik_seq2seq(loaded, context, cont), abs=1e-4)
    assert without == pytest.approx(with_eos - eos_term, abs=1e-4)


def test_long_causal_context_keeps_the_continuation(load_builtin):
    from llmcycle.evaluation.harness.loglik import encode_causal

    tok = load_builtin("tiny-gpt2").tokenizer
    enc = encode_causal(tok, "word " * 50 + "Answer: ", "the blue whale", [tok.cls_token_id], limit=16)
    assert len(enc.inputs) == 17 and enc.n_score == 3  # input = inputs[:-1], 16 tokens
    assert tok.decode(enc.inputs[-enc.n_score:]) == "the blue whale"


def test_choose_acc_and_acc_norm():
    # the long choice loses on summed loglik, wins per character
    assert choose([-2.0, -5.0], [1, 20]) == (0, 1)
    assert choose([-3.0, -3.0, -1.0], [5, 5, 5]) == (2, 2)
    assert choose([-1.0, -1.0], [4, 4]) == (0, 0)  # ties go to the first choice


def test_answer_as_index_letter_or_text():
    from llmcycle.core.errors import DataError
    from llmcycle.evaluation.harness.items import parse_answer

    choices = ["red", "B", "blue "]
    assert parse_answer(2, choices, "auto", "f:1") == 2
    assert parse_answer("2", choices, "auto", "f:1") == 2
    assert parse_answer("c", choices, "auto", "f:1") == 2  # a letter
    assert parse_answer("B", choices, "auto", "f:1") == 1  # the text of a choice wins over the letter reading
    assert parse_answer("A", choices, "letter", "f:1") == 0
    assert parse_answer(" blue", choices, "text", "f:1") == 2
    with pytest.raises(DataError, match="f:1: answer: expected a 0-based index"):
        parse_answer("a", choices, "index", "f:1")
    with pytest.raises(DataError, match="out of range"):
        parse_answer(-1, choices, "auto", "f:1")


def test_acc_norm_differs_from_acc_when_lengths_differ(tmp_path, load_builtin, monkeypatch):
    rows = [{"question": "q1", "choices": ["a", "a much longer answer"], "answer": 1},
            {"question": "q2", "choices": ["yes", "no"], "answer": 0}]
    fixed = {" a": -2.0, " a much longer answer": -5.0, " yes": -1.0, " no": -4.0}
    monkeypatch.setattr(harness_runner, "loglikelihood",
                        lambda loaded, requests, batch_size: [fixed[cont] for _, cont in requests])
    result = run_task(write_task(tmp_path, rows), load_builtin("tiny-gpt2"))
    assert [r["pred"] for r in result.records] == [0, 0]
    assert [r["pred_norm"] for r in result.records] == [1, 0]
    assert result.metrics["acc"] == 0.5 and result.metrics["acc_norm"] == 1.0


def capture_contexts(monkeypatch) -> list[list[tuple[str, str]]]:
    """Replace the scorer by one that records its requests and scores every choice 0."""
    calls: list[list[tuple[str, str]]] = []

    def fake(loaded, requests, batch_size):
        calls.append(list(requests))
        return [0.0] * len(requests)

    monkeypatch.setattr(harness_runner, "loglikelihood", fake)
    return calls


def test_kshot_prompt_holds_k_solved_examples_never_the_item(tmp_path, load_builtin, monkeypatch):
    capture_contexts(monkeypatch)
    loaded = load_builtin("tiny-gpt2")
    path = write_task(tmp_path, MC_ROWS)
    golds = [0, 1, 1, 0, 1, 1, 0, 0]
    solved = {f"Question: {r['question']}\nAnswer: {r['choices'][g]}" for r, g in zip(MC_ROWS, golds)}
    result = run_task(path, loaded, num_fewshot=3)
    assert result.num_fewshot == 3
    for row, rec in zip(MC_ROWS, result.records):
        blocks = rec["context"].split("\n\n")
        assert len(blocks) == 4 and blocks[-1] == PROMPT.format(question=row["question"])
        assert all(b in solved for b in blocks[:3]) and len(set(blocks[:3])) == 3
        assert rec["context"].count(row["question"]) == 1  # never the item itself among its examples
    # deterministic under the seed, and independent of limit
    again = run_task(path, loaded, num_fewshot=3)
    assert [r["context"] for r in again.records] == [r["context"] for r in result.records]
    first_two = run_task(path, loaded, num_fewshot=3, limit=2)
    assert [r["context"] for r in first_two.records] == [r["context"] for r in result.records[:2]]
    other_seed = run_task(write_task(tmp_path / "s", MC_ROWS, fewshot_seed=7), loaded, num_fewshot=3)
    assert [r["context"] for r in other_seed.records] != [r["context"] for r in result.records]


def test_kshot_from_a_fewshot_file_and_description(tmp_path, load_builtin, monkeypatch):
    calls = capture_contexts(monkeypatch)
    pool = [{"question": "Pool question one?", "choices": ["x", "y"], "answer": 0},
            {"question": MC_ROWS[0]["question"], "choices": MC_ROWS[0]["choices"], "answer": 0},  # same as item 0
            {"question": "Pool question two?", "choices": ["x", "y"], "answer": 1}]
    (tmp_path / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pool), encoding="utf-8")
    path = write_task(tmp_path, MC_ROWS[:2], fewshot_file="pool.jsonl", num_fewshot=2,
                      description="Answer the question.")
    result = run_task(path, load_builtin("tiny-gpt2"))
    first = result.records[0]["context"].split("\n\n")
    assert first[0] == "Answer the question."
    assert sorted(first[1:3]) == ["Question: Pool question one?\nAnswer: x", "Question: Pool question two?\nAnswer: y"]
    assert calls[0][0] == (result.records[0]["context"], " blue")


def test_letter_scoring_with_options(tmp_path, load_builtin, monkeypatch):
    calls = capture_contexts(monkeypatch)
    path = write_task(tmp_path, MC_ROWS[:1], prompt="{question}\n{options}\nAnswer:", choice_format="{letter}")
    result = run_task(path, load_builtin("tiny-gpt2"))
    assert result.records[0]["context"].endswith("A. blue\nB. a deep shade of green\nC. red\nAnswer:")
    assert [c for _, c in calls[0]] == [" A", " B", " C"]


def test_outputs_written_atomically(tmp_path, load_builtin):
    out = tmp_path / "out"
    result = run_task(write_task(tmp_path, MC_ROWS[:3]), load_builtin("tiny-gpt2"), out_dir=out)
    assert sorted(p.name for p in out.iterdir()) == ["toy.metrics.json", "toy.records.jsonl"]
    lines = (out / "toy.records.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["loglik"] for x in lines] == [r["loglik"] for r in result.records]
    summary = json.loads((out / "toy.metrics.json").read_text(encoding="utf-8"))
    assert summary["metrics"] == result.metrics and summary["n"] == 3 and summary["untrained"] is True


# --- generative tasks ---

GEN_ROWS = [{"country": c, "answer": a} for c, a in
            [("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Egypt", "Cairo"), ("Peru", "Lima"),
             ("Kenya", ["Nairobi", "Nairobi City"])]]


def gen_task(tmp_path: Path, **fields) -> Path:
    spec = {"type": "generative", "fields": {"question": "country"}, "prompt": "Capital of {question}?",
            "generation": {"max_new_tokens": 4}, **fields}
    return write_task(tmp_path, GEN_ROWS, name="caps", **spec)


def test_generative_task_runs_end_to_end(tmp_path, load_builtin):
    result = run_task(gen_task(tmp_path), load_builtin("tiny-gpt2"), batch_size=4)
    assert result.type == "generative" and result.n == 6
    assert set(result.metrics) == {"exact_match", "exact_match_stderr"}
    assert 0.0 <= result.metrics["exact_match"] <= 1.0
    for row, rec in zip(GEN_ROWS, result.records):
        assert set(rec) == {"index", "context", "prediction", "references", "score"}
        assert rec["context"] == f"Capital of {row['country']}?" and isinstance(rec["prediction"], str)
        assert rec["references"] == (row["answer"] if isinstance(row["answer"], list) else [row["answer"]])
        assert rec["score"] in (0.0, 1.0)


def test_generative_exact_match_equals_hand_count(tmp_path, load_builtin, monkeypatch):
    answers = {"Capital of France?": "paris", "Capital of Italy?": "Rome\nand more text",
               "Capital of Kenya?": "Nairobi City", "Capital of Japan?": "Kyoto", "Capital of Egypt?": "Cairo city"}

    def fake_generate(loaded, inputs, settings, batch_size=8):
        assert settings.max_new_tokens == 4
        return [answers.get(text, "no idea") for text in inputs]

    monkeypatch.setattr(harness_runner, "generate", fake_generate)
    result = run_task(gen_task(tmp_path, ignore_case=True), load_builtin("tiny-gpt2"))
    # right: France (case ignored), Italy (cut at the newline), Kenya (second reference): 3 of 6
    assert [r["score"] for r in result.records] == [1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    assert result.metrics["exact_match"] == 3 / 6
    assert result.records[2]["prediction"] == "Rome"
    strict = run_task(gen_task(tmp_path), load_builtin("tiny-gpt2"))
    assert strict.metrics["exact_match"] == 2 / 6  # "paris" != "Paris" when case counts


@pytest.mark.parametrize("metric", ["rouge1", "rougeL", "bleu", "chrf"])
def test_generative_other_metrics(tmp_path, load_builtin, monkeypatch, metric):
    from llmcycle.evaluation import bleu, chrf

    preds = ["Paris", "Osaka", "Rome", "Cairo", "Lima", "Nairobi"]
    monkeypatch.setattr(harness_runner, "generate", lambda loaded, inputs, settings, batch_size=8: preds)
    result = run_task(gen_task(tmp_path, metric=metric), load_builtin("tiny-gpt2"))
    refs = [r["answer"] if isinstance(r["answer"], list) else [r["answer"]] for r in GEN_ROWS]
    if metric in ("rouge1", "rougeL"):  # one-word answers: F1 is 1 for a match, 0 otherwise
        assert [r["score"] for r in result.records] == [1.0, 0.0, 1.0, 1.0, 1.0, 1.0]
        assert result.metrics[metric] == pytest.approx(5 / 6)
    else:
        fn = bleu if metric == "bleu" else chrf
        assert result.metrics[metric] == pytest.approx(fn(preds, refs)[metric])
        assert result.records[0]["score"] == pytest.approx(fn(["Paris"], [["Paris"]])[metric])


def test_shipped_tasks_validate_and_run(load_builtin):
    from llmcycle.evaluation.harness import shipped_tasks
    from llmcycle.evaluation.harness.items import read_items

    assert {"general_knowledge", "capitals"} <= set(shipped_tasks())
    for name in shipped_tasks():
        task = load_task(name)
        assert isinstance(task, TaskConfig) and task.name == name
        assert len(read_items(task)) >= 12
    result = run_task("general_knowledge", load_builtin("tiny-gpt2"), limit=4, num_fewshot=2)
    assert result.n == 4 and set(result.metrics) >= {"acc", "acc_norm"}
