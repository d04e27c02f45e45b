"""Pre-training from scratch (four families, three objectives), continued pre-training, exact resume, refusals."""

from __future__ import annotations

import pytest
import torch

from llmcycle.core.errors import ConfigError, DataError, LLMCycleError
from llmcycle.data import load_data
from llmcycle.models import load_model
from llmcycle.pretrain.config import PretrainConfig
from llmcycle.pretrain.train import pretrain


@pytest.fixture(scope="module")
def corpus():
    data = load_data("builtin:dialogues")
    return [r["input"] for r in data["train"]], [r["input"] for r in data["validation"]]


def tiny(family: str, **extra) -> PretrainConfig:
    fields = {"architecture": {"family": family, "layers": 1, "width": 32, "heads": 2, "context": 32},
              "max_steps": 12, "batch_size": 8, "learning_rate": 2e-2, "warmup_ratio": 0.0, "eval_blocks": 4,
              "general_text": None, "save_every": 100, "log_every": 4}
    return PretrainConfig.from_dict(fields | extra)


@pytest.mark.parametrize("family,objective,kind", [("gpt2", "clm", "causal"), ("llama", "clm", "causal"),
                                                   ("bert", "mlm", "encoder"), ("t5", "span", "seq2seq")])
def test_each_family_learns_from_scratch_and_saves_a_usable_model(tmp_path, corpus, family, objective, kind):
    texts, held = corpus
    result = pretrain(tiny(family), tmp_path, texts=texts, heldout=held)
    assert (result.objective, result.kind) == (objective, kind)
    start, end = result.heldout["in-domain"][0][1], result.after["in-domain"]
    assert result.before["in-domain"] == start and start > 9.5  # ~log(30,531) at initialisation
    assert end < start - 1.5  # it learned the token distribution at least
    assert result.tokens == 12 * 8 * 32 and result.steps == 12
    assert result.flops == pytest.approx(6 * result.params * result.tokens)
    assert result.tokens_per_s > 0 and 0 < result.mfu < 1 and result.peak_flops > 0
    assert [s for s, _ in result.train_loss] == [4, 8, 12]
    assert (tmp_path / "pretrain_result.json").is_file() and (tmp_path / "loss_curve.png").is_file()
    if kind != "encoder":  # a causal LM or T5 is a model every other stage loads
        from llmcycle.generation import GenerationSettings, generate

        loaded = load_model(str(tmp_path / "model"))
        assert loaded.kind == kind and loaded.tokenizer.model_max_length == 32
        out = generate(loaded, ["#Person1#: Hello"], GenerationSettings(max_new_tokens=4), max_input_tokens=16)
        assert len(out) == 1 and isinstance(out[0], str)


def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, corpus):
    """mlm draws its masks from the RNG the Trainer checkpoints: the resumed run draws the same ones."""
    from transformers import TrainerCallback

    texts, held = corpus
    cfg = tiny("bert", max_steps=6, save_every=3)
    whole = pretrain(cfg, tmp_path / "whole", texts=texts, heldout=held)

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 5:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg, tmp_path / "cut", texts=texts, heldout=held, callbacks=[Kill()])
    resumed = pretrain(cfg, tmp_path / "cut", texts=texts, heldout=held)
    assert resumed.resumed_from.endswith("checkpoint-3")
    a = load_state(tmp_path / "whole" / "model")
    b = load_state(tmp_path / "cut" / "model")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.after == whole.after
    assert resumed.before == whole.before and resumed.heldout == whole.heldout  # the loss at init and the curves
    assert resumed.heldout["in-domain"][0] == (0, whole.before["in-domain"])


def load_state(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_continued_pretraining_lowers_in_domain_loss_and_reports_general_text(tmp_path, corpus):
    texts, held = corpus
    loaded = load_model("builtin:tiny-gpt2")
    cfg = PretrainConfig.from_dict({"init": "received", "block_size": 32, "max_steps": 10, "batch_size": 8,
                                    "learning_rate": 5e-3, "warmup_ratio": 0.0, "eval_blocks": 4})
    result = pretrain(cfg, tmp_path, texts=texts, heldout=held, loaded=loaded)
    assert result.objective == "clm" and set(result.before) == set(result.after) == {"in-domain", "general"}
    assert result.after["in-domain"] < result.before["in-domain"] - 1.0
    assert (tmp_path / "before.json").is_file()
    assert result.to_dict()["perplexity_before"]["general"] > result.to_dict()["perplexity"]["general"] * 0.5


def test_mlm_warm_start_adapts_the_encoder_of_an_encoder_decoder_only(tmp_path, corpus):
    texts, held = corpus
    loaded = load_model("builtin:minilm-seq2seq")
    enc = {n: p.detach().clone() for n, p in loaded.model.encoder.named_parameters()}
    dec = {n: p.detach().clone() for n, p in loaded.model.decoder.named_parameters()}
    cfg = PretrainConfig.from_dict({"init": "received", "block_size": 32, "max_steps": 3, "batch_size": 4,
                                    "head_steps": 2, "eval_blocks": 2, "general_text": None})
    result = pretrain(cfg, tmp_path, texts=texts, heldout=held, loaded=loaded)
    assert result.objective == "mlm" and result.kind == "seq2seq" and result.before is not None
    saved = load_model(str(tmp_path / "model"))
    assert saved.kind == "seq2seq"
    moved = [n for n, p in saved.model.encoder.named_parameters() if n in enc and not torch.equal(p, enc[n])]
    assert "encoder.layer.0.attention.self.query.weight" in moved
    assert all(torch.equal(p, dec[n]) for n, p in saved.model.decoder.named_parameters())  # decoder untouched


def test_a_warm_start_repeats_exactly_and_a_finished_run_reports_the_same_figures(tmp_path, corpus):
    """The fresh head's own steps use dropout: seeded, two runs agree whatever the global RNG holds; invoked again,
    a finished run evaluates the checkpoint and reports its time and throughput, not those of zero new steps."""
    texts, held = corpus
    cfg = PretrainConfig.from_dict({"init": "received", "block_size": 32, "max_steps": 2, "batch_size": 4,
                                    "head_steps": 2, "eval_blocks": 2, "general_text": None, "save_every": 2})
    results = []
    for run, global_seed in (("a", 1), ("b", 2), ("a", 3)):
        torch.manual_seed(global_seed)
        results.append(pretrain(cfg, tmp_path / run, texts=texts, heldout=held,
                                loaded=load_model("builtin:minilm-seq2seq")))
    first, other, again = results
    assert first.before == other.before and first.after == other.after
    assert first.after["in-domain"] != first.before["in-domain"]
    assert again.resumed_from and (again.before, again.after) == (first.before, first.after)
    assert again.heldout == first.heldout and first.heldout["in-domain"][0] == (0, first.before["in-domain"])
    assert again.seconds == first.seconds > 0 and again.tokens_per_s == first.tokens_per_s > 0


@pytest.mark.parametrize("fields,message", [
    ({"architecture": {"family": "gpt2", "width": 30, "heads": 4}}, "multiple of heads"),
    ({"architecture": {"family": "gpt2"}, "objective": "mlm"}, "does not train a gpt2 model"),
    ({"architecture": {"family": "gpt2", "context": 16}, "block_size": 64}, "longer than the model's 16 positions"),
    ({"general_text": "builtin:nope"}, "general_text: unknown builtin"),
])
def test_bad_settings_are_refused_before_any_work(tmp_path, corpus, fields, message):
    texts, held = corpus
    with pytest.raises(LLMCycleError, match=message):
        cfg = PretrainConfig.from_dict({"max_steps": 2} | fields)
        pretrain(cfg, tmp_path / "run", texts=texts, heldout=held)
    assert not (tmp_path / "run").exists()


def test_received_models_refuse_objectives_they_cannot_train(tmp_path, corpus):
    texts, _ = corpus
    with pytest.raises(ConfigError, match="mlm needs an encoder"):
        pretrain(PretrainConfig(init="received", objective="mlm"), tmp_path / "a", texts=texts,
                 loaded=load_model("builtin:tiny-gpt2"))
    with pytest.raises(LLMCycleError, match="sentinel"):  # the builtin T5 tokenizer has no <extra_id_N>
        pretrain(PretrainConfig(init="received", objective="span"), tmp_path / "b", texts=texts,
                 loaded=load_model("builtin:tiny-t5"))
    with pytest.raises(DataError, match="corpus is empty"):
        pretrain(PretrainConfig(), tmp_path / "c", texts=[])
    assert not any((tmp_path / d).exists() for d in "abc")
