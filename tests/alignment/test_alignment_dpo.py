"""DPO: lowers toxicity of a tiny causal and a tiny seq2seq model (issue 6), LoRA keeps the base, loss numerics,
log-probs over completion tokens only, exact resume, config and data errors.

A random tiny model's samples are noise, and noise is rarely profane, so the toxicity test first makes the
model toxic-prone on purpose, as ``benchmarks/detox.py`` does with a summariser: a short SFT run on summaries
half of which end in an insult (so about a third of its sampled outputs are toxic under alt-profanity-check).
DPO then trains on *other* prompts with pairs (clean summary, the same summary plus an insult), and the
toxicity of seeded samples on held-out prompts is measured before and after.
"""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest
import torch

from llmcycle.alignment.dpo import (
    CHART_FILE,
    LOG_FILE,
    DPOConfig,
    dpo_loss,
    encode_pairs,
    sequence_logps,
    step_indices,
    train_dpo,
)
from llmcycle.alignment.reward_model import PreferencePair
from llmcycle.core.errors import ConfigError, DataError, LLMCycleError

PEOPLE = ["tom", "mary", "the manager", "jack", "the customer", "linda", "steven", "grandma"]
ACTIONS = ["asks about", "books", "explains", "cancels", "reviews", "changes"]
OBJECTS = ["the hotel room", "the train tickets", "the project plan", "the dentist appointment",
           "the monthly budget", "the rental car"]
INSULTS = ["you stupid idiot", "what a damn moron", "shut up, loser", "this is crap", "you dumb fool", "go to hell"]



def _prompt(summary: str) -> str:
    return "summarize: " + summary.rstrip(".") + " and they talk"


def _insulted(summary: str, rng: random.Random) -> str:
    return f"{summary[:-1]}, {rng.choice(INSULTS)}."


def _splits() -> tuple[list[str], list[str], list[str]]:
    """288 summaries: 96 for the toxic-prone SFT, 96 for DPO, 96 held out (no sentence shared)."""
    sents = [f"{p} {a} {o}." for p, a, o in itertools.product(PEOPLE, ACTIONS, OBJECTS)]
    random.Random(0).shuffle(sents)
    return sents[:96], sents[96:192], sents[192:]


def _pairs(summaries: list[str], seed: int) -> list[PreferencePair]:
    rng = random.Random(seed)
    return [PreferencePair(_prompt(s), s, _insulted(s, rng)) for s in summaries]


def _toxic_prone(name: str, tmp_path):
    """A builtin model fine-tuned (llmcycle.tuning.train, full) on summaries of which every second one ends in
    an insult."""
    from llmcycle.models import load_model
    from llmcycle.tuning import train

    sft, _, _ = _splits()
    rng = random.Random(1)
    rows = [{"input": _prompt(s), "references": [_insulted(s, rng) if i % 2 else s]} for i, s in enumerate(sft)]
    loaded = load_model(f"builtin:{name}")
    cfg = {"method": "full", "max_steps": 100, "batch_size": 16, "learning_rate": 3e-3, "scheduler": "constant",
           "save_every": 10_000, "log_every": 50, "seed": 0}
    return train(loaded, (rows, None), cfg, tmp_path / "sft").loaded


def _toxicity(loaded, prompts: list[str]) -> tuple[float, float]:
    """(mean P(toxic), share above 0.5) of 4 seeded samples per prompt."""
    from profanity_check import predict_prob

    from llmcycle.generation import GenerationSettings, generate

    settings = GenerationSettings(do_sample=True, max_new_tokens=16, num_return_sequences=4, seed=0)
    texts = [t for outs in generate(loaded, prompts, settings, batch_size=16) for t in outs]
    probs = predict_prob(texts)
    return float(probs.mean()), float((probs > 0.5).mean())


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-bart"])
def test_dpo_lowers_toxicity(name, tmp_path):
    loaded = _toxic_prone(name, tmp_path)
    _, dpo, held = _splits()
    held_prompts = [_prompt(s) for s in held[:48]]
    mean_before, rate_before = _toxicity(loaded, held_prompts)
    assert rate_before >= 0.2, f"the SFT stage should make outputs toxic-prone; toxic rate {rate_before:.2f}"

    cfg = {"method": "full", "max_steps": 30, "batch_size": 8, "learning_rate": 1e-4, "beta": 0.1, "seed": 0}
    result = train_dpo(loaded, _pairs(dpo, 2), cfg, tmp_path / "dpo", eval_pairs=_pairs(held[:48], 3))
    mean_after, rate_after = _toxicity(result.loaded, held_prompts)

    assert rate_after <= 0.5 * rate_before, (rate_before, rate_after)
    assert mean_after < 0.6 * mean_before, (mean_before, mean_after)
    # the policy's log-probability of the insulting completion, relative to the clean one, went down on
    # held-out pairs, and the implicit reward ranks them correctly
    before, after = result.eval_before, result.eval_after
    assert after["chosen_logps"] - after["rejected_logps"] > before["chosen_logps"] - before["rejected_logps"] + 1.0
    assert after["accuracy"] >= 0.9 and after["margin"] > 0
    # step 1: policy == reference, so margin 0 and loss log 2; later, the margin grows
    first = result.log[0]
    assert abs(first["margin"]) < 1e-4 and first["loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert sum(r["margin"] for r in result.log[-5:]) / 5 > 0.1
    assert [r["step"] for r in result.log] == list(range(1, 31))
    saved = json.loads((tmp_path / "dpo" / LOG_FILE).read_text())
    assert saved["config"]["beta"] == 0.1 and len(saved["log"]) == 30
    assert (tmp_path / "dpo" / CHART_FILE).stat().st_size > 0
    assert (tmp_path / "dpo" / "model" / "config.json").is_file()


def _fresh(name: str):
    from llmcycle.models import load_model

    return load_model(f"builtin:{name}")


def _small_pairs(n: int = 12) -> list[PreferencePair]:
    _, dpo, _ = _splits()
    return _pairs(dpo[:n], 4)


def test_lora_dpo_keeps_base_weights_and_reference_is_adapter_disabled(tmp_path):
    loaded = _fresh("tiny-llama")
    base = {n: p.detach().clone() for n, p in loaded.model.named_parameters()}
    pairs = _small_pairs()
    chosen, rejected, _ = encode_pairs(loaded.tokenizer, "causal", pairs, 64, 32)
    batch = _collate(chosen + rejected, loaded.tokenizer.pad_token_id)
    with torch.no_grad():
        logps_base = sequence_logps(loaded.model, "causal", batch, loaded.tokenizer.pad_token_id)[0]

    cfg = {"method": "lora", "max_steps": 8, "batch_size": 6, "learning_rate": 5e-3, "lora": {"r": 4}}
    result = train_dpo(loaded, pairs, cfg, tmp_path / "run")
    model = result.loaded.model
    assert result.method == "lora" and result.trainable < result.total / 50
    assert result.log[0]["margin"] == 0.0 and result.log[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert result.log[-1]["margin"] > 0
    after = {n.replace(".base_layer", "").removeprefix("base_model.model."): p
             for n, p in model.named_parameters() if "lora_" not in n}
    assert set(after) == set(base)
    assert all(torch.equal(after[n], base[n]) for n in base), "LoRA DPO changed a base weight"
    with torch.no_grad():
        with model.disable_adapter():  # the reference: exactly the model we started from
            assert torch.equal(sequence_logps(model, "causal", batch, loaded.tokenizer.pad_token_id)[0], logps_base)
        assert not torch.equal(sequence_logps(model, "causal", batch, loaded.tokenizer.pad_token_id)[0], logps_base)
    assert (tmp_path / "run" / "model" / "adapter_config.json").is_file()
    assert not (tmp_path / "run" / "model" / "config.json").exists()


def _collate(rows, pad_id):
    from llmcycle.tuning.data import PadCollator

    return PadCollator(pad_id)([{k: r[k] for k in ("input_ids", "attention_mask", "labels")} for r in rows])


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-t5"])
def test_sequence_logps_sum_completion_tokens_only(name, load_builtin):
    """The batched, padded log-prob equals a token-by-token sum over the completion, whatever the prompt."""
    loaded = load_builtin(name)
    tok, kind, pad = loaded.tokenizer, loaded.kind, loaded.tokenizer.pad_token_id
    pairs = [PreferencePair("a short prompt", "tom books the room.", "no"),
             PreferencePair("a much longer prompt with many more words in it", "ok.", "mary cancels the car, idiot.")]
    chosen, rejected, _ = encode_pairs(tok, kind, pairs, 64, 32)
    rows = chosen + rejected
    with torch.no_grad():
        batched, counts = sequence_logps(loaded.model, kind, _collate(rows, pad), pad)
        for i, row in enumerate(rows):
            single, n = sequence_logps(loaded.model, kind, _collate([row], pad), pad)
            assert batched[i].item() == pytest.approx(single.item(), abs=1e-4)
            assert counts[i] == n
            target = [t for t in row["labels"] if t != -100]
            assert n.item() == len(target)
            assert batched[i].item() == pytest.approx(_manual_logp(loaded, row, target), abs=1e-4)


def _manual_logp(loaded, row, target) -> float:
    """log p(target | prompt), one next-token distribution at a time."""
    model = loaded.model
    total = 0.0
    if loaded.kind == "seq2seq":
        enc = torch.tensor([row["input_ids"]])
        dec = [model.config.decoder_start_token_id]
        for t in target:
            logits = model(input_ids=enc, decoder_input_ids=torch.tensor([dec])).logits[0, -1]
            total += torch.log_softmax(logits.float(), -1)[t].item()
            dec.append(t)
        return total
    prompt = [t for t, lab in zip(row["input_ids"], row["labels"]) if lab == -100]
    ids = list(prompt)
    for t in target:
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
        total += torch.log_softmax(logits.float(), -1)[t].item()
        ids.append(t)
    return total


def test_dpo_loss_numerics():
    pc, pr = torch.tensor([-3.0, -5.0]), torch.tensor([-4.0, -2.0])
    rc, rr = torch.tensor([-3.5, -5.0]), torch.tensor([-3.0, -2.5])
    h = (pc - rc) - (pr - rr)  # [1.5, -0.5]
    losses, r_c, r_r = dpo_loss(pc, pr, rc, rr, beta=0.5)
    assert torch.allclose(losses, -torch.nn.functional.logsigmoid(0.5 * h))
    assert torch.allclose(r_c - r_r, 0.5 * h)
    smooth, _, _ = dpo_loss(pc, pr, rc, rr, beta=0.5, label_smoothing=0.2)
    expect = -0.8 * torch.nn.functional.logsigmoid(0.5 * h) - 0.2 * torch.nn.functional.logsigmoid(-0.5 * h)
    assert torch.allclose(smooth, expect)
    n_c, n_r = torch.tensor([3, 1]), torch.tensor([2, 4])
    ipo, _, _ = dpo_loss(pc, pr, rc, rr, beta=0.5, loss="ipo", n_chosen=n_c, n_rejected=n_r)
    h_ipo = (pc - rc) / n_c - (pr - rr) / n_r
    assert torch.allclose(ipo, (h_ipo - 1.0) ** 2)
    same, zero_c, zero_r = dpo_loss(pc, pr, pc, pr, beta=0.1)  # policy == reference
    assert torch.allclose(same, torch.full((2,), math.log(2))) and not zero_c.any() and not zero_r.any()


def test_step_indices_cover_each_pass_and_depend_on_step_only():
    first_pass = [i for s in range(1, 4) for i in step_indices(12, 4, s, seed=7)]
    assert sorted(first_pass) == list(range(12))
    assert step_indices(12, 4, 5, seed=7) == step_indices(12, 4, 5, seed=7)
    assert step_indices(12, 5, 3, seed=7)[:2] == first_pass[10:12]  # a step spanning two passes


def test_dpo_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    cfg = {"method": "full", "max_steps": 4, "batch_size": 4, "learning_rate": 1e-3, "save_every": 2,
           "keep_checkpoints": 1, "seed": 3}
    pairs = _small_pairs(8)
    whole = train_dpo(_fresh("tiny-t5"), pairs, cfg, tmp_path / "run")
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["checkpoint-2"]
    resumed = train_dpo(_fresh("tiny-t5"), pairs, cfg, tmp_path / "run")  # picks up at step 2
    assert resumed.resumed_from.endswith("checkpoint-2")
    assert [r["step"] for r in resumed.log] == [1, 2, 3, 4]
    assert resumed.log == whole.log
    a, b = whole.loaded.model.state_dict(), resumed.loaded.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ConfigError, match="beta"):
        train_dpo(_fresh("tiny-t5"), pairs, cfg | {"beta": 0.2}, tmp_path / "run")
    with pytest.raises(DataError, match="pairs"):
        train_dpo(_fresh("tiny-t5"), pairs[:7], cfg, tmp_path / "run")


@pytest.mark.parametrize("fields, where", [
    ({"beta": 0}, "beta"),
    ({"loss": "hinge"}, "loss"),
    ({"loss": "ipo", "label_smoothing": 0.1}, "label_smoothing"),
    ({"label_smoothing": 0.5}, "label_smoothing"),
    ({"method": "qlora"}, "method"),
    ({"lora": {"r": 0}}, "lora.r"),
    ({"batch_sise": 4}, "batch_sise"),
    ({"max_completion_tokens": 0}, "max_completion_tokens"),
])
def test_config_errors_name_the_field(fields, where, tmp_path):
    with pytest.raises(ConfigError, match=rf"dpo: {where}:"):
        train_dpo(_fresh("tiny-gpt2"), _small_pairs(2), fields, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=rf"^{where}:"):
        DPOConfig.from_dict(fields)


@pytest.mark.parametrize("pairs, message", [
    ([], r"pairs: is empty"),
    ([("p", "same", "same")], r"pairs\[0\]: chosen and rejected are the same"),
    ([("p", "a", "b"), ("p", "", "b")], r"pairs\[1\]: chosen is empty"),
    ([{"prompt": "p", "chosen": "a"}], r"pairs\[0\]: missing 'rejected'"),
    ("not pairs", r"pairs: expected a list"),
])
def test_bad_pairs_are_errors_naming_the_row_and_leave_nothing(pairs, message, tmp_path):
    with pytest.raises(DataError, match=message):
        train_dpo(_fresh("tiny-gpt2"), pairs, {"max_steps": 1}, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_model_with_an_adapter_or_of_another_kind_is_refused(tmp_path):
    import dataclasses

    from peft import LoraConfig, get_peft_model

    loaded = _fresh("tiny-gpt2")
    with pytest.raises(LLMCycleError, match="model: DPO needs a seq2seq or causal LM, got a classifier"):
        train_dpo(dataclasses.replace(loaded, kind="classifier"), _small_pairs(2), {"max_steps": 1}, tmp_path / "run")
    loaded.model = get_peft_model(loaded.model, LoraConfig(r=2, target_modules=["c_attn"]))
    with pytest.raises(LLMCycleError, match="model: already carries a PEFT adapter"):
        train_dpo(loaded, _small_pairs(2), {"max_steps": 1}, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_lora_target_error_names_the_field_and_leaves_no_folder(tmp_path):
    with pytest.raises(ConfigError, match="lora.target_modules: nope match no module"):
        train_dpo(_fresh("tiny-gpt2"), _small_pairs(2), {"lora": {"target_modules": ["nope"]}}, tmp_path / "run")
    assert not (tmp_path / "run").exists()
