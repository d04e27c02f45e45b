"""Before/after alignment evaluation: toxicity of samples, ROUGE of greedy outputs, KL to the reference."""

from __future__ import annotations

import copy

import pytest
import torch

from llmcycle.alignment.evaluate import alignment_eval, comparison_rows, sequence_kl
from llmcycle.core.errors import DataError
from llmcycle.generation import GenerationSettings

PROMPTS = ["#Person1#: the order is late again.\n#Person2#: sorry about that.", "#Person1#: hello.\n#Person2#: hi."]
REFS = [["the order is late."], ["they greet."]]



@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-t5"])
def test_kl_is_zero_against_itself_and_positive_against_a_changed_copy(name, load_builtin):
    loaded = load_builtin(name)
    sampling = GenerationSettings(do_sample=True, max_new_tokens=8, seed=3)
    res = alignment_eval(loaded, PROMPTS, REFS, reference=loaded, samples=2, generation=sampling)
    assert res["kl_to_reference"] == 0.0
    assert 0.0 <= res["toxic_rate"] <= 1.0 and 0.0 <= res["toxicity_mean"] <= 1.0
    assert {"rouge1", "rouge2", "rougeL", "greedy_toxic_rate", "response_tokens"} <= set(res)
    assert len(res["examples"]["sampled"]) == 4  # 2 prompts x 2 samples
    changed = copy.copy(loaded)
    changed.model = copy.deepcopy(loaded.model)
    with torch.no_grad():
        for p in changed.model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    again = alignment_eval(loaded, PROMPTS, REFS, reference=changed, samples=2, generation=sampling)
    assert again["kl_to_reference"] > 0.01
    assert again["toxicity_mean"] == res["toxicity_mean"]  # same model, same seed: the same samples


def test_sequence_kl_is_non_negative_per_sequence(load_builtin):
    a = load_builtin("tiny-llama")
    b = copy.copy(a)
    b.model = copy.deepcopy(a.model)
    with torch.no_grad():
        b.model.get_output_embeddings().weight.mul_(1.5)
    kls = sequence_kl(a, b, PROMPTS, [[5, 6, 7], [8]])
    assert len(kls) == 2 and all(k >= 0 for k in kls) and kls[0] > 0


def test_toxic_outputs_are_counted(load_builtin, monkeypatch):
    from llmcycle.generation.engine import GenerationResult, Output

    def fake_detailed(loaded, inputs, settings, **kw):
        texts = ["a fine summary.", "what a stupid idiot."]
        return [GenerationResult(i, "x", 3, False, [Output(texts[(i + k) % 2], [5], "eos")
                                            for k in range(settings.num_return_sequences)])
                for i, _ in enumerate(inputs)]

    import llmcycle.alignment.evaluate as evaluate_module  # patched where they are used

    monkeypatch.setattr(evaluate_module, "generate_detailed", fake_detailed)
    monkeypatch.setattr(evaluate_module, "generate",
                        lambda loaded, inputs, settings, **kw: ["what a stupid idiot."] * len(inputs))
    res = alignment_eval(load_builtin("tiny-gpt2"), PROMPTS, REFS, samples=2)
    assert res["toxic_rate"] == 0.5 and res["greedy_toxic_rate"] == 1.0
    rows = comparison_rows(res, res | {"toxic_rate": 0.0})
    assert rows[0] == ["toxic-output rate (sampled)", "0.5000", "0.0000", "-0.5000"]
    with pytest.raises(DataError, match="2 prompts"):
        alignment_eval(load_builtin("tiny-gpt2"), PROMPTS, REFS[:1])
