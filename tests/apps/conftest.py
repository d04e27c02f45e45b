"""Fixtures for the application tests: a constructed corpus and its index (built once), a scripted LLM."""

from __future__ import annotations

import pytest

# Eight documents on unrelated topics; each query below is answered by exactly one of them, in other words.
DOCS = {
    "vacuum": "The Vortex 500 vacuum cleaner has a two-year warranty on its motor. A faulty unit is collected by the "
              "manufacturer's service team and repaired within two weeks, or replaced when it cannot be repaired.",
    "bread": "Sourdough bread needs flour, water, salt and a lively starter. Knead the dough, let it rise overnight "
             "and bake it in a very hot oven with steam for a crisp crust.",
    "rocket": "A rocket engine burns fuel with an oxidiser and pushes hot gas out of a nozzle; the thrust lifts "
              "satellites into orbit around the Earth.",
    "cats": "Cats are small furry animals that purr when they are content, sleep most of the day and chase mice.",
    "tax": "Income tax returns are due by the end of January; late filing brings a penalty of one hundred pounds.",
    "volcano": "A volcano erupts when molten rock, called magma, rises through the crust and escapes as lava and "
               "ash.",
    "chess": "In chess the king can move one square in any direction, and castling moves the king two squares "
             "towards a rook.",
    "coffee": "Espresso is made by forcing hot water through finely ground coffee beans at high pressure.",
}
QUERIES = {
    "my vacuum's motor broke, is it covered by the guarantee?": "vacuum",
    "how do I bake a loaf with a starter?": "bread",
    "what pushes satellites up into space?": "rocket",
    "why does my kitten purr?": "cats",
    "when must I file my income tax and what if I'm late?": "tax",
    "where does lava come from?": "volcano",
    "how does the king move in chess?": "chess",
    "how is an espresso brewed?": "coffee",
}


@pytest.fixture(scope="session")
def documents():
    from llmcycle.apps.corpus import Document

    return [Document(k, v, "constructed") for k, v in DOCS.items()]


@pytest.fixture(scope="session")
def index(documents):
    """The constructed corpus in 16-token chunks (4 overlapping): every document spans several chunks."""
    from llmcycle.apps.retrieval import IndexConfig, RetrievalIndex

    return RetrievalIndex.build(documents, IndexConfig(chunk_tokens=16, chunk_overlap=4))


class ScriptedLLM:
    """An LLM that answers from a script (a list of texts, or a function of the prompt) and records every call."""

    name = "scripted"
    chat = False

    def __init__(self, script, max_input_tokens: int = 512):
        from transformers import AutoTokenizer

        from llmcycle.models.tokenizer import minilm_path

        self.tokenizer = AutoTokenizer.from_pretrained(minilm_path())
        self.tokenizer.model_max_length = 10**9
        self.script = script if callable(script) else list(script)
        self.limit = max_input_tokens
        self.calls: list[tuple[list[str], object]] = []

    def max_input_tokens(self, settings):
        return self.limit

    def complete(self, prompts, settings):
        from llmcycle.apps.llm import Completion

        self.calls.append((list(prompts), settings))
        out = []
        for p in prompts:
            n = settings.num_return_sequences
            texts = [self.script(p) if callable(self.script) else self.script.pop(0) for _ in range(n)]
            out.append([Completion(t, "stop") for t in texts])
        return out


@pytest.fixture
def scripted():
    return ScriptedLLM
