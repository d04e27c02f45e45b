"""Reward sources: label chosen by name, profanity reward direction, callable checks, normaliser, config errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from llmcycle.alignment.rewards import (
    CallableReward,
    ClassifierReward,
    NormalizedReward,
    ProfanityReward,
    RewardConfig,
    RewardNormalizer,
    RewardSource,
    TrainedRewardModel,
    make_reward,
)
from llmcycle.core.errors import ConfigError, LLMCycleError

CLEAN = "The team agreed to move the meeting to Tuesday afternoon."
INSULT = "Shut up, you stupid idiot, nobody cares about your meeting."


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from llmcycle.models.tokenizer import minilm_path

    return AutoTokenizer.from_pretrained(minilm_path())


@pytest.fixture(scope="module")
def tiny_classifier(tokenizer):
    """A 1-layer BERT with random (seeded) weights and labels named like the dynabench hate classifier."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=2,
                        id2label={0: "hate", 1: "nothate"}, label2id={"hate": 0, "nothate": 1})
    torch.manual_seed(0)
    return BertForSequenceClassification(config).eval()


def direct_logits(model, tokenizer, texts):
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**enc).logits


# --- profanity -------------------------------------------------------------------------------------


def test_profanity_reward_prefers_clean_text_and_logit_is_monotone():
    prob = ProfanityReward()
    logit = ProfanityReward("logit")
    texts = [CLEAN, INSULT, "What a damn mess, you moron.", "Thanks for the summary."]
    p, lg = prob([""] * 4, texts), logit([""] * 4, texts)
    assert p[0] > p[1] and lg[0] > lg[1]
    assert all(0 <= x <= 1 for x in p) and all(math.isfinite(x) for x in lg)
    assert np.argsort(p).tolist() == np.argsort(lg).tolist()  # same order: logit is monotone in 1 - p
    for q, x in zip(p, lg):
        if 1e-5 < q < 1 - 1e-5:
            assert x == pytest.approx(math.log(q / (1 - q)), rel=1e-6, abs=1e-6)
    assert isinstance(prob, RewardSource) and prob.name == "profanity-check:one_minus_prob"
    assert prob([], []) == []


def test_profanity_reward_can_score_prompt_with_response():
    only = ProfanityReward()
    both = ProfanityReward(score="prompt_and_response")
    assert both([INSULT], [CLEAN])[0] < only([INSULT], [CLEAN])[0]


# --- classifier, label by name -------------------------------------------------------------------------


def test_classifier_reward_picks_label_by_name(tiny_classifier, tokenizer):
    texts = [CLEAN, INSULT, "short", "another, somewhat longer text about the weather today"]
    logits = direct_logits(tiny_classifier, tokenizer, texts)  # (4, 2)
    probs = torch.softmax(logits, dim=-1)
    pair = (tiny_classifier, tokenizer)
    nothate = ClassifierReward(pair, "nothate", batch_size=3)([""] * 4, texts)
    hate = ClassifierReward(pair, "hate")([""] * 4, texts)
    assert nothate == pytest.approx(logits[:, 1].tolist(), abs=1e-5)
    assert hate == pytest.approx(logits[:, 0].tolist(), abs=1e-5)
    p_nothate = ClassifierReward(pair, "NotHate", output="probability")([""] * 4, texts)  # case-insensitive
    assert p_nothate == pytest.approx(probs[:, 1].tolist(), abs=1e-5)
    assert ClassifierReward(pair, "nothate").name.endswith(":nothate:logit")


def test_classifier_reward_prompt_and_response_scores_the_joined_text(tiny_classifier, tokenizer):
    joined = direct_logits(tiny_classifier, tokenizer, ["Summarise: " + CLEAN])[0, 1]
    reward = ClassifierReward((tiny_classifier, tokenizer), "nothate", score="prompt_and_response")
    got = reward(["Summarise:"], [CLEAN])
    assert got[0] == pytest.approx(float(joined), abs=1e-5)


def test_classifier_reward_unknown_label_lists_labels(tiny_classifier, tokenizer):
    with pytest.raises(LLMCycleError, match=r"label: 'toxic' is not a label.*'hate', 'nothate'"):
        ClassifierReward((tiny_classifier, tokenizer), "toxic")


def test_classifier_reward_from_config_and_directory(tiny_classifier, tokenizer, tmp_path):
    tiny_classifier.save_pretrained(tmp_path / "clf")
    tokenizer.save_pretrained(tmp_path / "clf")
    reward = make_reward({"source": "classifier", "model": str(tmp_path / "clf"), "label": "nothate",
                          "output": "probability", "normalize": False})
    expected = torch.softmax(direct_logits(tiny_classifier, tokenizer, [CLEAN]), -1)[0, 1]
    assert reward([""], [CLEAN]) == pytest.approx([float(expected)], abs=1e-5)
    with pytest.raises(ConfigError, match=r"^reward\.label: 'toxic' is not a label.*'hate', 'nothate'"):
        make_reward({"source": "classifier", "model": str(tmp_path / "clf"), "label": "toxic"})


def test_trained_reward_model_rejects_multi_label_classifier(tiny_classifier, tokenizer):
    with pytest.raises(LLMCycleError, match="has 2 outputs; a reward model has exactly one"):
        TrainedRewardModel((tiny_classifier, tokenizer))


# --- callable ------------------------------------------------------------------------------------


def length_reward(prompts, responses):
    return [float(len(r)) for r in responses]


def test_callable_reward_returns_floats_and_validates():
    reward = CallableReward(length_reward)
    assert reward(["p", "q"], ["ab", "abcd"]) == [2.0, 4.0]
    assert CallableReward(lambda p, r: np.ones(len(r), dtype=np.float32))(["a"], ["b"]) == [1.0]
    with pytest.raises(LLMCycleError, match=r"reward 'short': returned 1 rewards for 2 responses"):
        CallableReward(lambda p, r: [1.0], name="short")(["a", "b"], ["c", "d"])
    with pytest.raises(LLMCycleError, match=r"reward 'nan': item 1 is nan; rewards must be finite"):
        CallableReward(lambda p, r: [0.0, float("nan")], name="nan")(["a", "b"], ["c", "d"])
    with pytest.raises(LLMCycleError, match=r"item 0 is str"):
        CallableReward(lambda p, r: ["1"], name="s")(["a"], ["b"])
    with pytest.raises(LLMCycleError, match=r"prompts: 1 items but responses has 2"):
        reward(["a"], ["b", "c"])
    with pytest.raises(LLMCycleError, match=r"responses: expected a list of strings, got str"):
        reward(["a"], "b")
    with pytest.raises(LLMCycleError, match="fn: expected a callable"):
        CallableReward(3)


def test_callable_reward_from_import_path(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(
        "def polite(prompts, responses):\n    return [1.0 if 'please' in r else 0.0 for r in responses]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reward = make_reward({"source": "callable", "callable": "my_rewards:polite"})
    assert reward(["", ""], ["please sit", "sit"]) == [1.0, 0.0]
    assert reward.name == "my_rewards:polite"


# --- normaliser --------------------------------------------------------------------------------


def test_normalizer_matches_numpy_over_batches_and_round_trips():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=n).tolist() for n in (5, 1, 17, 8)]
    norm = RewardNormalizer()
    seen: list[float] = []
    for batch in batches:
        seen.extend(batch)
        out = norm.normalize(batch)
        assert norm.count == len(seen)
        assert norm.mean == pytest.approx(np.mean(seen), rel=1e-12)
        assert norm.std == pytest.approx(np.std(seen), rel=1e-10)
        assert out == pytest.approx(((np.array(batch) - np.mean(seen)) / np.std(seen)).tolist(), rel=1e-9)
    again = RewardNormalizer()
    again.load_state_dict(norm.state_dict())
    probe = [0.5, 7.0]
    assert again.normalize(probe, update=False) == norm.normalize(probe, update=False)
    assert again.state_dict() == norm.state_dict()
    with pytest.raises(LLMCycleError, match="missing m2"):
        again.load_state_dict({"count": 1, "mean": 0.0, "eps": 1e-8})


def test_normalizer_constant_rewards_map_to_zero():
    norm = RewardNormalizer()
    assert norm.normalize([2.0]) == [0.0]
    assert norm.normalize([2.0, 2.0]) == [0.0, 0.0]


def test_normalize_in_config_wraps_the_source():
    reward = make_reward({"source": "profanity", "normalize": True})
    assert isinstance(reward, NormalizedReward) and reward.name == "profanity-check:one_minus_prob:normalized"
    out = reward(["", ""], [CLEAN, INSULT])
    assert out[0] > 0 > out[1] and reward.normalizer.count == 2


# --- config errors name the field -------------------------------------------------------------------


@pytest.mark.parametrize("data,pattern", [
    ({"source": "classifier", "label": "nothate"}, r"^reward\.model: source 'classifier' needs a model"),
    ({"source": "classifier", "model": "x/y"}, r"^reward\.label: source 'classifier' needs a label"),
    ({"source": "reward_model"}, r"^reward\.model: source 'reward_model' needs a model"),
    ({"source": "callable"}, r"^reward\.callable: source 'callable' needs an import path"),
    ({"source": "callable", "callable": "no_such_module_xyz:f"}, r"^reward\.callable: cannot import module"),
    ({"source": "callable", "callable": "math:no_such_fn"}, r"^reward\.callable: module 'math' has no attribute"),
    ({"source": "callable", "callable": "math:pi"}, r"^reward\.callable: math:pi is a float, not a callable"),
    ({"source": "callable", "callable": "math"}, r"^reward\.callable: expected 'module:function'"),
    ({"source": "profanity", "output": "probability"}, r"^reward\.output: 'probability' does not apply"),
    ({"source": "reward_model", "model": "d", "output": "logit"}, r"^reward\.output: .*leave it unset"),
    ({"source": "humans"}, r"^reward\.source: Input should be 'classifier'"),
    ({"sourse": "profanity"}, r"^reward\.sourse: unknown field"),
    ({"batch_size": 0}, r"^reward\.batch_size: Input should be greater than 0"),
])
def test_config_errors_name_the_field(data, pattern):
    with pytest.raises(ConfigError, match=pattern):
        make_reward(data)


def test_config_errors_use_the_given_section_path():
    with pytest.raises(ConfigError, match=r"^ppo\.reward\.model: source 'classifier' needs a model"):
        make_reward({"source": "classifier", "label": "nothate"}, where="ppo.reward")
    with pytest.raises(ConfigError, match=r"^ppo\.reward\.sourse: unknown field"):
        make_reward({"sourse": "x"}, where="ppo.reward")


def test_missing_model_directory_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"^reward\.model: no such model directory"):
        make_reward({"source": "classifier", "model": str(tmp_path / "nope"), "label": "nothate"})


def test_every_config_field_is_documented():
    for name, info in RewardConfig.model_fields.items():
        assert info.description, name
