"""Each method trains what it must and nothing else; counts; warm-start modules; bad configs."""

from __future__ import annotations

import pytest
import torch

from llmcycle.core.errors import ConfigError, LLMCycleError
from llmcycle.tuning import TuneConfig, apply_method, count_parameters, train


def snapshot(model):
    """Every parameter by identity: PEFT wraps modules but keeps the base Parameter objects."""
    return {id(p): p.detach().clone() for p in model.parameters()}


def changed_and_frozen(model, before):
    """(names of trainable params that moved, names of frozen base params that moved, trainable names)."""
    moved_trainable, moved_frozen, trainable = [], [], []
    for name, p in model.named_parameters():
        old = before.get(id(p))
        if p.requires_grad:
            trainable.append(name)
        if old is None:
            continue
        if p.requires_grad and not torch.equal(old, p.detach()):
            moved_trainable.append(name)
        if not p.requires_grad and not torch.equal(old, p.detach()):
            moved_frozen.append(name)
    return moved_trainable, moved_frozen, trainable


@pytest.mark.parametrize("name,method", [
    ("tiny-t5", "full"), ("tiny-gpt2", "full"),
    ("tiny-t5", "selective"), ("tiny-llama", "selective"),
    ("tiny-t5", "lora"), ("tiny-bart", "lora"), ("tiny-gpt2", "lora"), ("tiny-llama", "lora"),
    ("tiny-t5", "prompt_tuning"), ("tiny-gpt2", "prompt_tuning"),
])
def test_method_trains_only_its_parameters(name, method, fresh, rows, quick, tmp_path):
    loaded = fresh(name)
    before = snapshot(loaded.model)
    cfg = dict(quick, method=method)
    if method == "selective":
        cfg["selective"] = {"patterns": [r"norm|ln_"]}
    result = train(loaded, rows, cfg, tmp_path)
    model = loaded.model
    moved, frozen_moved, trainable = changed_and_frozen(model, before)
    assert frozen_moved == []
    assert result.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert result.total == sum(p.numel() for p in model.parameters())
    assert result.pct == pytest.approx(100 * result.trainable / result.total, abs=1e-5)
    if method in ("full", "selective"):
        assert sorted(moved) == sorted(trainable)  # every trained tensor moved
        if method == "selective":
            assert all("norm" in n or "ln_" in n for n in trainable) and result.pct < 5
    else:  # adapter params are new tensors: they moved from their initial value
        new = {n: p for n, p in model.named_parameters() if id(p) not in before}
        assert new and all(p.requires_grad for p in new.values())
        if method == "lora":
            assert all("lora_" in n for n in trainable)
            assert any(p.abs().sum() > 0 for n, p in new.items() if "lora_B" in n)  # B starts at zero
        else:
            assert all("prompt_encoder" in n for n in trainable)
    assert result.steps == 3 and len(result.train_loss) == 3
    assert (tmp_path / "tune_result.json").is_file() and (tmp_path / "loss_curve.png").is_file()


def test_lora_defaults_by_family(fresh):
    cfg = TuneConfig(method="lora")
    for name, suffix in [("tiny-t5", ".q"), ("tiny-bart", "q_proj"), ("tiny-gpt2", "c_attn"), ("tiny-llama", "q_proj")]:
        prepared = apply_method(fresh(name), cfg)
        wrapped = [n for n, _ in prepared.model.named_modules() if n.endswith(suffix)]
        assert wrapped and all(hasattr(dict(prepared.model.named_modules())[n], "lora_A") for n in wrapped)


def test_counts_follow_peft_convention(fresh):
    loaded = fresh("tiny-gpt2")
    base_total = count_parameters(loaded.model)[1]
    prepared = apply_method(loaded, TuneConfig(method="lora", lora={"r": 4}))
    # GPT-2 c_attn: (64 -> 192) per layer, 2 layers: A 4x64, B 192x4
    assert prepared.trainable == 2 * (4 * 64 + 192 * 4)
    assert prepared.total == base_total + prepared.trainable
    assert "trainable%" in prepared.summary()


def test_minilm_cross_attention_trains_under_lora_only_when_asked(minilm):
    """The warm start's fresh cross-attention trains fully with train_new_modules, stays frozen without."""
    import copy

    base = copy.deepcopy(minilm)
    on = apply_method(base, TuneConfig(method="lora", lora={"r": 4}))
    cross = [n for n, p in on.model.named_parameters() if "crossattention" in n and p.requires_grad]
    assert cross and any("modules_to_save" in n for n in cross) and not any("lora_" in n for n in cross)
    assert on.new_modules == ["crossattention", "cls.predictions.transform"]
    n_cross = sum(p.numel() for n, p in minilm.model.named_parameters() if "crossattention" in n)
    assert on.trainable > n_cross  # counted among the trainable parameters

    base = copy.deepcopy(minilm)
    off = apply_method(base, TuneConfig(method="lora", lora={"r": 4, "train_new_modules": False}))
    trainable = [n for n, p in off.model.named_parameters() if p.requires_grad]
    assert not any("crossattention" in n and "lora_" not in n for n in trainable)
    assert off.trainable < on.trainable and off.new_modules == []


@pytest.mark.parametrize("data,field", [
    ({"method": "adapterx"}, "method"),
    ({"lora": {"r": 0}}, "lora.r"),
    ({"lora": {"dropout": 1.5}}, "lora.dropout"),
    ({"selective": {"patterns": ["("]}}, "selective.patterns"),
    ({"prompt_tuning": {"n_virtual_tokens": 0}}, "prompt_tuning.n_virtual_tokens"),
    ({"precision": "fp8"}, "precision"),
    ({"batch_size": 0}, "batch_size"),
    ({"learning_rate": -1}, "learning_rate"),
    ({"epochs_": 3}, "epochs_"),
])
def test_bad_configs_name_the_field(data, field):
    with pytest.raises(ConfigError, match=rf"^{field}: "):
        TuneConfig.from_dict(data)


def test_patterns_that_match_nothing_are_an_error(fresh):
    with pytest.raises(ConfigError, match="selective.patterns: 'nothing_here' matches no parameter"):
        apply_method(fresh("tiny-gpt2"), TuneConfig(method="selective", selective={"patterns": ["nothing_here"]}))


def test_unknown_lora_target_is_an_error(fresh):
    with pytest.raises(ConfigError, match="lora.target_modules: nope"):
        apply_method(fresh("tiny-gpt2"), TuneConfig(method="lora", lora={"target_modules": ["nope"]}))


def test_fp16_on_cpu_is_an_error(fresh, rows, quick, tmp_path):
    with pytest.raises(ConfigError, match="precision: fp16 needs a CUDA GPU"):
        train(fresh("tiny-gpt2"), rows, dict(quick, method="full", precision="fp16"), tmp_path)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("has_kernels", [False, True])
def test_bf16_on_a_cpu_without_bf16_kernels_warns_once_and_still_trains_in_bf16(monkeypatch, caplog, has_kernels):
    import importlib

    train_module = importlib.import_module("llmcycle.tuning.train")  # the package's `train` is the function
    monkeypatch.setattr(train_module, "cpu_has_bf16_kernels", lambda: has_kernels)
    cpu = torch.device("cpu")
    with caplog.at_level("WARNING", logger="llmcycle"):
        flags = train_module.check_precision("bf16", cpu, warn=True)
        assert train_module.check_precision("bf16", cpu) == flags  # the Trainer's call: no second warning
        assert train_module.check_precision("fp32", cpu, warn=True) == {"bf16": False, "fp16": False}
    assert flags == {"bf16": True, "fp16": False}
    slow = [r.getMessage() for r in caplog.records if "runs many times slower than fp32" in r.getMessage()]
    assert slow == ([] if has_kernels else [
        "precision: bf16 on this CPU (no AVX-512/AMX bf16 support) runs many times slower than fp32; "
        "set precision: fp32 here"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU error")
def test_qlora_on_cpu_is_a_clear_error(fresh):
    with pytest.raises(LLMCycleError, match="QLoRA needs a CUDA GPU and bitsandbytes"):
        apply_method(fresh("tiny-gpt2"), TuneConfig(method="qlora"))


def test_prompt_tuning_on_the_warm_started_encoder_decoder(minilm):
    import copy

    prepared = apply_method(copy.deepcopy(minilm), TuneConfig(method="prompt_tuning",
                                                              prompt_tuning={"n_virtual_tokens": 5}))
    assert prepared.trainable == 2 * 5 * 384  # encoder and decoder prompts, MiniLM width 384


def test_bf16_on_cpu_trains(fresh, rows, quick, tmp_path):
    result = train(fresh("tiny-gpt2"), rows, dict(quick, method="lora", precision="bf16", max_steps=1), tmp_path)
    assert result.steps == 1 and result.train_loss


def test_lora_on_flan_t5_base_matches_the_course_count():
    """The course's LoRA (r=32, alpha=32, q and v) trains 3,538,944 of 251,116,800 parameters (1.41%)."""
    from llmcycle.models import load_model
    from llmcycle.tuning import TuneConfig, apply_method

    loaded = load_model("google/flan-t5-base", weights="random")
    prepared = apply_method(loaded, TuneConfig.from_dict({"method": "lora", "lora": {"r": 32, "alpha": 32}}))
    assert (prepared.trainable, prepared.total) == (3_538_944, 251_116_800)
    assert round(prepared.pct, 2) == 1.41


def test_minilm_speaker_tag_rows_train_under_lora_tied_to_the_lm_head(minilm, rows, quick, tmp_path):
    """The builtin's added #PersonN# rows train (encoder, decoder and the LM head tied to the decoder's
    embeddings, one set of rows), the rest of each embedding matrix stays frozen; the trained rows survive save,
    attach, switching and merging. The head gets a non-zero bias first: peft's trainable-tokens head drops it
    (huggingface/peft#3649) and llmcycle adds it back, which merging (bias included) checks."""
    import copy

    from llmcycle.models.adapters import attach_adapter
    from llmcycle.tuning import merge_adapter, save_adapter, switch_adapter
    from llmcycle.tuning.methods import new_token_ids

    base_model = copy.deepcopy(minilm)
    with torch.no_grad():
        base_model.model.decoder.cls.predictions.decoder.bias.copy_(
            torch.linspace(-1, 1, base_model.model.decoder.cls.predictions.decoder.bias.numel()))
    loaded = copy.deepcopy(base_model)
    ids = new_token_ids(loaded)
    assert loaded.tokenizer.convert_ids_to_tokens(ids) == [f"#Person{i}#" for i in range(1, 10)]
    before = snapshot(loaded.model)
    train(loaded, rows, dict(quick, method="lora", lora={"r": 4}), tmp_path / "run")
    model = loaded.model.eval()
    _, frozen_moved, trainable = changed_and_frozen(model, before)
    assert frozen_moved == []  # the embedding matrices themselves (and the head sharing one) did not move
    # peft's "delta" holds the trained rows themselves (index-copied over the frozen matrix)
    rows_now = {n.split(".token_adapter")[0]: p for n, p in model.named_parameters() if "trainable_tokens_delta" in n}
    assert sorted(rows_now) == ["base_model.model.decoder.bert.embeddings.word_embeddings",
                                "base_model.model.encoder.embeddings.word_embeddings"]
    base = model.get_base_model()
    head, emb = base.decoder.cls.predictions.decoder, base.decoder.bert.embeddings.word_embeddings
    for name, p in rows_now.items():
        assert p.shape == (9, 384) and p.requires_grad and name + ".token_adapter.trainable_tokens_delta.default" \
            in trainable
    original = emb.token_adapter.base_layer.weight[ids]
    dec_rows = rows_now["base_model.model.decoder.bert.embeddings.word_embeddings"]
    assert not torch.allclose(dec_rows[:2], original[:2])  # #Person1#, #Person2# (in the data) moved

    # the LM head writes with the trained rows (and its bias): one set of rows, read and written
    h = torch.randn(2, 384)
    with torch.no_grad():
        want = h @ dec_rows.T + head.token_adapter.base_layer.bias[ids]
        assert torch.allclose(head(h)[:, ids], want, atol=1e-4)
        other_ids = [5, 2000, 30000]
        plain = h @ emb.token_adapter.base_layer.weight[other_ids].T + head.token_adapter.base_layer.bias[other_ids]
        assert torch.allclose(head(h)[:, other_ids], plain, atol=1e-4)
        assert torch.equal(emb(torch.tensor([ids]))[0], dec_rows)

    x = loaded.tokenizer(["#Person1#: hi\n#Person2#: hello #Person1#"], return_tensors="pt")
    y = loaded.tokenizer(["#Person2# greets #Person1#"], return_tensors="pt").input_ids
    with torch.no_grad():
        want = model(**x, labels=y).logits
    save_adapter(loaded, tmp_path / "tags")
    again = attach_adapter(copy.deepcopy(base_model), tmp_path / "tags")
    with torch.no_grad():
        assert torch.allclose(again.model(**x, labels=y).logits, want, atol=1e-4)
    # a second adapter (trained otherwise) switched in, then back
    other = copy.deepcopy(base_model)
    train(other, rows, dict(quick, method="lora", lora={"r": 4}, learning_rate=3e-2), tmp_path / "run2")
    with torch.no_grad():
        want_other = other.model.eval()(**x, labels=y).logits
    assert not torch.allclose(want_other, want, atol=1e-2)
    save_adapter(other, tmp_path / "other")
    switch_adapter(again, tmp_path / "other", "other")
    with torch.no_grad():
        assert torch.allclose(again.model(**x, labels=y).logits, want_other, atol=1e-4)
    switch_adapter(again, tmp_path / "tags", "default")
    with torch.no_grad():
        assert torch.allclose(again.model(**x, labels=y).logits, want, atol=1e-4)
    merged = merge_adapter(attach_adapter(copy.deepcopy(base_model), tmp_path / "tags"))
    with torch.no_grad():
        assert torch.allclose(merged.model(**x, labels=y).logits, want, atol=1e-3)

    off = apply_method(copy.deepcopy(minilm), TuneConfig(method="lora", lora={"r": 4, "train_new_tokens": False}))
    assert not any("trainable_tokens" in n for n, _ in off.model.named_parameters())
