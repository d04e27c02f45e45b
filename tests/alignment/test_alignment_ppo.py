"""PPO: reward goes up on tiny seq2seq and causal policies, KL >= 0, LoRA reference, numerics, resume, config.

The builtin tiny models are random: at temperature 1 they are near-uniform over 30k tokens (the
random GPT-2's logits have a std of ~0.16), so no single-word reward could be found by sampling in
a few dozen steps. Rollouts therefore sample at a temperature that gives the random logits the
spread of a trained model's (T5 0.3, GPT-2 0.05); the reward is the share of response words equal
to the word the untrained policy samples most often (~10% at the start). Logprobs and KL are
computed at the same temperature, so PPO optimises exactly the policy that samples.
"""

from __future__ import annotations

import collections
import json
import logging

import pytest
import torch

from llmcycle.alignment.ppo import PPOTrainer, batch_indices, train_ppo
from llmcycle.alignment.ppo_config import PPOConfig
from llmcycle.alignment.ppo_model import _forward
from llmcycle.alignment.ppo_ops import (
    KLController,
    RunningMoments,
    bernoulli_kl,
    full_kl,
    gae,
    kl_penalty,
    masked_mean,
    policy_loss,
    shaped_rewards,
    token_rewards,
    whiten,
)
from llmcycle.core.checkpoint import COMPLETE
from llmcycle.core.errors import ConfigError, LLMCycleError

PROMPTS = [f"tell me about item number {i} please" for i in range(32)]
# rollout temperature per tiny model (see the module docstring)
TEMPERATURE = {"tiny-t5": 0.3, "tiny-gpt2": 0.05, "tiny-llama": 0.05}



@pytest.fixture
def fresh():
    """``fresh(name)``: a newly built builtin model (PPO trains it in place, so never the session cache)."""
    from llmcycle.models import load_model

    return lambda name: load_model(f"builtin:{name}")


class WordShare:
    """Reward: the share of response words equal to ``word`` (a programmatic reward source)."""

    def __init__(self, word: str):
        self.word, self.name = word, f"share of {word!r}"

    def __call__(self, prompts, responses):
        return [r.split().count(self.word) / max(len(r.split()), 1) for r in responses]


def most_sampled_word(loaded, temperature: float) -> str:
    """The word the untrained policy samples most often with the rollout settings, prompt words aside.

    (A word copied from the prompt, like the random GPT-2's "please", is an unstable target: the
    random model's strongest habit is to repeat its previous token, which pulls away from it.)
    """
    from llmcycle.generation import GenerationSettings, generate

    texts = generate(loaded, PROMPTS, GenerationSettings(do_sample=True, temperature=temperature, max_new_tokens=8,
                                                         seed=99), batch_size=32)
    in_prompts = {w for p in PROMPTS for w in p.split()}
    counts = collections.Counter(w for t in texts for w in t.split() if w not in in_prompts)
    return counts.most_common(1)[0][0]


def ppo_cfg(name: str, **over) -> dict:
    cfg = {"steps": 30, "batch_size": 16, "mini_batch_size": 8, "ppo_epochs": 2, "learning_rate": 3e-5,
           "generation": {"max_new_tokens": 8, "temperature": TEMPERATURE[name]}, "save_every": 100,
           "save_model": False, "seed": 0}
    return cfg | over


# ---- the requirement ---------------------------------------------------------------------


@pytest.mark.parametrize("name, dense", [("tiny-t5", False), ("tiny-gpt2", False), ("tiny-t5", True)])
def test_ppo_raises_a_programmatic_reward_with_kl_reported_nonnegative(name, dense, fresh, tmp_path):
    loaded = fresh(name)
    reward = WordShare(most_sampled_word(loaded, TEMPERATURE[name]))
    result = train_ppo(loaded, PROMPTS, reward, ppo_cfg(name, dense_rewards=dense), tmp_path)
    rewards = [r["reward_mean"] for r in result.log]
    assert len(rewards) == 30 and result.steps == 30 and result.stopped is None
    assert all(r["kl"] >= 0.0 for r in result.log)
    assert result.log[0]["kl"] == 0.0  # first rollout: the policy is the reference
    before, after = rewards[0], sum(rewards[-10:]) / 10  # the untrained policy vs the last ten steps
    assert before < 0.25 and after > before + 0.35, (reward.word, rewards)
    assert result.final_kl == result.log[-1]["kl"] > 0.0
    for key in ("reward_std", "entropy", "clip_frac", "value_loss", "policy_loss", "approx_kl", "response_len",
                "kl_coef"):
        assert all(key in r for r in result.log), key
    saved = json.loads((tmp_path / "ppo_log.json").read_text())
    assert [r["step"] for r in saved] == list(range(1, 31))
    assert (tmp_path / "reward.png").stat().st_size > 1000 and (tmp_path / "kl.png").stat().st_size > 1000


# ---- LoRA: the reference is the base with the adapter disabled ------------------------------------


def test_lora_policy_uses_the_adapter_disabled_base_as_reference(fresh, tmp_path):
    from peft import PeftModel

    loaded = fresh("tiny-t5")
    base = {n: (p, p.detach().clone()) for n, p in loaded.model.named_parameters()}
    n_base = sum(p.numel() for p, _ in base.values())
    cfg = ppo_cfg("tiny-t5", steps=3, method="lora", learning_rate=1e-3, lora={"r": 4, "dropout": 0.0},
                  save_model=True)
    result = train_ppo(loaded, PROMPTS, WordShare("drying"), cfg, tmp_path)
    trainer = result.trainer
    assert isinstance(loaded.model, PeftModel) and trainer.model is loaded.model
    assert trainer.ref_model is None  # no second copy of the model
    n_adapter = sum(p.numel() for n, p in loaded.model.named_parameters() if "lora_" in n)
    assert sum(p.numel() for p in loaded.model.parameters()) == n_base + n_adapter == result.total
    assert result.trainable == n_adapter
    assert all(torch.equal(p, before) for p, before in base.values())  # base weights untouched
    lora_b = [p for n, p in loaded.model.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)  # B starts at 0: the adapter trained
    assert result.log[0]["kl"] == 0.0 and all(r["kl"] >= 0 for r in result.log)
    # the reference really is the base: with the adapter off, the policy scores as the untrained model
    b = trainer.batch(PROMPTS[:4], [[2000, 3000, 102]] * 4)
    ref = trainer.reference_logp(b, 1.0)
    untrained = fresh("tiny-t5")
    from llmcycle.alignment.ppo_model import score

    with torch.no_grad():
        assert torch.allclose(ref, score(untrained.model, "seq2seq", b).logp, atol=1e-6)
    assert (tmp_path / "model" / "adapter_config.json").is_file()
    assert (tmp_path / "model" / "value_head.pt").is_file()


def test_full_policy_reference_is_a_frozen_copy(fresh):
    loaded = fresh("tiny-gpt2")
    trainer = PPOTrainer(loaded, PPOConfig.from_dict(ppo_cfg("tiny-gpt2")), WordShare("simon"))
    assert trainer.ref_model is not None and trainer.ref_model is not loaded.model
    assert not any(p.requires_grad for p in trainer.ref_model.parameters())
    assert all(p.requires_grad for p in loaded.model.parameters())


# ---- numerics -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tiny-t5", "tiny-bart", "tiny-gpt2", "tiny-llama"])
def test_scoring_is_aligned_with_generation(name, fresh):
    """Greedy tokens are the argmax of the scored logits at every response position (shift, padding, positions)."""
    loaded = fresh(name)
    trainer = PPOTrainer(loaded, PPOConfig.from_dict({"generation": {"do_sample": False, "max_new_tokens": 6}}),
                         WordShare("x"))
    prompts = ["hi", "a much longer prompt with many more words than the first", "medium sized prompt here"]
    _, ids = trainer.generate(prompts, greedy=True)
    b = trainer.batch(prompts, ids)
    with torch.no_grad():
        logits, hidden = _forward(trainer.model, loaded.kind, b)
    assert logits.shape[:2] == b.response_ids.shape and hidden.shape[:2] == b.response_ids.shape
    m = b.response_mask.bool()
    assert torch.equal(logits.argmax(-1)[m], b.response_ids[m])
    assert torch.isfinite(logits).all()


def test_kl_is_zero_before_any_update_and_nonnegative(fresh):
    loaded = fresh("tiny-gpt2")
    trainer = PPOTrainer(loaded, PPOConfig.from_dict(ppo_cfg("tiny-gpt2")), WordShare("simon"))
    ro = trainer.rollout(PROMPTS[:8], step=1)
    assert torch.equal(ro.logp, ro.ref_logp) and float(ro.kl.abs().sum()) == 0.0
    g = torch.Generator().manual_seed(0)
    logp, ref = -torch.rand(64, generator=g) * 5, -torch.rand(64, generator=g) * 5
    for est in ("k3", "abs", "squared"):
        assert (kl_penalty(logp, ref, est) >= 0).all() and float(kl_penalty(logp, logp, est).sum()) == 0.0


def test_adaptive_kl_controller_moves_the_coefficient_the_right_way():
    up = KLController(0.2, "adaptive", target=6.0, horizon=100)
    assert up.update(12.0, n_steps=10) == pytest.approx(0.2 * (1 + 0.2 * 10 / 100))  # error clipped at +0.2
    down = KLController(0.2, "adaptive", target=6.0, horizon=100)
    assert down.update(4.5, n_steps=10) == pytest.approx(0.2 * (1 - 0.2 * 10 / 100))  # error -0.25, clipped
    assert down.coef < 0.2 < up.coef
    small = KLController(0.2, "adaptive", target=6.0, horizon=100)
    assert small.update(5.7, n_steps=10) == pytest.approx(0.2 * (1 - 0.05 * 0.1))  # within the clip
    fixed = KLController(0.2, "fixed")
    assert fixed.update(100.0, 10) == 0.2


def test_shaped_rewards_credit_the_token_that_moved_the_score():
    # response 0: the third token made it toxic-free (0.1 -> 0.9); response 1: one token, then padding
    dense = shaped_rewards([[0.1, 0.1, 0.9, 0.9], [0.1, 0.3]], width=4)
    assert torch.allclose(dense, torch.tensor([[0.0, 0.8, 0.0, 0.0], [0.2, 0.0, 0.0, 0.0]]))
    assert torch.allclose(dense.sum(1), torch.tensor([0.9 - 0.1, 0.3 - 0.1]))  # score minus reward("")


def test_dense_rollout_rewards_sum_to_each_score_minus_the_empty_response(fresh):
    loaded = fresh("tiny-t5")
    word = most_sampled_word(loaded, TEMPERATURE["tiny-t5"])
    reward = WordShare(word)
    trainer = PPOTrainer(loaded, PPOConfig.from_dict(ppo_cfg("tiny-t5", dense_rewards=True)), reward)
    ro = trainer.rollout(PROMPTS[:16], step=1)
    mask = ro.batch.response_mask.bool()
    assert torch.allclose(ro.dense.sum(1), ro.scores - reward([""], [""])[0], atol=1e-6)
    assert (ro.dense[~mask] == 0).all() and ro.dense.abs().sum() > 0
    tok = loaded.tokenizer
    i = next(i for i, r in enumerate(ro.responses) if word in r.split())  # where the word arrives, reward moves
    ids = ro.batch.response_ids[i][mask[i]].tolist()
    first = next(k for k in range(1, len(ids) + 1) if word in tok.decode(ids[:k], skip_special_tokens=True).split())
    assert ro.dense[i, first - 1] != 0


def test_bernoulli_kl_is_zero_only_where_the_end_probabilities_agree():
    p, q = torch.tensor([0.6, 0.3, 0.01]), torch.tensor([0.3, 0.3, 0.5])
    kl = bernoulli_kl(p.log(), q.log())
    expected = p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()
    assert torch.allclose(kl, expected, atol=1e-6) and kl[1] == 0 and (kl[[0, 2]] > 0).all()


def test_eos_coef_pulls_the_probability_of_ending_back_to_the_reference(fresh):
    """A policy made to end far more often than its reference is pulled back by the length anchor alone."""
    loaded = fresh("tiny-t5")
    cfg = PPOConfig.from_dict(ppo_cfg("tiny-t5", learning_rate=1e-3, ppo_epochs=4, kl={"eos_coef": 10.0}))
    trainer = PPOTrainer(loaded, cfg, WordShare("drying"))  # the reference is copied here, before the change
    ro = trainer.rollout(PROMPTS[:16], step=1)
    common = collections.Counter(t for t in ro.batch.response_ids[ro.batch.response_mask.bool()].tolist()
                                 if t not in trainer.eos_ids).most_common(1)[0][0]
    head = loaded.model.get_output_embeddings().weight
    with torch.no_grad():  # the policy's end token now scores twice its most frequent token
        head[trainer.eos_ids[0]] = 2 * head[common]

    def gap(ro):
        from llmcycle.alignment.ppo_model import score

        with torch.no_grad():
            s = score(loaded.model, "seq2seq", ro.batch, temperature=trainer.temperature, eos_ids=trainer.eos_ids)
        return float(masked_mean((s.eos_logp.exp() - ro.ref_eos.exp()).abs(), ro.batch.response_mask))

    ro = trainer.rollout(PROMPTS[:16], step=2)
    ro.advantages, ro.returns = torch.zeros_like(ro.logp), ro.values.clone()  # no reward signal at all
    before = gap(ro)
    stats = trainer.update(ro, step=2)
    assert before > 0.05 and stats["eos_kl"] > 0
    assert gap(ro) < before / 2, (before, gap(ro))


def test_full_kl_is_the_exact_kl_of_the_next_token_distributions():
    p = torch.log_softmax(torch.randn(3, 5, 11, generator=torch.Generator().manual_seed(0)), -1)
    q = torch.log_softmax(torch.randn(3, 5, 11, generator=torch.Generator().manual_seed(1)), -1)
    expected = torch.nn.functional.kl_div(q, p, log_target=True, reduction="none").sum(-1)  # KL(p || q)
    assert torch.allclose(full_kl(p, q), expected, atol=1e-6) and (full_kl(p, q) > 0).all()
    assert full_kl(p, p).abs().max() < 1e-6


@pytest.mark.parametrize("method", ["full", "lora"])
def test_kl_loss_coef_pulls_a_drifted_policy_back_to_the_reference(fresh, method):
    """With no reward signal at all, the KL in the loss alone moves every next-token distribution back."""
    from llmcycle.alignment.ppo_model import score

    loaded = fresh("tiny-t5")
    extra = {"lora": {"r": 8, "alpha": 16, "target_modules": ["q", "k", "v", "o", "wi", "wo"]}} if method == "lora" else {}
    cfg = PPOConfig.from_dict(ppo_cfg("tiny-t5", learning_rate=1e-2 if method == "lora" else 1e-3, ppo_epochs=8,
                                      method=method, kl={"loss_coef": 1.0}, **extra))
    trainer = PPOTrainer(loaded, cfg, WordShare("drying"))
    with torch.no_grad():  # the policy drifts away from its reference (for LoRA: through the adapter)
        g = torch.Generator().manual_seed(0)
        for name, p in loaded.model.named_parameters():
            if p.requires_grad and (method == "full" or "lora_B" in name):
                scale = 0.5 * p.abs().mean() if method == "full" else 0.3  # lora_B starts at zero
                p.add_(scale * torch.randn(p.shape, generator=g))
    ro = trainer.rollout(PROMPTS[:16], step=1)
    assert ro.ref_logprobs is not None and ro.ref_logprobs.shape[:2] == ro.logp.shape

    def drift() -> float:
        with torch.no_grad():
            s = score(loaded.model, "seq2seq", ro.batch, temperature=trainer.temperature, full=True)
        return float(masked_mean(full_kl(s.logprobs, ro.ref_logprobs), ro.batch.response_mask))

    ro.advantages, ro.returns = torch.zeros_like(ro.logp), ro.values.clone()  # no reward signal at all
    before = drift()
    stats = trainer.update(ro, step=1)
    assert before > 0.05 and stats["full_kl"] > 0
    # the trend, with a margin: after / before measured over perturbation seeds 0-4 at 1 and 2 threads (AVX512
    # machine, 2026-12-06) was 0.28-0.38 (full) and 0.42-0.51 (lora); other CPUs reduce in another order
    assert drift() < 0.7 * before, (before, drift())


def test_kl_loss_coef_off_keeps_no_distributions(fresh):
    trainer = PPOTrainer(fresh("tiny-t5"), PPOConfig.from_dict(ppo_cfg("tiny-t5")), WordShare("drying"))
    ro = trainer.rollout(PROMPTS[:8], step=1)
    trainer.advantages(ro)
    assert ro.ref_logprobs is None and "full_kl" not in trainer.update(ro, step=1)


def ptx_nll(loaded, pairs) -> float:
    """Mean NLL per target token of (prompt, target) pairs under ``loaded`` (temperature 1)."""
    from llmcycle.alignment.ppo_model import make_batch, score
    from llmcycle.tuning.data import target_ids

    targets = target_ids(loaded.tokenizer, loaded.kind, [t for _, t in pairs])
    b = make_batch(loaded.tokenizer, loaded.kind, [p for p, _ in pairs], targets, 512, "cpu")
    with torch.no_grad():
        return float(-masked_mean(score(loaded.model, loaded.kind, b).logp, b.response_mask))


@pytest.mark.parametrize("name", ["tiny-t5", "tiny-gpt2"])
def test_ptx_holds_the_policy_to_its_fine_tuning_pairs_while_the_reward_pulls_away(name, fresh, tmp_path):
    """The same run with and without ``ptx_coef``: with it, the NLL of the fine-tuning pairs falls (it rises
    or stays without), each policy step logs the supervised loss, and the reward still goes up."""
    pairs = [(p, f"item {i} is a small red box") for i, p in enumerate(PROMPTS)]
    start = ptx_nll(fresh(name), pairs)
    word = most_sampled_word(fresh(name), TEMPERATURE[name])
    cfg = ppo_cfg(name, steps=8, learning_rate=3e-4)
    plain = train_ppo(fresh(name), PROMPTS, WordShare(word), cfg, tmp_path / "plain")
    ptx = train_ppo(fresh(name), PROMPTS, WordShare(word), cfg | {"ptx_coef": 0.2}, tmp_path / "ptx",
                    ptx_data=pairs)
    assert all("ptx_loss" in r for r in ptx.log) and not any("ptx_loss" in r for r in plain.log)
    assert ptx.log[0]["ptx_loss"] == pytest.approx(start, rel=0.05)  # the first mini-batches: the start's NLL
    with_ptx, without = ptx_nll(ptx.loaded, pairs), ptx_nll(plain.loaded, pairs)
    assert with_ptx < start - 0.5 and with_ptx < without - 0.5, (start, with_ptx, without)
    rewards = [r["reward_mean"] for r in ptx.log]
    assert sum(rewards[-4:]) / 4 > rewards[0] + 0.1, rewards


def test_ptx_needs_its_pairs_and_a_run_resumes_only_on_the_same_ones(fresh, tmp_path):
    pairs = [(p, "a summary") for p in PROMPTS[:6]]
    cfg = ppo_cfg("tiny-gpt2", steps=1, batch_size=4, mini_batch_size=4, ppo_epochs=1, ptx_coef=0.5)
    with pytest.raises(ConfigError, match="^ptx_coef: PPO-ptx needs ptx_data"):
        train_ppo(fresh("tiny-gpt2"), PROMPTS, WordShare("a"), cfg, tmp_path)
    with pytest.raises(LLMCycleError, match="ptx_data: row 1 is"):
        train_ppo(fresh("tiny-gpt2"), PROMPTS, WordShare("a"), cfg, tmp_path, ptx_data=[pairs[0], ("only",)])
    with pytest.raises(LLMCycleError, match="non-empty target"):
        train_ppo(fresh("tiny-gpt2"), PROMPTS, WordShare("a"), cfg, tmp_path, ptx_data=[(PROMPTS[0], " ")])
    train_ppo(fresh("tiny-gpt2"), PROMPTS, WordShare("a"), cfg, tmp_path, ptx_data=pairs)
    with pytest.raises(LLMCycleError, match="other ptx_data"):
        train_ppo(fresh("tiny-gpt2"), PROMPTS, WordShare("a"), cfg | {"steps": 2}, tmp_path, ptx_data=pairs[:5])
    assert train_ppo(fresh("tiny-gpt2"), PROMPTS, WordShare("a"), cfg | {"steps": 2}, tmp_path,
                     ptx_data=pairs).steps == 2


def test_gae_matches_a_hand_computed_example():
    rewards = torch.tensor([[1.0, 0.0, 2.0], [0.0, 3.0, 99.0]])
    values = torch.tensor([[0.5, 1.0, 0.0], [1.0, 2.0, 7.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # row 0: A2 = 2; A1 = -1 + 0.72 * 2 = 0.44; A0 = (1 + 0.9 - 0.5) + 0.72 * 0.44 = 1.7168
    # row 1 (last token masked): A1 = 3 - 2 = 1; A0 = (0 + 0.9 * 2 - 1) + 0.72 * 1 = 1.52
    assert torch.allclose(adv, torch.tensor([[1.7168, 0.44, 2.0], [1.52, 1.0, 0.0]]))
    assert torch.allclose(ret, torch.tensor([[2.2168, 1.44, 2.0], [2.52, 3.0, 0.0]]))
    r = token_rewards(torch.tensor([5.0, 7.0]), torch.ones(2, 3), mask, kl_coef=0.5)
    assert torch.allclose(r, torch.tensor([[-0.5, -0.5, 4.5], [-0.5, 6.5, 0.0]]))


def test_whitening_gives_mean_zero_std_one_over_masked_tokens():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 9, generator=g) * 3 + 5
    mask = (torch.arange(9) < torch.tensor([9, 3, 5, 1, 7, 8]).unsqueeze(1)).long()
    w = whiten(x, mask)
    vals = w[mask.bool()]
    assert abs(float(vals.mean())) < 1e-6 and abs(float(vals.std()) - 1.0) < 1e-5
    assert float(w[~mask.bool()].abs().sum()) == 0.0
    assert float(masked_mean(x, mask)) == pytest.approx(float(x[mask.bool()].mean()), rel=1e-6)


def test_clipped_policy_loss_and_running_moments():
    adv = torch.tensor([[1.0, -1.0]])
    mask = torch.ones(1, 2)
    old = torch.zeros(1, 2)
    loss, stats = policy_loss(torch.log(torch.tensor([[1.5, 0.5]])), old, adv, mask, cliprange=0.2)
    # token 0: min(1.5, 1.2) * 1 -> 1.2 (clipped); token 1: max over -(-1 * 0.5), -(-1 * 0.8) -> 0.8 (clipped)
    assert float(loss) == pytest.approx((-1.2 + 0.8) / 2) and stats["clip_frac"] == 1.0
    rm = RunningMoments()
    out = rm.normalize([1.0, 3.0])
    assert out == pytest.approx([-1.0, 1.0]) and rm.count == 2
    rm.normalize([5.0])
    assert rm.mean == pytest.approx(3.0)


def test_prompt_order_is_a_function_of_seed_and_step():
    seen = [i for step in range(1, 5) for i in batch_indices(10, 5, step, seed=3)]
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))
    assert batch_indices(10, 5, 3, seed=3) == batch_indices(10, 5, 3, seed=3) != batch_indices(10, 5, 3, seed=4)
    assert len(batch_indices(3, 8, 1, seed=0)) == 8  # more rollouts than prompts: passes wrap around


# ---- resume -------------------------------------------------------------------------------------


class Kill(Exception):
    pass


def kill_at(step: int):
    def on_step(record):
        if record["step"] == step:
            raise Kill(step)

    return on_step


@pytest.mark.parametrize("name,method", [("tiny-gpt2", "full"), ("tiny-t5", "lora")])
def test_interrupted_run_resumes_to_identical_weights(name, method, fresh, tmp_path):
    cfg = ppo_cfg(name, steps=6, batch_size=8, mini_batch_size=4, save_every=2, method=method,
                  learning_rate=1e-3 if method == "lora" else 3e-5, normalize_rewards=True,
                  kl={"mode": "adaptive", "horizon": 50, "target": 1.0}, lora={"r": 4, "dropout": 0.1})
    word = "simon" if name == "tiny-gpt2" else "drying"
    straight = train_ppo(fresh(name), PROMPTS, WordShare(word), cfg, tmp_path / "a")
    with pytest.raises(Kill):  # killed after step 3: the newest checkpoint is step 2
        train_ppo(fresh(name), PROMPTS, WordShare(word), cfg, tmp_path / "b", on_step=kill_at(3))
    assert (tmp_path / "b" / "checkpoints" / "step-2" / COMPLETE).is_file()
    seen = []
    resumed = train_ppo(fresh(name), PROMPTS, WordShare(word), cfg, tmp_path / "b", on_step=seen.append)
    assert resumed.resumed_from.endswith("step-2") and [r["step"] for r in seen] == [3, 4, 5, 6]
    assert [r["step"] for r in resumed.log] == list(range(1, 7))
    want, got = straight.trainer.trainable_state(), resumed.trainer.trainable_state()
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want), [k for k in want if not torch.equal(want[k], got[k])]
    assert all(torch.equal(a, b) for a, b in zip(straight.trainer.value_head.state_dict().values(),
                                                    resumed.trainer.value_head.state_dict().values()))
    assert straight.kl_coef == resumed.kl_coef != 0.2
    strip = lambda log: [{k: v for k, v in r.items() if k != "seconds"} for r in log]
    assert strip(straight.log) == strip(resumed.log)
    # a finished run started again does nothing and returns the same result
    again = train_ppo(fresh(name), PROMPTS, WordShare(word), cfg, tmp_path / "b", on_step=seen.append)
    assert len(seen) == 4 and again.steps == 6 and strip(again.log) == strip(straight.log)


def test_resume_refuses_another_config_or_other_starting_weights(fresh, tmp_path):
    def chars(prompts, responses):  # a reward that differs between responses, so every step updates
        return [len(r) / 50 for r in responses]

    cfg = ppo_cfg("tiny-gpt2", steps=2, batch_size=4, mini_batch_size=4, ppo_epochs=1)
    loaded = fresh("tiny-gpt2")
    train_ppo(loaded, PROMPTS, chars, cfg, tmp_path)
    with pytest.raises(ConfigError, match="learning_rate"):
        train_ppo(fresh("tiny-gpt2"), PROMPTS, chars, cfg | {"learning_rate": 1e-3}, tmp_path)
    with pytest.raises(LLMCycleError, match="other weights"):  # the trained policy is not the run's reference
        train_ppo(loaded, PROMPTS, chars, cfg | {"steps": 3}, tmp_path)
    with pytest.raises(LLMCycleError, match="other prompts"):
        train_ppo(fresh("tiny-gpt2"), PROMPTS[:8], chars, cfg, tmp_path)
    assert train_ppo(fresh("tiny-gpt2"), PROMPTS, chars, cfg | {"steps": 3}, tmp_path).steps == 3
    # a run written before an option existed (here ptx_coef and kl.eos_coef) resumes while it is at its default
    saved = json.loads((tmp_path / "ppo_config.json").read_text())
    del saved["config"]["ptx_coef"], saved["config"]["kl"]["eos_coef"]
    (tmp_path / "ppo_config.json").write_text(json.dumps(saved))
    assert train_ppo(fresh("tiny-gpt2"), PROMPTS, chars, cfg | {"steps": 4}, tmp_path).steps == 4
    (tmp_path / "ppo_config.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match="^ptx_coef: "):
        train_ppo(fresh("tiny-gpt2"), PROMPTS, chars, cfg | {"steps": 5, "ptx_coef": 0.1}, tmp_path,
                  ptx_data=[("a", "b")])


# ---- monitor, early stop, outputs ------------------------------------------------------------------


def test_monitor_stops_a_degrading_run_and_kl_stop_ends_early(fresh, tmp_path):
    cfg = ppo_cfg("tiny-t5", steps=6, batch_size=8, mini_batch_size=8, ppo_epochs=1, learning_rate=1e-3,
                  monitor={"every": 2, "n_samples": 4, "min_distinct2": 1.0, "max_rouge_drop": 0.0,
                           "action": "stop"})
    refs = ["item number one", "an item", "item two", "three items"]
    result = train_ppo(fresh("tiny-t5"), PROMPTS, WordShare("drying"), cfg, tmp_path / "m",
                       eval_prompts=PROMPTS[:4], eval_references=refs)
    assert result.stopped == "monitor" and result.steps == 2
    base, check = result.monitor[0], result.monitor[1]
    assert base["step"] == 0 and check["step"] == 2 and base["held_out"] is True
    assert {"rouge1", "distinct-1", "distinct-2", "kl"} <= set(check) and base["kl"] == 0.0
    assert any("distinct-2" in w for w in check["warnings"]) and result.log[-1]["monitor"] == check
    saved = json.loads((tmp_path / "m" / "ppo_result.json").read_text())
    assert saved["stopped"] == "monitor" and saved["monitor"][1]["step"] == 2

    cfg = ppo_cfg("tiny-t5", steps=6, batch_size=8, mini_batch_size=8, ppo_epochs=1, learning_rate=1e-3,
                  kl_stop=1e-6)
    result = train_ppo(fresh("tiny-t5"), PROMPTS, WordShare("drying"), cfg, tmp_path / "k")
    assert result.stopped == "kl_stop" and result.steps == 2  # step 1 has KL 0; step 2 exceeds the bound
    assert "policy_loss" in result.log[0] and "policy_loss" not in result.log[1]  # no update on step 2


def test_monitor_rollback_ends_on_the_policy_of_the_last_check_that_passed(fresh, tmp_path, caplog):
    """KL grows as the policy trains: a bound between the KLs of checks 2 and 4 rolls step 4 back to step 2. The
    warning says what it rolled back to: the last check that passed, or the start when none did (issue 25: it said
    "the last check that passed" of a start whose own check had failed)."""
    caplog.set_level(logging.WARNING, logger="llmcycle")
    cfg = ppo_cfg("tiny-t5", steps=4, batch_size=8, mini_batch_size=8, ppo_epochs=1, learning_rate=1e-3,
                  save_every=2, keep_checkpoints=None, monitor={"every": 2, "n_samples": 4, "min_distinct2": 0.0})
    refs = ["item number one", "an item", "item two", "three items"]
    free = train_ppo(fresh("tiny-t5"), PROMPTS, WordShare("drying"), cfg, tmp_path / "free",
                     eval_prompts=PROMPTS[:4], eval_references=refs)
    kl2, kl4 = free.monitor[1]["kl"], free.monitor[2]["kl"]
    assert free.stopped is None and free.rolled_back_to is None and 0 < kl2 < kl4

    bound = {"max_kl": (kl2 + kl4) / 2, "action": "rollback"}
    result = train_ppo(fresh("tiny-t5"), PROMPTS, WordShare("drying"),
                       cfg | {"monitor": cfg["monitor"] | bound}, tmp_path / "rb",
                       eval_prompts=PROMPTS[:4], eval_references=refs)
    assert result.stopped == "monitor" and result.steps == 4 and result.rolled_back_to == 2
    assert result.log[-1]["rolled_back_to"] == 2 and "KL" in result.monitor[2]["warnings"][0]
    assert "monitor, step 4: rolled the policy back to step 2, the last check that passed" in caplog.messages
    at_step2 = torch.load(tmp_path / "free" / "checkpoints" / "step-2" / "policy.pt", weights_only=True)
    at_step4 = torch.load(tmp_path / "free" / "checkpoints" / "step-4" / "policy.pt", weights_only=True)
    final = result.trainer.trainable_state()
    assert all(torch.equal(final[n], t) for n, t in at_step2.items())
    assert not all(torch.equal(final[n], t) for n, t in at_step4.items())
    assert json.loads((tmp_path / "rb" / "ppo_result.json").read_text())["rolled_back_to"] == 2

    # a run that fails its first check falls back on the start: the policy is unchanged
    start = fresh("tiny-t5")
    before = {n: p.detach().clone() for n, p in start.model.named_parameters()}
    worst = {"min_distinct2": 1.0, "max_rouge_drop": 0.0, "action": "rollback"}
    result = train_ppo(start, PROMPTS, WordShare("drying"), cfg | {"monitor": cfg["monitor"] | worst},
                       tmp_path / "zero", eval_prompts=PROMPTS[:4], eval_references=refs)
    assert result.rolled_back_to == 0 and result.steps == 2
    assert all(torch.equal(p, before[n]) for n, p in start.model.named_parameters())
    assert result.monitor[0]["warnings"]  # the start's own check failed too
    said = caplog.messages[-1]
    assert said.startswith("monitor, step 2: rolled the policy back to step 0, the start of the run (no check "
                           "passed; the start's own check warned too: ") and "last check that passed" not in said


def test_value_warmup_trains_only_the_value_head_at_its_own_rate(fresh, tmp_path):
    loaded = fresh("tiny-t5")
    start = {n: p.detach().clone() for n, p in loaded.model.named_parameters()}
    cfg = ppo_cfg("tiny-t5", steps=3, batch_size=8, mini_batch_size=8, ppo_epochs=1, save_every=1,
                  keep_checkpoints=None, value_warmup_steps=2, value_learning_rate=1e-2)
    result = train_ppo(loaded, PROMPTS, WordShare("drying"), cfg, tmp_path)
    assert [r.get("value_warmup", False) for r in result.log] == [True, True, False]
    assert "policy_loss" not in result.log[0] and "policy_loss" in result.log[2]
    assert result.trainer.optimizer.param_groups[1]["lr"] == 1e-2  # the value head's own rate
    for step in (1, 2):  # the policy is untouched by warm-up steps, the value head learns
        policy = torch.load(tmp_path / "checkpoints" / f"step-{step}" / "policy.pt", weights_only=True)
        assert all(torch.equal(t, start[n]) for n, t in policy.items())
        head = torch.load(tmp_path / "checkpoints" / f"step-{step}" / "value_head.pt", weights_only=True)
        assert head["summary.weight"].abs().sum() > 0
    assert result.log[0]["kl_coef"] == result.log[2]["kl_coef"]  # no controller update while warming up
    assert any(not torch.equal(p, start[n]) for n, p in result.trainer.model.named_parameters() if p.requires_grad)


# ---- config ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("data,field", [
    ({"batch_size": 4, "mini_batch_size": 8}, "mini_batch_size"),
    ({"batch_size": 6, "mini_batch_size": 4}, "mini_batch_size"),
    ({"kl": {"mode": "sometimes"}}, "kl.mode"),
    ({"kl": {"estimator": "k2"}}, "kl.estimator"),
    ({"generation": {"min_new_tokens": 9, "max_new_tokens": 4}}, "generation.min_new_tokens"),
    ({"generation": {"do_sample": False, "temperature": 0.5}}, "generation.temperature"),
    ({"generation": {"repetition_penalty": 1.2}}, "generation.repetition_penalty"),  # PPO could not score it
    ({"monitor": {"action": "panic"}}, "monitor.action"),
    ({"steps": 5, "value_warmup_steps": 5}, "value_warmup_steps"),
    ({"dense_rewards": True, "normalize_rewards": True}, "dense_rewards"),
    ({"method": "prompt_tuning"}, "method"),
    ({"cliprange": 0}, "cliprange"),
    ({"stepz": 3}, "stepz"),
])
def test_config_errors_name_the_field(data, field):
    with pytest.raises(ConfigError) as err:
        PPOConfig.from_dict(data, where="align")
    assert str(err.value).startswith(f"align: {field}: "), str(err.value)
