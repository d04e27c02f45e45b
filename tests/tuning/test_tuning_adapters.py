"""Adapters save small, load onto a fresh base (also by the adapter folder alone), switch, and merge."""

from __future__ import annotations

import pytest
import torch

from llmcycle.core.errors import LLMCycleError
from llmcycle.models import load_model
from llmcycle.tuning import (
    load_adapter,
    merge_adapter,
    save_adapter,
    switch_adapter,
    train,
)


def logits(loaded, text="#Person1#: hello there, how are you?"):
    enc = loaded.tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        if loaded.kind == "seq2seq":
            start = loaded.model.config.decoder_start_token_id
            dec = torch.tensor([[start, 2000, 2001]])
            return loaded.model(**enc, decoder_input_ids=dec).logits
        return loaded.model(**enc).logits


@pytest.fixture
def trained_lora(fresh, rows, quick, tmp_path):
    def run(name, **extra):
        loaded = fresh(name)
        train(loaded, rows, dict(quick, method="lora", lora={"r": 4, "dropout": 0.0}, **extra), tmp_path / name)
        return loaded, tmp_path / name / "model"
    return run


@pytest.mark.parametrize("name", ["tiny-t5", "tiny-gpt2"])
def test_adapter_is_small_and_reloads_on_a_fresh_base(name, trained_lora, fresh):
    loaded, path = trained_lora(name)
    files = {p.name for p in path.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= files
    assert not any(f.startswith("model") for f in files if f.endswith(".safetensors"))  # no base weights
    size = (path / "adapter_model.safetensors").stat().st_size
    assert size < 0.05 * sum(p.numel() * 4 for p in fresh(name).model.parameters())
    expected = logits(loaded)
    again = load_adapter(fresh(name), path)
    assert torch.allclose(logits(again), expected, atol=1e-6)
    by_dir = load_model(str(path))  # the adapter folder names its base: builtin:NAME
    assert torch.allclose(logits(by_dir), expected, atol=1e-6)
    assert not torch.allclose(logits(fresh(name)), expected, atol=1e-4)  # the adapter does something


@pytest.mark.parametrize("name", ["tiny-bart", "tiny-llama"])
def test_merged_outputs_equal_unmerged(name, trained_lora):
    loaded, _ = trained_lora(name)
    loaded.model.eval()
    expected = logits(loaded)
    merged = merge_adapter(loaded)
    assert not hasattr(merged.model, "peft_config")
    assert not any("lora_" in n for n, _ in merged.model.named_parameters())
    assert torch.allclose(logits(merged), expected, atol=1e-5)


def test_save_adapter_names_the_llmcycle_base(trained_lora, tmp_path):
    import json

    loaded, _ = trained_lora("tiny-gpt2")
    out = save_adapter(loaded, tmp_path / "again")
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == "builtin:tiny-gpt2"


def test_switch_between_adapters(trained_lora, fresh, rows, quick, tmp_path):
    _, first = trained_lora("tiny-gpt2")
    other = fresh("tiny-gpt2")
    train(other, rows, dict(quick, method="lora", seed=7, learning_rate=5e-2, lora={"r": 4, "dropout": 0.0}),
          tmp_path / "other")
    base = load_adapter(fresh("tiny-gpt2"), first)
    a = logits(base)
    switch_adapter(base, tmp_path / "other" / "model", "other")
    b = logits(base)
    assert torch.allclose(b, logits(other), atol=1e-6) and not torch.allclose(a, b, atol=1e-4)
    switch_adapter(base, first, "default")
    assert torch.allclose(logits(base), a, atol=1e-6)


def test_prompt_tuning_adapter_saves_but_cannot_merge(fresh, rows, quick, tmp_path):
    loaded = fresh("tiny-gpt2")
    train(loaded, rows, dict(quick, method="prompt_tuning", prompt_tuning={"n_virtual_tokens": 4,
                                                                           "init_text": "summarize"}), tmp_path)
    assert (tmp_path / "model" / "adapter_config.json").is_file()
    with pytest.raises(LLMCycleError, match="only LoRA adapters can be merged"):
        merge_adapter(loaded)


def test_full_fine_tune_saves_a_loadable_model(fresh, rows, quick, tmp_path):
    loaded = fresh("tiny-t5")
    train(loaded, rows, dict(quick, method="full"), tmp_path)
    assert (tmp_path / "model" / "config.json").is_file()
    again = load_model(str(tmp_path / "model"))
    assert torch.allclose(logits(again), logits(loaded), atol=1e-6)
    with pytest.raises(LLMCycleError, match="no adapter"):
        merge_adapter(loaded)
