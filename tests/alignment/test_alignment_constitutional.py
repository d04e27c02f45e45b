"""Constitutional critique-and-revise: plumbing with a deterministic fake generator, one real run on a tiny model,
the reward filter, and the outputs feeding DPO, fine-tuning and the reward model (issue 6, item 4)."""

from __future__ import annotations

import json

import pytest

from llmcycle.alignment.constitutional import (
    DEFAULT_PRINCIPLES,
    ConstitutionalConfig,
    load_constitutional,
    pick_principle,
    run_constitutional,
)
from llmcycle.alignment.reward_model import PreferencePair, as_pairs
from llmcycle.alignment.rewards import ProfanityReward
from llmcycle.core.errors import ConfigError, DataError, LLMCycleError

PROMPTS = ["summarize: tom books the hotel room", "summarize: mary cancels the train tickets",
           "summarize: the manager reviews the project plan", "summarize: jack changes the rental car",
           "summarize: linda asks about the monthly budget", "summarize: steven explains the dentist appointment"]



class FakeModel:
    """A deterministic stand-in for a model: answers rudely to every second prompt, critiques an answer with an
    insult, and revises by dropping the insult. Records every text it receives."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> list[str]:
        self.calls.append(list(texts))
        return [self._one(t) for t in texts]

    @staticmethod
    def _one(text: str) -> str:
        if text.endswith("Revision:"):
            response = text.split("\n\nAssistant: ", 1)[1].split("\n\nCritique request:", 1)[0]
            return response.replace(", you stupid idiot", "")
        if text.endswith("Critique:"):
            response = text.split("\n\nAssistant: ", 1)[1].split("\n\nCritique request:", 1)[0]
            return "The response insults the reader." if "idiot" in response else "No problems found."
        summary = text.removeprefix("summarize: ")
        return f"{summary}, you stupid idiot." if len(summary) % 2 else f"{summary}."


def test_fake_generator_plumbing_records_and_templates(tmp_path):
    fake = FakeModel()
    result = run_constitutional(fake, PROMPTS, {}, tmp_path / "cai.jsonl")
    assert len(fake.calls) == 3 and all(len(c) == len(PROMPTS) for c in fake.calls)  # answer, critique, revise
    assert fake.calls[0] == PROMPTS  # response_template "{prompt}"
    names = [p.name for p in DEFAULT_PRINCIPLES]
    for i, rec in enumerate(result.records):
        principle = DEFAULT_PRINCIPLES[i % 3]  # round robin
        assert rec.index == i and rec.prompt == PROMPTS[i] and rec.principle == principle.name
        critique_text, revision_text = fake.calls[1][i], fake.calls[2][i]
        assert critique_text == (f"Human: {PROMPTS[i]}\n\nAssistant: {rec.initial_response}\n\nCritique request: "
                                 f"{principle.critique_request}\n\nCritique:")
        assert revision_text.startswith(critique_text[:-len("Critique:")])
        assert f"Critique: {rec.critique}\n\nRevision request: {principle.revision_request}\n\nRevision:" \
            in revision_text
        assert "idiot" not in rec.revision and rec.principle in names
        assert [(r.principle, r.critique, r.revision) for r in rec.rounds] == [(rec.principle, rec.critique,
                                                                                rec.revision)]
    rude = [r for r in result.records if "idiot" in r.initial_response]
    assert 0 < len(rude) < len(PROMPTS)
    assert all(r.critique == "The response insults the reader." for r in rude)
    # no reward: every non-empty revision is kept; pairs only where the revision changed something
    assert len(result.kept) == len(PROMPTS)
    assert result.to_sft_rows() == [{"input": r.prompt, "references": [r.revision]} for r in result.records]
    assert result.to_preference_pairs() == [PreferencePair(r.prompt, r.revision, r.initial_response) for r in rude]
    lines = (tmp_path / "cai.jsonl").read_text().splitlines()
    assert len(lines) == len(PROMPTS)
    first = json.loads(lines[0])
    assert {"prompt", "initial_response", "principle", "critique", "revision", "rounds", "kept"} <= set(first)
    back = load_constitutional(tmp_path / "cai.jsonl")
    assert [r.to_dict() for r in back.records] == [r.to_dict() for r in result.records]
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left no temporary file


def test_reward_filter_keeps_only_improved_revisions(tmp_path):
    result = run_constitutional(FakeModel(), PROMPTS, {}, reward=ProfanityReward())
    rude = {r.index for r in result.records if "idiot" in r.initial_response}
    assert {r.index for r in result.kept} == rude
    for r in result.records:
        assert r.reward_initial is not None and r.reward_revision is not None
        assert r.kept == (r.reward_revision > r.reward_initial)
    assert all(p.chosen != p.rejected for p in result.to_preference_pairs())
    assert len(result.to_sft_rows()) == len(rude)
    summary = result.summary()
    assert summary["kept"] == len(rude) and summary["reward_revision_mean"] > summary["reward_initial_mean"]
    # the same filter from the config; a threshold above any gain keeps nothing
    by_config = run_constitutional(FakeModel(), PROMPTS, {"reward": {"source": "profanity"}})
    assert [r.kept for r in by_config.records] == [r.kept for r in result.records]
    strict = run_constitutional(FakeModel(), PROMPTS, {"reward": {"source": "profanity"}, "min_improvement": 1.0})
    assert strict.kept == [] and strict.to_preference_pairs() == []


def test_principle_selection_rounds_and_custom_templates():
    cfg = ConstitutionalConfig(selection="random", seed=5)
    picks = [pick_principle(cfg, i, 0).name for i in range(30)]
    assert picks == [pick_principle(ConstitutionalConfig(selection="random", seed=5), i, 0).name for i in range(30)]
    assert len(set(picks)) == 3
    assert picks != [pick_principle(ConstitutionalConfig(selection="random", seed=6), i, 0).name for i in range(30)]

    seen: list[str] = []

    def echo(texts: list[str]) -> list[str]:
        seen.extend(texts)
        return [t.upper() if t.startswith("REVISE") else t[:40] for t in texts]

    custom = {"rounds": 2, "response_template": "Q: {prompt}", "critique_template": "CRITIQUE {principle}: {response}",
              "revision_template": "REVISE {response} | {critique} | {revision_request}"}
    result = run_constitutional(echo, PROMPTS[:2], custom)
    rec = result.records[0]
    assert [r.principle for r in rec.rounds] == ["harmless", "not_insulting"]
    assert rec.principle == "not_insulting" and rec.revision == rec.rounds[1].revision
    assert f"CRITIQUE not_insulting: {rec.rounds[0].revision}" in seen  # round 2 critiques round 1's revision
    assert len(seen) == 2 * (1 + 2 * 2)


@pytest.mark.parametrize("fields, where", [
    ({"principles": []}, "principles"),
    ({"principles": [{"name": "x", "critique_request": "c"}]}, "principles.0.revision_request"),
    ({"critique_template": "{prompt} {answer}"}, "critique_template"),
    ({"revision_template": "{prompt} {critique}"}, "revision_template"),
    ({"response_template": "no placeholder"}, "response_template"),
    ({"selection": "first"}, "selection"),
    ({"rounds": 0}, "rounds"),
    ({"generation": {"do_sample": True, "num_return_sequences": 2}}, "generation"),
    ({"reward": {"source": "classifier"}}, "reward.model"),
    ({"temperature": 0.7}, "temperature"),
])
def test_config_errors_name_the_field(fields, where, tmp_path):
    with pytest.raises(ConfigError, match=rf"constitutional: {where}:|constitutional\.{where}:"):
        run_constitutional(FakeModel(), PROMPTS, fields, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_bad_prompts_and_generators_are_errors(tmp_path):
    with pytest.raises(DataError, match=r"prompts\[1\]: expected a non-empty string"):
        run_constitutional(FakeModel(), ["ok", "  "], None, tmp_path / "out.jsonl")
    with pytest.raises(DataError, match="prompts: is empty"):
        run_constitutional(FakeModel(), [], None)
    with pytest.raises(DataError, match="generator: returned list for 2 texts"):
        run_constitutional(lambda texts: ["only one"], ["a", "b"], None, tmp_path / "out.jsonl")
    with pytest.raises(DataError, match="generator: output 0 is int"):
        run_constitutional(lambda texts: [1 for _ in texts], ["a"], None)
    with pytest.raises(LLMCycleError, match="model: expected a LoadedModel or a callable"):
        run_constitutional("builtin:tiny-gpt2", ["a"], None)
    with pytest.raises(ConfigError, match="chat: 'always'"):
        run_constitutional(FakeModel(), ["a"], {"chat": "always"})
    assert not (tmp_path / "out.jsonl").exists()
    (tmp_path / "bad.jsonl").write_text('{"prompt": "p"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:1: not a constitutional record"):
        load_constitutional(tmp_path / "bad.jsonl")


def test_real_run_on_tiny_gpt2_and_outputs_feed_dpo_tuning_and_reward_model(tmp_path):
    from llmcycle.alignment.dpo import train_dpo
    from llmcycle.alignment.reward_model import train_reward_model
    from llmcycle.models import load_model
    from llmcycle.tuning import train

    loaded = load_model("builtin:tiny-gpt2")
    cfg = {"generation": {"max_new_tokens": 8, "do_sample": True, "seed": 1}, "batch_size": 4}
    result = run_constitutional(loaded, PROMPTS[:4], cfg, tmp_path / "cai.jsonl")
    assert len(result.records) == 4
    for i, rec in enumerate(result.records):
        assert rec.prompt == PROMPTS[i] and rec.principle == DEFAULT_PRINCIPLES[i % 3].name
        assert all(isinstance(x, str) for x in (rec.initial_response, rec.critique, rec.revision))
        assert rec.revision.strip() and rec.initial_response.strip()  # 8 sampled tokens are never all special
    assert len((tmp_path / "cai.jsonl").read_text().splitlines()) == 4
    again = run_constitutional(loaded, PROMPTS[:4], cfg)
    assert [r.to_dict() for r in again.records] == [r.to_dict() for r in result.records]  # seeded

    pairs = result.to_preference_pairs()
    assert len(pairs) == 4 and as_pairs(pairs) == pairs
    dpo = train_dpo(load_model("builtin:tiny-gpt2"), pairs, {"method": "lora", "max_steps": 2, "batch_size": 2},
                    tmp_path / "dpo")
    assert len(dpo.log) == 2
    tuned = train(load_model("builtin:tiny-gpt2"), (result.to_sft_rows(), None),
                  {"method": "lora", "max_steps": 2, "batch_size": 2, "save_every": 100}, tmp_path / "sft")
    assert tuned.steps == 2
    rm = train_reward_model(pairs, {"epochs": 1, "batch_size": 2, "eval_fraction": 0.0, "max_length": 32},
                            tmp_path / "rm")
    assert rm.n_train == 4


def test_chat_template_wraps_each_text_as_a_user_turn(monkeypatch):
    from llmcycle.models import load_model

    loaded = load_model("builtin:tiny-gpt2")
    loaded.tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>"
                                      "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}")
    seen: list[str] = []

    def fake_generate(model, texts, settings, **kwargs):
        seen.extend(texts)
        return ["fine." for _ in texts]

    import llmcycle.alignment.constitutional as constitutional

    monkeypatch.setattr(constitutional, "generate", fake_generate)  # where it is used
    run_constitutional(loaded, ["hello"], {"system": "Be kind."})
    assert seen[0] == "<system>Be kind.</system><user>hello</user><assistant>"
    assert seen[1].startswith("<system>Be kind.</system><user>Human: hello\n\nAssistant: fine.")
    assert len(seen) == 3
    seen.clear()
    run_constitutional(loaded, ["hello"], {"chat": "never"})
    assert seen[0] == "hello"
