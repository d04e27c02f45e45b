"""load_model: builtins, local directories, bundled architectures, hub ids, bad sources."""

from __future__ import annotations

import pytest
import torch

from llmcycle.core.errors import ModelSourceError
from llmcycle.models import load_model
from llmcycle.models import loader as loader_mod

TINY = ["tiny-t5", "tiny-bart", "tiny-gpt2", "tiny-llama"]


def test_minilm_seq2seq_is_pretrained_encoder_decoder(minilm):
    assert minilm.kind == "seq2seq"
    assert not minilm.untrained
    n = minilm.model.num_parameters()
    assert 48e6 < n < 50e6  # ~49M: two MiniLM-L6 stacks + cross-attention
    # The encoder's word embeddings are MiniLM's, not random: compare with the package's weights.
    from safetensors.torch import load_file

    from llmcycle.models.tokenizer import minilm_path

    ref = load_file(f"{minilm_path()}/model.safetensors")
    key = next(k for k in ref if k.endswith("word_embeddings.weight"))
    emb = minilm.model.encoder.get_input_embeddings().weight
    assert torch.equal(emb[: ref[key].shape[0]], ref[key])
    cfg = minilm.model.generation_config
    assert (cfg.decoder_start_token_id, cfg.eos_token_id, cfg.pad_token_id) == (101, 102, 0)


def test_minilm_two_loads_are_identical(minilm):
    again = load_model("builtin:minilm-seq2seq")
    a, b = minilm.model.state_dict(), again.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_minilm_generates_text(minilm):
    tok = minilm.tokenizer
    enc = tok(["#Person1#: Can I book a room for Friday?\n#Person2#: Yes, one night?"], return_tensors="pt")
    out = minilm.model.generate(**enc, max_new_tokens=8, min_new_tokens=3, do_sample=False)
    text = tok.decode(out[0], skip_special_tokens=True).strip()
    assert out.shape[1] >= 4 and len(text) > 0


def test_loading_does_not_print_missing_weight_table(capsys, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="llmcycle"):
        load_model("builtin:minilm-seq2seq")
    captured = capsys.readouterr()
    assert "MISSING" not in captured.out + captured.err
    lines = [r.getMessage() for r in caplog.records if "minilm" in r.getMessage()]
    assert len(lines) == 1 and "cross-attention" in lines[0]


def test_speaker_tags_are_whole_tokens(minilm):
    tok = minilm.tokenizer
    tokens = tok.tokenize("#Person1#: hi #Person2#")
    assert tokens[0] == "#Person1#" and tokens[-1] == "#Person2#"
    ids = tok("#Person1#: hi")["input_ids"]
    assert "#Person1#" in tok.decode(ids, skip_special_tokens=True)


@pytest.mark.parametrize("name", TINY)
def test_tiny_builtins_generate(load_builtin, name):
    loaded = load_builtin(name)
    assert loaded.untrained
    assert 1e6 < loaded.model.num_parameters() < 10e6
    enc = loaded.tokenizer(["hello there", "a longer input text here"], return_tensors="pt", padding=True)
    out = loaded.model.generate(**enc, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    new = out.shape[1] - (enc["input_ids"].shape[1] if loaded.kind == "causal" else 1)
    assert new == 4
    assert loaded.tokenizer.padding_side == ("left" if loaded.kind == "causal" else "right")


def test_flan_t5_base_random_has_real_parameter_count():
    loaded = load_model("google/flan-t5-base", weights="random")
    assert loaded.model.num_parameters() == 247_577_856
    assert loaded.untrained and "(untrained)" in loaded.label
    assert loaded.model.lm_head.weight.data_ptr() != loaded.model.shared.weight.data_ptr()


def test_save_and_reload_local_directory(tmp_path, load_builtin):
    src = load_builtin("tiny-gpt2")
    src.model.save_pretrained(tmp_path)
    src.tokenizer.save_pretrained(tmp_path)
    again = load_model(str(tmp_path))
    assert again.kind == "causal" and again.family == "gpt2"
    for (k, a), (_, b) in zip(src.model.state_dict().items(), again.model.state_dict().items()):
        assert torch.equal(a, b), k


def test_dtype_option(load_builtin):
    loaded = load_model("builtin:tiny-t5", dtype="bf16")
    assert next(loaded.model.parameters()).dtype == torch.bfloat16


def test_hub_id_offline_fails_in_one_sentence(monkeypatch):
    monkeypatch.setattr(loader_mod, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(ModelSourceError) as err:
        load_model("google/flan-t5-base")
    msg = str(err.value)
    assert "cannot reach the Hugging Face hub" in msg and "builtin:" in msg and "\n" not in msg


@pytest.mark.parametrize(
    "source, weights, device, dtype, fragment",
    [
        ("builtin:nope", "pretrained", "cpu", "fp32", "valid names: builtin:minilm-seq2seq"),
        ("", "pretrained", "cpu", "fp32", "model source is empty"),
        ("./no/such/dir", "pretrained", "cpu", "fp32", "no such model directory"),
        ("builtin:tiny-t5", "halfway", "cpu", "fp32", "weights: unknown value"),
        ("builtin:tiny-t5", "pretrained", "tpu", "fp32", "device: unknown value"),
        ("builtin:tiny-t5", "pretrained", "cpu", "fp8", "dtype: unknown value"),
        ("not a/valid id!", "pretrained", "cpu", "fp32", "neither builtin:NAME"),
    ],
)
def test_bad_model_sources(source, weights, device, dtype, fragment):
    with pytest.raises(ModelSourceError, match=fragment.replace("(", r"\(")):
        load_model(source, weights=weights, device=device, dtype=dtype)


def test_directory_without_config(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelSourceError, match="no config.json"):
        load_model(str(tmp_path))


def test_adapter_directory_without_base_is_explained(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ModelSourceError, match="does not name its base model"):
        load_model(str(tmp_path))
    with pytest.raises(ModelSourceError, match="not a PEFT adapter directory"):
        load_model("builtin:tiny-t5", adapter=str(tmp_path / "nowhere"))


def test_lora_adapter_loads_on_its_base(tmp_path):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = load_model("builtin:tiny-t5")
    peft_model = get_peft_model(base.model, LoraConfig(r=4, target_modules=["q", "v"], init_lora_weights=False))
    peft_model.peft_config["default"].base_model_name_or_path = "builtin:tiny-t5"
    peft_model.save_pretrained(tmp_path / "adapter")
    assert not (tmp_path / "adapter" / "config.json").exists()
    enc = base.tokenizer(["hello there"], return_tensors="pt")
    dec = torch.zeros((1, 3), dtype=torch.long)

    def logits(model):
        with torch.no_grad():
            return model(**enc, decoder_input_ids=dec).logits

    want = logits(peft_model.eval())
    for loaded in (load_model(str(tmp_path / "adapter")),
                   load_model("builtin:tiny-t5", adapter=str(tmp_path / "adapter"))):
        assert torch.allclose(logits(loaded.model), want, atol=1e-6) and "adapter" in loaded.source
    plain = logits(load_model("builtin:tiny-t5").model)
    assert not torch.allclose(plain, want, atol=1e-4)  # the adapter changes the model (init_lora_weights=False)


def test_corrupt_config(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelSourceError, match="config.json cannot be read"):
        load_model(str(tmp_path))


def test_file_instead_of_directory(tmp_path):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(ModelSourceError, match="is a file"):
        load_model(str(f))


def test_cuda_requested_without_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ModelSourceError, match="no CUDA GPU"):
        load_model("builtin:tiny-t5", device="cuda")


def test_minilm_round_trips_through_save_pretrained(tmp_path, minilm):
    minilm.model.save_pretrained(tmp_path)
    minilm.tokenizer.save_pretrained(tmp_path)
    again = load_model(str(tmp_path))
    assert again.kind == "seq2seq" and again.family == "encoder-decoder"
    a, b = minilm.model.state_dict(), again.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert again.tokenizer.tokenize("#Person2#: ok") == ["#Person2#", ":", "ok"]
    enc = again.tokenizer(["#Person1#: Is the pool open?"], return_tensors="pt")
    x = minilm.model.generate(**enc, max_new_tokens=5, do_sample=False)
    y = again.model.generate(**enc, max_new_tokens=5, do_sample=False)
    assert torch.equal(x, y)
