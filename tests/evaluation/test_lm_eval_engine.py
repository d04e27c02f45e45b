"""lm-evaluation-harness as the benchmark engine: ``LLMCycleLM`` scores lm-eval tasks with llmcycle's code.

The shipped tasks run through lm-eval on a causal and a seq2seq builtin give the same accuracy, the
same per-choice log-likelihoods and the same generations as llmcycle's own harness; adapters, local
task folders with relative data files and per-sample logs in the run folder work; without lm-eval
the error is one line.
"""

from __future__ import annotations

import json
import sys

import pytest

from llmcycle.core.errors import ConfigError, DataError, LLMCycleError
from llmcycle.evaluation.harness import run_task
from llmcycle.evaluation.harness.lm_eval_bridge import LM_EVAL_TASKS, lm_eval_available, run_lm_eval, task_manager
from llmcycle.evaluation.harness.loglik import loglikelihood

SHIPPED = ("capitals", "general_knowledge")


@pytest.fixture(scope="module")
def lm_eval():
    return pytest.importorskip("lm_eval")


@pytest.fixture(scope="module")
def wrapper(lm_eval):
    from llmcycle.evaluation.harness.lm_eval_model import LLMCycleLM

    return LLMCycleLM


def _evaluate(lm_eval, lm, tasks, **kwargs):
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(LM_EVAL_TASKS), include_defaults=False)
    return lm_eval.simple_evaluate(model=lm, tasks=list(tasks), task_manager=manager, log_samples=True, **kwargs)


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-t5"])
def test_shipped_tasks_score_as_llmcycle_scores_them(lm_eval, wrapper, load_builtin, name):
    loaded = load_builtin(name)
    out = _evaluate(lm_eval, wrapper(loaded), SHIPPED)
    assert out["n-samples"]["general_knowledge"]["effective"] == 16
    assert out["n-samples"]["capitals"]["effective"] == 12
    assert out["n-shot"] == {"capitals": 0, "general_knowledge": 0}

    # multiple choice: llmcycle's runner on the same rows
    own = run_task("general_knowledge", loaded)
    results = out["results"]["general_knowledge"]
    assert results["acc,none"] == own.metrics["acc"]
    assert results["acc_norm,none"] == own.metrics["acc_norm"]
    samples = sorted(out["samples"]["general_knowledge"], key=lambda s: s["doc_id"])
    assert [s["doc_id"] for s in samples] == list(range(16))
    for sample, rec in zip(samples, own.records):
        assert [a[0] for a in sample["arguments"]] == [rec["context"]] * len(rec["choices"])
        assert [a[1] for a in sample["arguments"]] == [" " + c for c in rec["choices"]]
        assert sample["target"] == rec["gold"]
        assert [r[0] for r in sample["filtered_resps"]] == pytest.approx(rec["loglik"], abs=1e-6)
        assert (sample["acc"], sample["acc_norm"]) == (float(rec["correct"]), float(rec["correct_norm"]))

    # generative: the same greedy outputs, cut at the newline, and the same exact match
    own = run_task("capitals", loaded)
    assert out["results"]["capitals"]["exact_match,none"] == own.metrics["exact_match"]
    samples = sorted(out["samples"]["capitals"], key=lambda s: s["doc_id"])
    assert [s["filtered_resps"][0] for s in samples] == [r["prediction"] for r in own.records]
    assert [s["target"] for s in samples] == [r["references"][0] for r in own.records]


def test_apply_chat_template_renders_contexts_through_llmcycles_chat_path(lm_eval, wrapper, load_builtin):
    """``--apply_chat_template``: lm-eval's contexts are the tiny chat model's ChatML user turns, scored as
    llmcycle scores those prompts; a model without a chat template is refused in one line."""
    from llmcycle.prompts.chat import user_prompt

    loaded = load_builtin("tiny-chat")
    out = _evaluate(lm_eval, wrapper(loaded), ["general_knowledge"], apply_chat_template=True)
    own = run_task("general_knowledge", loaded)
    samples = sorted(out["samples"]["general_knowledge"], key=lambda s: s["doc_id"])
    correct = []
    for sample, rec in zip(samples, own.records):
        contexts = {a[0] for a in sample["arguments"]}
        assert contexts == {user_prompt(loaded.tokenizer, rec["context"])}
        (context,) = contexts
        assert context.startswith("<|im_start|>user\n") and context.endswith("<|im_start|>assistant\n")
        lls = loglikelihood(loaded, [(context, " " + c) for c in rec["choices"]])
        assert [r[0] for r in sample["filtered_resps"]] == pytest.approx(lls, abs=1e-5)
        correct.append(max(range(len(lls)), key=lls.__getitem__) == rec["gold"])
    assert out["results"]["general_knowledge"]["acc,none"] == pytest.approx(sum(correct) / len(correct))

    with pytest.raises(LLMCycleError, match="no chat template.*--apply_chat_template"):
        wrapper(load_builtin("tiny-gpt2")).apply_chat_template([{"role": "user", "content": "Hi"}])


def test_loglikelihood_is_llmcycles_and_is_greedy_is_exact(wrapper, load_builtin):
    from llmcycle.evaluation.harness.loglik import Encoded
    from llmcycle.generation import GenerationSettings, generate_detailed

    pairs = [("Question: Which planet is closest to the Sun?\nAnswer:", " Mercury"), ("", "Paris"),
             ("The capital of France is ", "Paris")]  # empty context; trailing space moved to the continuation
    for name in ("tiny-gpt2", "tiny-t5"):
        loaded = load_builtin(name)
        lm = wrapper(loaded, batch_size=2)
        assert [ll for ll, _ in lm.score(pairs)] == pytest.approx(loglikelihood(loaded, pairs), abs=1e-5)
        # is_greedy: the model's own greedy continuation is greedy; change its last token and it is not
        context = "Q: What is the capital city of France?\nA:"
        new = generate_detailed(loaded, [context], GenerationSettings(max_new_tokens=3))[0].outputs[0].token_ids
        enc = loaded.tokenizer(context)["input_ids"]
        other = new[:-1] + [new[-1] + 1]
        if loaded.kind == "causal":
            requests = [Encoded(enc + ids, [], 0, len(ids)) for ids in (new, other)]
        else:  # the decoder is fed its start token, then the targets: none to skip
            requests = [Encoded(enc, ids, 0, len(ids)) for ids in (new, other)]
        (ll_new, greedy_new), (ll_other, greedy_other) = lm.score_encoded(requests)
        assert (greedy_new, greedy_other) == (True, False), name
        assert ll_new > ll_other


def test_rolling_loglikelihood_is_the_perplexity_sum(lm_eval, wrapper, load_builtin):
    from lm_eval.api.instance import Instance

    from llmcycle.evaluation.perplexity import causal_perplexity

    text = "The quick brown fox jumps over the lazy dog. It was not amused."
    loaded = load_builtin("tiny-gpt2")
    (total,) = wrapper(loaded).loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (text,), 0)])
    ppl = causal_perplexity(loaded.model, loaded.tokenizer, [text])  # [CLS] is context, every word token scored
    assert total == pytest.approx(-ppl.nll * ppl.n_tokens, rel=1e-5)
    with pytest.raises(LLMCycleError, match="builtin:tiny-t5 is a seq2seq model: .*needs a decoder-only model"):
        wrapper(load_builtin("tiny-t5")).loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (text,), 0)])


def test_generation_kwargs_become_llmcycle_settings(wrapper, load_builtin):
    lm = wrapper(load_builtin("tiny-gpt2"), max_gen_toks=5)
    s = lm.settings({"until": ["\n\n", "Q:"], "max_gen_toks": 8, "do_sample": False, "temperature": 0.0})
    assert (s.stop, s.max_new_tokens, s.do_sample, s.temperature) == (["\n\n", "Q:"], 8, False, 1.0)
    s = lm.settings({"until": "\n", "do_sample": True, "temperature": 0.7, "top_p": 0.9})
    assert (s.stop, s.max_new_tokens, s.do_sample, s.temperature, s.top_p) == (["\n"], 5, True, 0.7, 0.9)
    assert lm.settings({"do_sample": True, "temperature": 0}).do_sample is False  # lm-eval: temperature 0 is greedy
    with pytest.raises(ConfigError, match="lm-eval generation_kwargs: max_length, typical_p: no llmcycle"):
        lm.settings({"until": ["\n"], "typical_p": 0.5, "max_length": 9})


def test_registered_and_built_from_an_arg_string(lm_eval, wrapper):
    from lm_eval.api.registry import get_model

    assert get_model("llmcycle") is wrapper
    lm = wrapper.create_from_arg_string("pretrained=builtin:tiny-t5,batch_size=4", {"batch_size": None})
    assert (lm.loaded.source, lm.loaded.kind, lm.batch_size) == ("builtin:tiny-t5", "seq2seq", 4)
    assert lm.eot_token_id == 102 == lm.loaded.tokenizer.eos_token_id  # [SEP]: the generation config's and the
    # tokenizer's (every builtin tokenizer declares its bos and eos)
    with pytest.raises(LLMCycleError, match="batch_size: expected an integer >= 1, got 'auto'"):
        wrapper(lm.loaded, batch_size="auto")


def test_adapter_runs_and_samples_land_in_the_run_folder(lm_eval, load_builtin, tmp_path):
    from peft import LoraConfig, get_peft_model

    from llmcycle.models import load_model
    from llmcycle.models.adapters import save_adapter

    base = load_model("builtin:tiny-gpt2")  # a fresh copy: the adapter wraps it
    base.model = get_peft_model(base.model, LoraConfig(r=2, target_modules=["c_attn"], init_lora_weights=False))
    save_adapter(base, tmp_path / "lora")
    tuned = load_model(str(tmp_path / "lora"))
    result = run_lm_eval("general_knowledge", tuned, limit=5, batch_size=4, out_dir=tmp_path / "run")

    own = run_task("general_knowledge", tuned, limit=5)
    assert (result.type, result.n, result.num_fewshot) == ("lm_eval", 5, 0)
    assert result.metrics["acc"] == own.metrics["acc"] and result.metrics["acc_norm"] == own.metrics["acc_norm"]
    lines = (tmp_path / "run" / "general_knowledge.records.jsonl").read_text(encoding="utf-8").splitlines()
    logged = [json.loads(line) for line in lines]
    assert [s["doc_id"] for s in logged] == list(range(5))
    for sample, rec in zip(logged, own.records):
        assert [r[0] for r in sample["filtered_resps"]] == pytest.approx(rec["loglik"], abs=1e-6)
    plain = run_task("general_knowledge", load_builtin("tiny-gpt2"), limit=5)
    assert all(abs(a - b) > 1e-3 for a, b in zip(own.records[0]["loglik"], plain.records[0]["loglik"]))  # it acts
    summary = json.loads((tmp_path / "run" / "general_knowledge.metrics.json").read_text(encoding="utf-8"))
    assert summary["n"] == 5 and summary["metrics"] == result.metrics
    assert summary["model"] == tuned.label
    assert set(result.metrics) == {"acc", "acc_stderr", "acc_norm", "acc_norm_stderr"}  # no sample_len


def _local_task(folder, name, data):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\n"
        "custom_dataset: !function llmcycle.evaluation.harness.lm_eval_bridge.local_dataset\n"
        f"dataset_kwargs: {{data_files: {{test: {data}}}}}\n"
        "test_split: test\noutput_type: generate_until\n"
        "doc_to_text: \"Q: What is the capital city of {{country}}?\\nA:\"\ndoc_to_target: answer\n"
        "generation_kwargs: {until: [\"\\n\"], max_gen_toks: 8, do_sample: false}\n"
        "metric_list: [{metric: exact_match, aggregation: mean, higher_is_better: true, ignore_case: true}]\n",
        encoding="utf-8")


def test_local_task_folder_reads_its_data_relative_to_the_yaml(lm_eval, wrapper, load_builtin, tmp_path,
                                                                monkeypatch):
    from llmcycle.generation import GenerationSettings, generate

    loaded = load_builtin("tiny-gpt2")
    prompts = ["Q: What is the capital city of France?\nA:", "Q: What is the capital city of Japan?\nA:"]
    greedy = generate(loaded, prompts, GenerationSettings(max_new_tokens=8, stop=["\n"]))
    assert all(greedy)
    rows = [{"country": "France", "answer": greedy[0].upper()}, {"country": "Japan", "answer": "Tokyo"}]
    (tmp_path / "tasks" / "data").mkdir(parents=True)
    (tmp_path / "tasks" / "data" / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _local_task(tmp_path / "tasks", "my_capitals", "data/rows.jsonl")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # a relative path must not be read from the working directory

    result = run_lm_eval("my_capitals", wrapper(loaded), include_path=tmp_path / "tasks")
    assert result.n == 2 and result.metrics["exact_match"] == 0.5  # the model's own answer, case ignored
    assert [r["filtered_resps"][0] for r in result.records] == greedy

    _local_task(tmp_path / "broken", "broken", "missing.jsonl")
    with pytest.raises(DataError, match=r"broken\.yaml: data_files\.test: no such file .*broken/missing\.jsonl"):
        run_lm_eval("broken", wrapper(loaded), include_path=tmp_path / "broken")
    with pytest.raises(LLMCycleError, match="include_path: no such folder"):
        run_lm_eval("my_capitals", wrapper(loaded), include_path=tmp_path / "nope")


def test_shipped_names_resolve_without_indexing_lm_evals_own_tasks(lm_eval, wrapper, load_builtin):
    for name in SHIPPED:
        resolved, manager = task_manager(name)
        assert resolved == name and "hellaswag" not in manager.all_tasks
    assert sorted(task_manager("llmcycle")[1].all_tasks) == ["capitals", "general_knowledge", "llmcycle"]
    with pytest.raises(LLMCycleError, match=r"no results for task 'llmcycle': it ran capitals, general_knowledge"):
        run_lm_eval("llmcycle", wrapper(load_builtin("tiny-t5")), limit=1)


def test_benchmark_cli_runs_a_shipped_task_through_lm_eval(lm_eval, load_builtin, monkeypatch, capsys, tmp_path):
    from tests.cli_helpers import run_cli

    code, out, err = run_cli(monkeypatch, capsys, "benchmark", "general_knowledge", "--lm-eval", "--model",
                             "builtin:tiny-t5", "--limit", "3", "--out", str(tmp_path))
    assert code == 0, err
    assert "general_knowledge: lm_eval, 3 items, 0-shot" in out and "acc_norm" in out
    summary = json.loads((tmp_path / "general_knowledge.metrics.json").read_text(encoding="utf-8"))
    assert summary["metrics"]["acc"] == run_task("general_knowledge", load_builtin("tiny-t5"), limit=3).metrics["acc"]
    assert len((tmp_path / "general_knowledge.records.jsonl").read_text(encoding="utf-8").splitlines()) == 3


def test_benchmark_cli_chat_renders_contexts_through_the_chat_template(lm_eval, monkeypatch, capsys, tmp_path):
    from tests.cli_helpers import run_cli

    code, out, err = run_cli(monkeypatch, capsys, "benchmark", "general_knowledge", "--lm-eval", "--chat",
                             "--model", "builtin:tiny-chat", "--limit", "2", "--out", str(tmp_path))
    assert code == 0, err
    records = [json.loads(line) for line in
               (tmp_path / "general_knowledge.records.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == 2
    assert all(a[0].startswith("<|im_start|>user\n") for r in records for a in r["arguments"])
    for args, message in ((["--model", "builtin:tiny-gpt2", "--lm-eval"], "has no chat template"),
                          (["--model", "builtin:tiny-chat"], "add --lm-eval")):
        code, out, err = run_cli(monkeypatch, capsys, "benchmark", "general_knowledge", "--chat", "--limit", "1",
                                 *args)
        assert code != 0 and message in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err


def test_missing_lm_eval_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # makes `import lm_eval` fail even where installed
    assert lm_eval_available() is False
    with pytest.raises(LLMCycleError, match=r"lm-evaluation-harness is not installed; `pip install lm-eval`"):
        run_lm_eval("general_knowledge", "builtin:tiny-gpt2")
