"""Distillation training, the measured optimise run (table, files, resume), merging, the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from llmcycle.optimize import OptimizeConfig, OptimizeError, run_optimize
from llmcycle.optimize.config import DistilOptions
from tests.cli_helpers import run_cli


def make_rows(n: int, start: int = 0) -> list[dict]:
    return [{"input": f"#Person1#: hello number {i}, how are you today?\n#Person2#: fine, thanks {'a ' * (i % 5)}",
             "references": [f"#Person1# greets #Person2# {i}."]} for i in range(start, start + n)]


def _kl_to_teacher(teacher, student, rows) -> float:
    import torch.nn.functional as F

    from llmcycle.tuning.data import PadCollator, build_dataset

    ds, _ = build_dataset(rows, tokenizer=teacher.tokenizer, kind=teacher.kind, templates=["none"],
                          max_input_tokens=48, max_target_tokens=16)
    batch = PadCollator(teacher.tokenizer.pad_token_id)([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        t, s = teacher.model(**batch).logits, student.model(**batch).logits
    mask = batch["labels"] != -100
    return float(F.kl_div(F.log_softmax(s[mask], -1), F.log_softmax(t[mask], -1), log_target=True,
                          reduction="batchmean"))


def _train_cfg(**kw):
    return {"method": "full", "max_steps": 12, "batch_size": 4, "learning_rate": 3e-3, "log_every": 1,
            "save_every": 100, "max_input_tokens": 48, "max_target_tokens": 16, "seed": 0} | kw


def test_soft_target_distillation_brings_the_student_closer_to_the_teacher(tmp_path):
    from llmcycle.models import load_model
    from llmcycle.optimize.distil import distil, make_student

    teacher = load_model("builtin:tiny-t5")
    rows = make_rows(24)
    opts = DistilOptions(alpha=1.0, temperature=1.0, train=_train_cfg())
    untrained, _ = make_student(teacher, opts)
    before = _kl_to_teacher(teacher, untrained, rows[:8])
    student, result, keep = distil(teacher, {"train": rows}, opts, tmp_path / "d")
    after = _kl_to_teacher(teacher, student, rows[:8])
    assert keep == [0] and len(student.model.decoder.block) == 1
    assert after < 0.7 * before, (before, after)
    assert (tmp_path / "d" / "model" / "config.json").is_file()
    assert result.steps == 12
    teacher_w = load_model("builtin:tiny-t5").model.decoder.block[0].layer[0].SelfAttention.q.weight
    assert torch.equal(teacher.model.decoder.block[0].layer[0].SelfAttention.q.weight, teacher_w)  # teacher frozen


def test_generated_targets_train_on_the_teachers_summaries(tmp_path, monkeypatch):
    import llmcycle.tuning
    from llmcycle.models import load_model
    from llmcycle.optimize import distil as distil_mod

    teacher = load_model("builtin:tiny-gpt2")
    seen = {}
    real_train = llmcycle.tuning.train

    def spy(student, data, cfg, out, **kw):
        seen["rows"] = data[0]
        return real_train(student, data, cfg, out, **kw)

    monkeypatch.setattr(distil_mod, "train", spy)  # where distil uses it
    opts = DistilOptions(targets="generated", train=_train_cfg(max_steps=2, max_target_tokens=8))
    student, result, _ = distil_mod.distil(teacher, {"train": make_rows(20)}, opts, tmp_path / "g")
    assert len(seen["rows"]) == 8  # max_steps x batch_size rows are enough
    from llmcycle.generation import GenerationSettings, generate

    expected = generate(teacher, [r["input"] for r in make_rows(8)], GenerationSettings(max_new_tokens=8))
    assert [r["references"][0] for r in seen["rows"]] == expected
    assert len(student.model.transformer.h) == 1 and result.steps == 2


def test_run_optimize_measures_every_variant_and_resumes(tmp_path, monkeypatch):
    from llmcycle.models import load_model
    from llmcycle.optimize import measure as measure_mod
    from llmcycle.optimize import run as run_mod

    loaded = load_model("builtin:tiny-t5")
    cfg = OptimizeConfig.from_dict({"methods": ["int8", "prune", "bf16"],
                                    "measure": {"n": 4, "batch_size": 2, "latency_n": 1,
                                                "generation": {"max_new_tokens": 6}}})
    result = run_optimize(loaded, make_rows(6), cfg, tmp_path / "opt")
    table = result.table()
    assert [r["model"] for r in table] == ["baseline", "int8", "prune", "bf16"]
    assert result.variants["prune"].details["sparsity"] == pytest.approx(0.3, abs=0.005)
    assert result.changes["int8"]["size_ratio"] < 1.0  # tiny-t5's tied embeddings stay fp32 and dominate
    assert result.changes["bf16"]["size_ratio"] == pytest.approx(0.5, abs=0.05)
    for m in ("int8", "prune", "bf16"):
        assert (tmp_path / "opt" / m / "model").is_dir() and (tmp_path / "opt" / m / "measure.json").is_file()
        assert result.variants[m].n == 4 and result.variants[m].tokens_per_s > 0
    saved = json.loads((tmp_path / "opt" / "optimize_result.json").read_text())
    assert saved["changes"]["prune"]["rouge1_drop"] == result.changes["prune"]["rouge1_drop"]
    assert load_model(str(tmp_path / "opt" / "int8" / "model")).model is not None

    calls = []
    monkeypatch.setattr(run_mod, "measure", lambda *a, **k: calls.append(a) or measure_mod.measure(*a, **k))
    again = run_optimize(loaded, make_rows(6), cfg, tmp_path / "opt")
    assert calls == [] and again.table() == table  # nothing re-measured
    cfg2 = cfg.model_copy(update={"prune": cfg.prune.model_copy(update={"sparsity": 0.5})})
    third = run_optimize(loaded, make_rows(6), cfg2, tmp_path / "opt")
    assert len(calls) == 1 and third.variants["prune"].details["sparsity"] == pytest.approx(0.5, abs=0.005)


def test_merge_gives_the_same_outputs_as_the_adapter(tmp_path):
    from peft import LoraConfig, get_peft_model

    from llmcycle.generation import generate
    from llmcycle.models import load_model
    from llmcycle.models.adapters import save_adapter

    base = load_model("builtin:tiny-t5")
    torch.manual_seed(0)
    base.model = get_peft_model(base.model, LoraConfig(r=4, target_modules=["q", "v"], init_lora_weights=False))
    save_adapter(base, tmp_path / "adapter")
    adapter = load_model(str(tmp_path / "adapter"))
    cfg = {"methods": ["merge"], "measure": {"n": 3, "latency_n": 0, "generation": {"max_new_tokens": 8}}}
    result = run_optimize(adapter, make_rows(3), cfg, tmp_path / "opt")
    assert result.variants["merge"].details["max_abs_logit_diff"] < 1e-4
    assert result.variants["merge"].examples == result.baseline.examples
    merged = load_model(str(tmp_path / "opt" / "merge" / "model"))
    prompts = [r["input"] for r in make_rows(3)]
    assert generate(merged, prompts, batch_size=1) == generate(adapter, prompts, batch_size=1)
    plain = load_model("builtin:tiny-t5")
    assert generate(plain, prompts) != generate(merged, prompts)  # the adapter did change the model


def test_an_adapter_trained_on_an_adapter_merges_and_quantises(tmp_path):
    """align (LoRA) then tune (LoRA) then optimize: the second adapter names the first as its base; loading it
    merges the first below it, and optimize's merge and int8 work on the stack (once a traceback: "property
    'peft_config' ... has no deleter")."""
    from peft import LoraConfig, get_peft_model

    from llmcycle.generation import generate
    from llmcycle.models import load_model
    from llmcycle.models.adapters import merge_adapter, save_adapter
    from llmcycle.tuning.methods import base_source

    lora = {"r": 4, "target_modules": ["q", "v"], "init_lora_weights": False}
    aligned = load_model("builtin:tiny-t5")
    torch.manual_seed(0)
    aligned.model = get_peft_model(aligned.model, LoraConfig(**lora))
    save_adapter(aligned, tmp_path / "aligned")
    tuned = merge_adapter(load_model(str(tmp_path / "aligned")))  # what tune does with an adapter it receives
    tuned.origin = str(tmp_path / "aligned")
    tuned.model = get_peft_model(tuned.model, LoraConfig(**lora))
    save_adapter(tuned, tmp_path / "tuned", base_source=base_source(tuned))
    config = json.loads((tmp_path / "tuned" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tmp_path / "aligned")

    stacked = load_model(str(tmp_path / "tuned"))
    cfg = {"methods": ["merge", "int8"], "measure": {"n": 2, "latency_n": 0, "generation": {"max_new_tokens": 6}}}
    result = run_optimize(stacked, make_rows(2), cfg, tmp_path / "opt")
    assert set(result.variants) == {"merge", "int8"} and not result.skipped
    assert result.variants["merge"].details["max_abs_logit_diff"] < 1e-4
    merged = load_model(str(tmp_path / "opt" / "merge" / "model"))
    prompts = [r["input"] for r in make_rows(2)]
    assert generate(merged, prompts, batch_size=1) == generate(stacked, prompts, batch_size=1)


def test_merge_without_an_adapter_is_skipped_and_distil_without_data_is_a_clear_error(tmp_path, load_builtin):
    loaded = load_builtin("tiny-t5")
    result = run_optimize(loaded, make_rows(2), {"methods": ["merge", "int8"], "measure": {"n": 2, "latency_n": 0}},
                          tmp_path / "a")
    assert set(result.variants) == {"int8"} and "no LoRA adapter" in result.skipped["merge"]
    assert not (tmp_path / "a" / "merge").exists()  # nothing built, nothing measured
    saved = json.loads((tmp_path / "a" / "optimize_result.json").read_text())
    assert saved["skipped"] == result.skipped and [r["model"] for r in saved["table"]] == ["baseline", "int8"]
    with pytest.raises(OptimizeError, match="train split"):
        run_optimize(loaded, make_rows(2), {"methods": ["distil"], "measure": {"n": 2, "latency_n": 0}},
                     tmp_path / "b")


def test_cli_optimize_writes_a_report_and_table(monkeypatch, capsys, tmp_path):
    code, out, err = run_cli(monkeypatch, capsys, "optimize", "builtin:tiny-t5", "--method", "int8", "--method",
                             "prune", "--n", "3", "--set", "measure.latency_n=0",
                             "--set", "measure.generation.max_new_tokens=5", "--run-dir", str(tmp_path / "r"))
    assert code == 0, err
    assert "int8" in out and "prune" in out
    report = (tmp_path / "r" / "report.md").read_text()
    assert "## Deployment optimisation" in report and "| int8 |" in report
    code, out, err = run_cli(monkeypatch, capsys, "optimize", "builtin:tiny-t5", "--method", "int4")
    assert code == 1 and "methods.0" in err


def test_remeasure_loads_the_saved_variants_and_measures_all_in_one_process(tmp_path, monkeypatch):
    from llmcycle.models import load_model
    from llmcycle.optimize import run as run_mod

    loaded = load_model("builtin:tiny-t5")
    cfg = {"methods": ["int8", "prune"], "measure": {"n": 3, "latency_n": 0, "generation": {"max_new_tokens": 4}}}
    first = run_optimize(loaded, make_rows(3), cfg, tmp_path / "opt")
    monkeypatch.setattr(run_mod, "build_variant", lambda *a, **k: pytest.fail("a variant was rebuilt"))
    again = run_optimize(loaded, make_rows(3), cfg, tmp_path / "opt", remeasure=True)
    for m in ("int8", "prune"):
        assert again.variants[m].examples == first.variants[m].examples  # the saved variant, same outputs
        assert again.variants[m].details == first.variants[m].details
    assert again.baseline.examples == first.baseline.examples
