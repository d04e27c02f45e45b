"""Reward model: rankings expand to pairs; trained on cleaner-vs-insulting pairs it ranks held-out pairs (issue 6)."""

from __future__ import annotations

import itertools
import json
import random

import pytest
import torch

from llmcycle.alignment.reward_model import (
    RESULT_FILE,
    PreferencePair,
    RewardModelConfig,
    as_pairs,
    expand_rankings,
    pairwise_accuracy,
    split_pairs,
    train_reward_model,
)
from llmcycle.alignment.rewards import CallableReward, TrainedRewardModel, make_reward
from llmcycle.core.errors import ConfigError, DataError, LLMCycleError

# Neutral DialogSum-like summaries: training and held-out sentences share no subject, action or object.
TRAIN_PEOPLE = ["Tom", "Mary", "The manager", "Jack", "The customer", "Linda"]
TRAIN_ACTIONS = ["asks about", "books", "explains", "cancels", "reviews"]
TRAIN_OBJECTS = ["the hotel room", "the train tickets", "the project plan", "a dentist appointment",
                 "the monthly budget"]
HELD_PEOPLE = ["Professor Lee", "The receptionist", "Steven", "Grandma"]
HELD_ACTIONS = ["describes", "changes", "discusses"]
HELD_OBJECTS = ["the rental car", "her new apartment", "the weekend trip", "the library card"]
INSULTS = ["you stupid idiot", "what a damn moron", "shut up, loser", "you worthless jerk", "this is crap",
           "you dumb fool", "go to hell", "what an asshole"]
NEUTRAL = ["as they agreed", "after a short break", "by next Friday", "with some help", "early in the morning",
           "without any delay", "as planned", "just in case"]


def sentences(people, actions, objects):
    return [f"{p} {a} {o}." for p, a, o in itertools.product(people, actions, objects)]


def train_pairs(n: int = 150, seed: int = 0) -> list[PreferencePair]:
    """Chosen: a clean summary; rejected: the same summary with an insult appended."""
    rng = random.Random(seed)
    texts = rng.sample(sentences(TRAIN_PEOPLE, TRAIN_ACTIONS, TRAIN_OBJECTS), n)
    return [PreferencePair("", t, f"{t[:-1]}, {rng.choice(INSULTS)}.") for t in texts]


def held_out_pairs(seed: int = 1) -> list[PreferencePair]:
    """Different sentences; the insult goes first or in the middle (never at the end, as in training), and the
    chosen text gets a neutral phrase in the same place, so that length does not give the answer away."""
    rng = random.Random(seed)
    out = []
    for i, t in enumerate(sentences(HELD_PEOPLE, HELD_ACTIONS, HELD_OBJECTS)):
        insult, neutral = rng.choice(INSULTS), rng.choice(NEUTRAL)
        if i % 2:
            words = t.split()
            good, bad = (" ".join(words[:2] + [f"({x})"] + words[2:]) for x in (neutral, insult))
        else:
            good, bad = (f"{x[0].upper()}{x[1:]}: {t}" for x in (neutral, insult))
        out.append(PreferencePair("", good, bad))
    return out



def test_expand_rankings_gives_all_pairs_best_first():
    pairs = expand_rankings(["q"], [["a", "b", "c", "d"]])
    assert [(p.chosen, p.rejected) for p in pairs] == [("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"),
                                                       ("b", "d"), ("c", "d")]
    assert all(p.prompt == "q" for p in pairs)
    two = expand_rankings(["p1", "p2"], [["x", "y"], ["u", "v", "w"]])
    assert len(two) == 1 + 3 and two[0] == PreferencePair("p1", "x", "y")
    assert len(expand_rankings(["p"], [["same", "same", "other"]])) == 2  # identical texts: no preference


def test_expand_rankings_errors_name_the_row():
    with pytest.raises(DataError, match=r"ranked_completions\[1\]: expected a list of at least 2"):
        expand_rankings(["a", "b"], [["x", "y"], ["z"]])
    with pytest.raises(DataError, match=r"ranked_completions\[0\]\[1\]: expected a string"):
        expand_rankings(["a"], [["x", 3]])
    with pytest.raises(Exception, match="prompts: 1 items but responses has 2"):
        expand_rankings(["a"], [["x", "y"], ["z", "w"]])


def test_as_pairs_accepts_mappings_and_tuples_and_names_bad_rows():
    pairs = as_pairs([{"prompt": "p", "chosen": "a", "rejected": "b"}, {"chosen": "c", "rejected": "d"},
                      ("q", "e", "f")])
    assert pairs == [PreferencePair("p", "a", "b"), PreferencePair("", "c", "d"), PreferencePair("q", "e", "f")]
    with pytest.raises(DataError, match=r"pairs\[1\]: missing 'rejected'"):
        as_pairs([{"chosen": "a", "rejected": "b"}, {"chosen": "a"}])
    with pytest.raises(DataError, match=r"pairs\[0\]\.chosen: expected a string, got int"):
        as_pairs([("p", 1, "b")])


def test_split_pairs_keeps_prompt_groups_together():
    pairs = expand_rankings([f"p{i}" for i in range(10)], [["a", "b", "c"]] * 10)  # 30 pairs, 10 groups
    train, held = split_pairs(pairs, 0.2, seed=0)
    assert len(train) + len(held) == 30 and len(held) == 6
    assert not {p.prompt for p in train} & {p.prompt for p in held}
    assert split_pairs(pairs, 0.0, seed=0) == (pairs, [])


def test_pairwise_accuracy_counts_ties_as_half():
    pairs = [PreferencePair("", "aaa", "a"), PreferencePair("", "b", "bbbb"), PreferencePair("", "cc", "dd")]
    by_length = CallableReward(lambda p, r: [len(x) for x in r])
    assert pairwise_accuracy(by_length, pairs) == pytest.approx(1.5 / 3)


def test_reward_model_config_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"reward_model: eval_fraction: Input should be less than 1"):
        train_reward_model(train_pairs(4), {"eval_fraction": 1.0}, tmp_path / "rm")
    with pytest.raises(ConfigError, match=r"reward_model: epoch: unknown field"):
        train_reward_model(train_pairs(4), {"epoch": 1}, tmp_path / "rm")
    with pytest.raises(DataError, match=r"pairs: 1 pair\(s\)"):
        train_reward_model(train_pairs(1), {}, tmp_path / "rm")
    assert not (tmp_path / "rm").exists()
    for name, info in RewardModelConfig.model_fields.items():
        assert info.description, name


def tiny_bert(tokenizer, num_labels: int = 1):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=num_labels)
    return BertForSequenceClassification(config)


def test_training_is_seeded_and_replaces_the_folder_atomically(tmp_path, one_thread):
    from transformers import AutoTokenizer

    from llmcycle.models.tokenizer import minilm_path

    tok = AutoTokenizer.from_pretrained(minilm_path())
    cfg = {"epochs": 2, "batch_size": 4, "max_length": 24, "learning_rate": 1e-3, "device": "cpu", "seed": 3}
    pairs = train_pairs(12)
    first = train_reward_model(pairs, cfg, tmp_path / "rm", model=(tiny_bert(tok), tok))
    second = train_reward_model(pairs, cfg, tmp_path / "rm", model=(tiny_bert(tok), tok))
    assert first.losses == second.losses and len(first.losses) == 2 * 3  # 11 train pairs (1 held out), batches of 4
    assert (first.n_train, first.n_eval) == (11, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rm"]  # no .rm.tmp / .rm.old left behind
    files = {p.name for p in (tmp_path / "rm").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", RESULT_FILE} <= files
    with pytest.raises(LLMCycleError, match="expected a one-output sequence classifier, got num_labels=2"):
        train_reward_model(pairs, cfg, tmp_path / "rm2", model=(tiny_bert(tok, num_labels=2), tok))
    assert not (tmp_path / "rm2").exists()


def test_reward_model_ranks_cleaner_text_higher_on_held_out_pairs(tmp_path, one_thread):
    """The issue's requirement: trained on (clean, insulting) pairs, >= 90% of held-out pairs ranked right."""
    train, held = train_pairs(150), held_out_pairs()
    assert len(held) == 48 and not {p.chosen for p in train} & {p.chosen for p in held}
    shorter_wins = CallableReward(lambda p, r: [-len(x) for x in r])
    assert pairwise_accuracy(shorter_wins, train) == 1 and pairwise_accuracy(shorter_wins, held) < 0.7
    cfg = {"epochs": 1, "batch_size": 16, "learning_rate": 1e-4, "max_length": 32, "eval_fraction": 0.1,
           "seed": 0, "device": "cpu", "margin": 0.5}
    result = train_reward_model(train, cfg, tmp_path / "rm")

    assert result.n_train + result.n_eval == 150 and result.n_eval == 15
    assert result.eval_accuracy is not None and result.eval_accuracy >= 0.9
    assert sum(result.losses[-3:]) / 3 < result.losses[0]  # it learned
    saved = json.loads((tmp_path / "rm" / RESULT_FILE).read_text())
    assert saved["config"]["max_length"] == 32 and saved["eval_accuracy"] == result.eval_accuracy
    assert len(saved["losses"]) == len(result.losses) == -(-135 // 16)
    assert not list(tmp_path.glob(".rm.*"))  # temp folder renamed away

    reward = TrainedRewardModel(tmp_path / "rm")  # loaded back, as PPO would via make_reward
    assert reward.score == "prompt_and_response" and reward.max_length == 32
    accuracy = pairwise_accuracy(reward, held)
    assert accuracy >= 0.9, f"held-out pair accuracy {accuracy:.3f}"
    from_config = make_reward({"source": "reward_model", "model": str(tmp_path / "rm")})
    assert from_config([""], [held[0].chosen]) == pytest.approx(reward([""], [held[0].chosen]), abs=1e-5)
