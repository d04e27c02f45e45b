"""Fixtures for the prompt tests: the offline tokenizer, DialogSum-like rows, a registry snapshot."""

from __future__ import annotations

import pytest

DIALOGUES = [
    ("#Person1#: I'd like to book a table for four at eight tonight.\n#Person2#: Certainly. Indoors or on the "
     "terrace?\n#Person1#: The terrace, please.", "#Person1# books a table for four on the terrace at eight.",
     "restaurant booking"),
    ("#Person1#: The forecast says heavy rain all weekend.\n#Person2#: Then let's move the picnic to next "
     "Saturday.", "#Person1# and #Person2# postpone their picnic because of rain.", "weather"),
    ("#Person1#: My car makes a grinding noise when I brake.\n#Person2#: The pads are worn. We can replace them "
     "today.", "#Person2# will replace #Person1#'s worn brake pads.", "car repair"),
    ("#Person1#: Why do you want to work here?\n#Person2#: I admire your design team and I want to learn from "
     "them.", "#Person2# explains why they want the job.", "job interview"),
    ("#Person1#: Can I reserve a table for two at seven?\n#Person2#: Yes, under what name?\n#Person1#: Lee.",
     "#Person1# reserves a table for two at seven under Lee.", "restaurant booking"),
    ("#Person1#: Our flight is delayed by three hours.\n#Person2#: Let's get lunch while we wait.",
     "#Person1# and #Person2# have lunch during a flight delay.", "travel"),
]


def make_row(dialogue: str, summary: str, topic: str) -> dict:
    """A row as ``load_data`` returns it: original columns plus ``input`` and ``references``."""
    return {"dialogue": dialogue, "summary": summary, "topic": topic, "input": dialogue, "references": [summary]}


@pytest.fixture(scope="session")
def tok():
    from llmcycle.models.tokenizer import offline_tokenizer

    return offline_tokenizer()


@pytest.fixture()
def pool() -> list[dict]:
    return [make_row(*d) for d in DIALOGUES]


@pytest.fixture()
def row() -> dict:
    return make_row("#Person1#: Is the museum open on Mondays?\n#Person2#: No, it closes on Mondays.",
                    "The museum is closed on Mondays.", "museum")


@pytest.fixture()
def registry():
    """The live registry, restored after the test (tests may register templates)."""
    from llmcycle.prompts import TEMPLATES

    saved = dict(TEMPLATES)
    yield TEMPLATES
    TEMPLATES.clear()
    TEMPLATES.update(saved)


@pytest.fixture(name="make_row")
def make_row_fixture():
    """``make_row(dialogue, summary, topic)``."""
    return make_row
