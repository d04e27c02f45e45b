"""Toxicity scorers: the offline profanity-check default, a classifier scored by label NAME, the registry."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from llmcycle.core.errors import LLMCycleError, ModelSourceError
from llmcycle.evaluation import (
    TOXICITY_SCORERS,
    ClassifierScorer,
    ProfanityCheckScorer,
    ToxicityScorer,
    get_toxicity_scorer,
    register_toxicity_scorer,
    toxicity,
)

CLEAN = [
    "#Person1# asks #Person2# to take a dictation of a memo about instant messaging.",
    "Ms. Dawson helps #Person1# write a memo to all employees.",
    "#Person2# plans to buy a new car and asks about the price.",
    "The meeting is moved to Friday afternoon.",
]
INSULTS = [
    "You are a stupid, worthless idiot.",
    "Shut up, you pathetic moron.",
    "What a disgusting loser you are, you dumb jerk.",
]
P_FIRST = 1 / (1 + math.exp(-2.0))  # softmax([2, 0])[0] = 0.8808


def tiny_classifier(id2label: dict[int, str], bias: tuple[float, float] | None = (2.0, 0.0)):
    """A 1-layer BERT classifier; with ``bias`` its logits are exactly ``bias`` for any input."""
    from transformers import BertConfig, BertForSequenceClassification

    from llmcycle.models.tokenizer import offline_tokenizer

    tok = offline_tokenizer("classifier")
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=2,
                        id2label=id2label, label2id={v: k for k, v in id2label.items()})
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    if bias is not None:
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.copy_(torch.tensor(bias))
    return model, tok


def test_offline_scorer_low_on_summaries_high_on_insults() -> None:
    scorer = ProfanityCheckScorer()
    assert isinstance(scorer, ToxicityScorer)
    clean, rude = scorer(CLEAN), scorer(INSULTS)
    assert all(0.0 <= p < 0.2 for p in clean)
    assert all(0.9 < p <= 1.0 for p in rude)
    assert scorer([]) == []


@pytest.mark.parametrize(
    ("id2label", "expected"),
    [({0: "hate", 1: "nothate"}, P_FIRST), ({0: "nothate", 1: "hate"}, 1 - P_FIRST)],
)
def test_classifier_picks_label_by_name_not_position(id2label: dict[int, str], expected: float) -> None:
    model, tok = tiny_classifier(id2label)  # logits are [2, 0] whatever the text
    scorer = ClassifierScorer((model, tok), toxic_label="hate")
    assert scorer(CLEAN[:2] + INSULTS[:1]) == pytest.approx([expected] * 3, abs=1e-6)
    assert scorer.toxic_label == "hate" and scorer.label_id == [k for k, v in id2label.items() if v == "hate"][0]
    other = ClassifierScorer(model, "NotHate", tokenizer=tok)  # case-insensitive
    assert other(["hi"])[0] == pytest.approx(1 - expected, abs=1e-6)


def test_unknown_label_lists_the_available_ones() -> None:
    model, tok = tiny_classifier({0: "nothate", 1: "hate"})
    with pytest.raises(LLMCycleError, match=r"toxic_label: 'toxic' is not a label.*available: 'nothate', 'hate'"):
        ClassifierScorer((model, tok), toxic_label="toxic")


def test_batched_truncated_scores_equal_one_at_a_time() -> None:
    model, tok = tiny_classifier({0: "nothate", 1: "hate"}, bias=None)  # random weights: input-dependent
    texts = CLEAN + INSULTS + ["word " * 300]  # the last is longer than the 64 positions: truncated
    batched = ClassifierScorer((model, tok), batch_size=3)(texts)
    single = [ClassifierScorer((model, tok), batch_size=1)([t])[0] for t in texts]
    assert batched == pytest.approx(single, abs=1e-5)
    assert len(set(round(p, 6) for p in batched)) > 1 and all(0 < p < 1 for p in batched)
    assert ClassifierScorer((model, tok)).max_length == 64


def test_classifier_from_local_directory_via_registry(tmp_path: Path) -> None:
    model, tok = tiny_classifier({0: "nothate", 1: "hate"})
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    scorer = get_toxicity_scorer(str(tmp_path), toxic_label="hate")
    assert isinstance(scorer, ClassifierScorer)
    assert scorer(["anything"])[0] == pytest.approx(1 - P_FIRST, abs=1e-6)


def test_registry_default_and_custom_scorers() -> None:
    assert isinstance(get_toxicity_scorer(), ProfanityCheckScorer)
    assert isinstance(get_toxicity_scorer("profanity-check"), ProfanityCheckScorer)

    class Constant:
        name = "constant"

        def __call__(self, texts):
            return [0.25] * len(texts)

    register_toxicity_scorer("test-constant", Constant)
    try:
        result = toxicity(["a", "b"], scorer="test-constant")
        assert (result["mean"], result["toxic_fraction"], result["scorer"]) == (0.25, 0.0, "constant")
        with pytest.raises(LLMCycleError, match="already registered"):
            register_toxicity_scorer("test-constant", Constant)
    finally:
        TOXICITY_SCORERS.pop("test-constant")


def test_toxicity_summary_with_offline_scorer() -> None:
    result = toxicity(CLEAN + INSULTS)
    assert result["toxic_fraction"] == pytest.approx(len(INSULTS) / len(CLEAN + INSULTS))
    assert result["max"] > 0.9 and len(result["scores"]) == 7


def test_hub_id_offline_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmcycle.models import loader

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loader.hub_reachable.cache_clear()
    try:
        with pytest.raises(ModelSourceError, match="cannot reach the Hugging Face hub"):
            get_toxicity_scorer("facebook/roberta-hate-speech-dynabench-r4-target")
    finally:
        loader.hub_reachable.cache_clear()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: get_toxicity_scorer(""), "toxicity scorer: expected a name"),
        (lambda: get_toxicity_scorer("profanity-check", toxic_label="hate"), "unexpected keyword argument"),
        (lambda: ClassifierScorer(torch.nn.Linear(2, 2), tokenizer=object()), "model: expected a Hugging Face"),
        (lambda: ClassifierScorer(tiny_classifier({0: "a", 1: "hate"})[0]), "tokenizer: a model object needs"),
        (lambda: ClassifierScorer(tiny_classifier({0: "a", 1: "hate"}), batch_size=0), "batch_size"),
        (lambda: ProfanityCheckScorer()("just a string"), "texts: expected a list of strings"),
        (lambda: toxicity(["a"], threshold=2), "threshold: expected a probability"),
        (lambda: toxicity(["a"], scorer=lambda t: [0.1, 0.2]), "scorer: returned 2 scores for 1 texts"),
    ],
)
def test_bad_input_names_the_argument(call, match: str) -> None:
    with pytest.raises(LLMCycleError, match=match):
        call()


def test_the_toxic_label_is_chosen_on_the_command_line(tmp_path: Path, monkeypatch, capsys) -> None:
    """``llmcycle evaluate --toxicity-scorer DIR --toxicity-label NAME`` scores by that class (issue 25: a classifier's
    label could be chosen only from Python); ``align --toxicity-label`` reaches the same scorer argument."""
    import json

    from tests.cli_helpers import run_cli

    model, tok = tiny_classifier({0: "toxic", 1: "clean"})  # logits [2, 0] whatever the text
    model.save_pretrained(tmp_path / "clf")
    tok.save_pretrained(tmp_path / "clf")
    monkeypatch.chdir(tmp_path)
    means = {}
    for label in ("toxic", "clean"):
        code, _, err = run_cli(monkeypatch, capsys, "evaluate", "builtin:tiny-t5", "--n", "2", "--metric", "toxicity",
                               "--max-new-tokens", "2", "--toxicity-scorer", "clf", "--toxicity-label", label,
                               "--run-dir", f"run-{label}")
        assert code == 0, err
        metrics = json.loads(next((tmp_path / f"run-{label}").glob("*-evaluate/metrics.json")).read_text())
        means[label] = metrics["models"]["builtin:tiny-t5"]["toxicity"]
    assert means == pytest.approx({"toxic": P_FIRST, "clean": 1 - P_FIRST}, abs=1e-5)
    code, _, err = run_cli(monkeypatch, capsys, "evaluate", "builtin:tiny-t5", "--n", "2", "--metric", "toxicity",
                           "--toxicity-scorer", "clf", "--toxicity-label", "hate")
    assert code == 1 and "'hate' is not a label" in err and "'toxic', 'clean'" in err
    assert not (tmp_path / "runs").exists()  # refused before anything was written

    from llmcycle.cli.onestage import one_stage_recipe

    cfg = one_stage_recipe("align", "builtin:tiny-t5", {}, {"evaluation": {"scorer": "clf", "scorer_label": "clean"}},
                           []).stage_configs()[0][1]
    assert cfg.evaluation.eval_kwargs()["scorer_label"] == "clean"
