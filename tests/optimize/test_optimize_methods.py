"""Quantisation, pruning and student building: what changes, what is kept, what reloads."""

from __future__ import annotations

import pytest
import torch

from llmcycle.core.errors import ConfigError
from llmcycle.optimize import OptimizeConfig, OptimizeError
from llmcycle.optimize.config import DistilOptions, PruneOptions

PROMPT = "#Person1#: Did you book the tickets for Friday? #Person2#: Yes, two seats near the front."


def _first_step_logits(loaded, text=PROMPT):
    enc = loaded.tokenizer([text], return_tensors="pt")
    kw = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    if loaded.kind == "seq2seq":
        kw["decoder_input_ids"] = torch.full((1, 1), loaded.tokenizer.cls_token_id)
    with torch.no_grad():
        return loaded.model(**kw).logits[0, -1]


def test_int8_quantises_linear_layers_and_embeddings_keeps_predictions_and_reloads(minilm, tmp_path):
    from llmcycle.generation import generate
    from llmcycle.models import load_model
    from llmcycle.models.quantized import is_int8, save_int8
    from llmcycle.optimize.measure import count_params, size_on_disk_mb
    from llmcycle.optimize.quantize import quantize_int8

    q = quantize_int8(minilm)
    assert is_int8(q.model) and not is_int8(minilm.model)  # the original is untouched
    kinds = {type(m).__name__ for m in q.model.modules() if type(m).__module__.startswith("torch.ao.nn.quantized")}
    assert {"Linear", "Embedding"} <= kinds
    assert not any(isinstance(m, torch.nn.Linear) and type(m) is torch.nn.Linear for m in q.model.modules())
    assert count_params(q.model) >= count_params(minilm.model)  # same weights, the tied head stored twice
    ref, got = _first_step_logits(minilm), _first_step_logits(q)
    assert int(ref.argmax()) in torch.topk(got, 5).indices.tolist()
    assert torch.corrcoef(torch.stack([ref, got]))[0, 1] > 0.95
    assert size_on_disk_mb(q) < 0.5 * size_on_disk_mb(minilm)

    save_int8(q, tmp_path / "int8")
    back = load_model(str(tmp_path / "int8"))
    assert is_int8(back.model)
    assert generate(back, [PROMPT]) == generate(q, [PROMPT])


def _header(path):
    """The tensors of a safetensors file: {name: dtype}, read from its JSON header alone."""
    import json
    import struct

    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    return {k: v["dtype"] for k, v in header.items() if k != "__metadata__"}


@pytest.mark.parametrize("backend", ["torch-dynamic", "torchao"])
def test_int8_saves_int8_safetensors_and_reloads_without_unpickling(load_builtin, tmp_path, monkeypatch, backend):
    from llmcycle.models import load_model
    from llmcycle.models.quantized import backend_of, save_int8, weight_bytes
    from llmcycle.optimize.quantize import quantize_int8

    base = load_builtin("tiny-llama")
    q = quantize_int8(base, backend=backend)
    assert backend_of(q.model) == backend and backend_of(base.model) is None
    assert weight_bytes(q.model) < 0.6 * weight_bytes(base.model)  # int8 + scales; the tied head gets its own copy
    ref, got = _first_step_logits(base), _first_step_logits(q)
    assert torch.corrcoef(torch.stack([ref, got]))[0, 1] > 0.99
    save_int8(q, tmp_path / "q")
    files = {f.name for f in (tmp_path / "q").iterdir()}
    assert "model.safetensors" in files and not {f for f in files if f.endswith((".pt", ".bin", ".pkl", ".pth"))}
    dtypes = _header(tmp_path / "q" / "model.safetensors")
    int8 = {k for k, d in dtypes.items() if d in ("I8", "U8") and "weight" in k and "zero" not in k}
    for name in ("model.layers.0.self_attn.q_proj.", "model.layers.1.mlp.down_proj.", "lm_head.",
                 "model.embed_tokens."):  # linear layers, the head, the token table
        assert [k for k in int8 if k.startswith(name)], name
    assert len(int8) == 2 * 7 + 2  # 7 linear layers a block, the head and the token table: all int8

    def no_pickle(*args, **kwargs):
        raise AssertionError("torch.load called: the int8 format must load without unpickling")

    monkeypatch.setattr(torch, "load", no_pickle)
    back = load_model(str(tmp_path / "q"))
    assert backend_of(back.model) == backend
    assert torch.allclose(_first_step_logits(back), got, atol=1e-5)


def test_int8_folders_of_the_old_pickled_format_are_refused_in_one_line(load_builtin, tmp_path):
    import json

    from llmcycle.models import load_model

    base = load_builtin("tiny-gpt2")
    folder = tmp_path / "old"
    base.model.config.save_pretrained(folder)
    base.tokenizer.save_pretrained(folder)
    (folder / "quantized_model.pt").write_bytes(b"not unpickled")
    (folder / "llmcycle_quantization.json").write_text(json.dumps({"method": "int8_dynamic", "torch": "2.13.0"}))
    with pytest.raises(OptimizeError) as info:
        load_model(str(folder))
    msg = str(info.value)
    assert "\n" not in msg and "pickled format" in msg and "quantise the original model again" in msg


@pytest.mark.parametrize("dtype,expected", [("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_cast_changes_every_float_weight(load_builtin, dtype, expected):
    from llmcycle.optimize.quantize import cast

    base = load_builtin("tiny-t5")
    half = cast(base, dtype)
    assert {p.dtype for p in half.model.parameters()} == {expected}
    assert {p.dtype for p in base.model.parameters()} == {torch.float32}


def test_bitsandbytes_on_cpu_is_a_clear_error(load_builtin):
    from llmcycle.models.quantized import load_bnb

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the CPU error path does not apply")
    with pytest.raises(OptimizeError, match="CUDA GPU.*int8"):
        load_bnb("builtin:tiny-t5", 4, "seq2seq")


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_magnitude_pruning_reaches_the_sparsity_and_spares_excluded_layers(load_builtin, scope):
    from llmcycle.optimize.prune import prunable_layers, prune_model

    base = load_builtin("tiny-bart")
    pruned, report = prune_model(base, PruneOptions(sparsity=0.3, scope=scope))
    assert report.selected == pytest.approx(0.3, abs=0.005)
    layers = dict(prunable_layers(pruned.model, PruneOptions().exclude))
    shares = [float((m.weight == 0).float().mean()) for m in layers.values()]
    if scope == "layer":
        assert all(s == pytest.approx(0.3, abs=0.01) for s in shares)
    else:
        assert max(shares) - min(shares) > 0.02  # one global threshold: layers differ
    # the smallest surviving weight is at least as large as any weight that was zeroed
    name, layer = next(iter(layers.items()))
    orig = dict(base.model.named_modules())[name].weight
    zeroed = orig[layer.weight == 0].abs()
    assert float(zeroed.max()) <= float(orig[layer.weight != 0].abs().min()) + 1e-6
    assert torch.equal(pruned.model.model.shared.weight, base.model.model.shared.weight)  # embeddings untouched
    assert not any(hasattr(m, "weight_orig") for m in pruned.model.modules())  # masks folded in


def test_structured_pruning_zeroes_whole_rows_and_the_model_saves_usably(load_builtin, tmp_path):
    from llmcycle.models import load_model
    from llmcycle.optimize.prune import prunable_layers, prune_model

    base = load_builtin("tiny-t5")
    pruned, report = prune_model(base, PruneOptions(sparsity=0.25, structured=True))
    for _, m in prunable_layers(pruned.model, PruneOptions().exclude):
        zero_rows = (m.weight == 0).all(dim=1)
        assert int(zero_rows.sum()) == round(0.25 * m.weight.shape[0])
    pruned.model.save_pretrained(str(tmp_path / "p"))
    pruned.tokenizer.save_pretrained(str(tmp_path / "p"))
    back = load_model(str(tmp_path / "p"))
    assert torch.equal(back.model.decoder.block[0].layer[0].SelfAttention.q.weight,
                       pruned.model.decoder.block[0].layer[0].SelfAttention.q.weight)
    assert report.overall > 0


def test_pruning_gpt2_conv1d_layers(load_builtin):
    from llmcycle.optimize.prune import prune_model

    _, report = prune_model(load_builtin("tiny-gpt2"), PruneOptions(sparsity=0.5))
    assert report.pruned_layers == 8 and report.selected == pytest.approx(0.5, abs=0.005)


@pytest.mark.parametrize("name,path", [("tiny-t5", "decoder.block"), ("tiny-bart", "model.decoder.layers"),
                                       ("tiny-gpt2", "transformer.h"), ("tiny-llama", "model.layers"),
                                       ("minilm-seq2seq", "decoder.bert.encoder.layer")])
def test_decoder_layers_found_per_family(load_builtin, name, path):
    from llmcycle.optimize.distil import decoder_layer_list

    loaded = load_builtin(name)
    assert decoder_layer_list(loaded.model, loaded.kind)[0] == path


def test_student_keeps_spread_layers_with_the_teachers_weights_and_reloads(minilm, tmp_path):
    from llmcycle.generation import generate
    from llmcycle.models import load_model
    from llmcycle.optimize.distil import make_student

    student, keep = make_student(minilm, DistilOptions())
    assert keep == [0, 2, 5]
    t_layers, s_layers = minilm.model.decoder.bert.encoder.layer, student.model.decoder.bert.encoder.layer
    assert len(s_layers) == 3 and student.model.config.decoder.num_hidden_layers == 3
    for i, k in enumerate(keep):
        for (n, a), (_, b) in zip(s_layers[i].named_parameters(), t_layers[k].named_parameters()):
            assert torch.equal(a, b), n
    assert len(minilm.model.decoder.bert.encoder.layer) == 6  # the teacher is untouched
    assert torch.equal(student.model.encoder.embeddings.word_embeddings.weight,
                       minilm.model.encoder.embeddings.word_embeddings.weight)
    t_params = sum(p.numel() for p in minilm.model.parameters())
    s_params = sum(p.numel() for p in student.model.parameters())
    assert s_params < t_params - 3 * sum(p.numel() for p in t_layers[1].parameters()) + 1
    student.model.save_pretrained(str(tmp_path / "s"))
    student.tokenizer.save_pretrained(str(tmp_path / "s"))
    back = load_model(str(tmp_path / "s"))
    assert generate(back, [PROMPT]) == generate(student, [PROMPT])


def test_student_layer_choices_are_checked(load_builtin):
    from llmcycle.optimize.distil import kept_layers

    assert kept_layers(12, DistilOptions(decoder_layers=6)) == [0, 2, 4, 7, 9, 11]
    assert kept_layers(6, DistilOptions(layers=[1, 3])) == [1, 3]
    with pytest.raises(OptimizeError, match="distil.layers"):
        kept_layers(2, DistilOptions(layers=[0, 5]))
    with pytest.raises(ConfigError, match="distil.layers"):
        OptimizeConfig.from_dict({"distil": {"layers": [3, 1]}})


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"methods\.0"):
        OptimizeConfig.from_dict({"methods": ["int4"]})
    with pytest.raises(ConfigError, match="listed twice"):
        OptimizeConfig.from_dict({"methods": ["int8", "int8"]})
    with pytest.raises(ConfigError, match="prune.sparsity"):
        OptimizeConfig.from_dict({"prune": {"sparsity": 1.5}})
    with pytest.raises(ConfigError, match=r"prune.exclude: .*not a valid regular expression"):
        OptimizeConfig.from_dict({"prune": {"exclude": ["lm_head("]}})
    with pytest.raises(ConfigError, match="train.method must be full"):
        OptimizeConfig.from_dict({"distil": {"train": {"method": "lora"}}})


def test_int8_keeps_tied_embeddings_shared_and_writes_them_once(load_builtin, tmp_path):
    from llmcycle.generation import generate
    from llmcycle.models import load_model
    from llmcycle.models.quantized import save_int8
    from llmcycle.optimize.quantize import quantize_int8

    q = quantize_int8(load_builtin("tiny-t5"))
    m = q.model
    assert m.encoder.embed_tokens is m.shared and m.decoder.embed_tokens is m.shared
    save_int8(q, tmp_path / "q")
    state = _header(tmp_path / "q" / "model.safetensors")
    assert any(k.startswith("shared.") for k in state)
    assert not any(k.startswith(("encoder.embed_tokens.", "decoder.embed_tokens.")) for k in state)
    back = load_model(str(tmp_path / "q"))
    assert back.model.encoder.embed_tokens is back.model.shared
    assert generate(back, [PROMPT]) == generate(q, [PROMPT])
