"""Templates: the builtins render, fields resolve by one rule, YAML user templates load, bad ones fail clearly."""

from __future__ import annotations

import pytest

from llmcycle.core.errors import LLMCycleError
from llmcycle.prompts import (
    TEMPLATES,
    PromptError,
    PromptTemplate,
    get_template,
    list_templates,
    load_templates,
    register_template,
)

INSTRUCTION = "Summarize the following conversation.\n\n{dialogue}\n\nSummary:"


def test_every_summarization_template_renders_a_dialogsum_row(row) -> None:
    summarization = list_templates("summarization")
    assert {"none", "instruction", "flan", "flan-briefly", "flan-short"} <= {t.name for t in summarization}
    for template in summarization:
        text = template.render(row)
        assert row["dialogue"] in text and "{" not in text, template.name
        shot = template.render_shot(row)
        assert shot.startswith(text) and shot.rstrip().endswith(row["summary"]), template.name


def test_instruction_and_flan_render_exactly(row) -> None:
    assert get_template("instruction").text == INSTRUCTION
    assert get_template("instruction").render(row) == INSTRUCTION.replace("{dialogue}", row["dialogue"])
    assert get_template("flan").render(row) == f"Dialogue:\n\n{row['dialogue']}\n\nWhat was going on?"
    assert get_template("none").render(row) == row["dialogue"]
    assert get_template("flan-briefly").render(row) == f"{row['dialogue']}\n\nBriefly summarize that dialogue."
    assert get_template("flan-short").render(row) == f"Here is a dialogue:\n{row['dialogue']}\n\nWrite a short summary!"


def test_registry_is_not_summarisation_only(row) -> None:
    tasks = {t.task for t in TEMPLATES.values()}
    assert {"summarization", "question-answering", "classification"} <= tasks
    qa = get_template("qa").render_shot({"context": "Paris is in France.", "question": "Where is Paris?",
                                         "answer": "France"})
    assert qa.endswith("Question: Where is Paris?\n\nAnswer: France")
    assert get_template("qa").input_field == "context"
    assert get_template("topic").render_shot(row).endswith("\nmuseum")


def test_field_resolution_row_column_first_then_aliases() -> None:
    template = PromptTemplate("t", "{dialogue} | {text} | {input} => {summary} / {target}")
    only_normalised = {"input": "IN", "references": ["REF1", "REF2"]}
    assert template.render(only_normalised) == "IN | IN | IN => REF1 / REF1"
    with_columns = {"input": "IN", "dialogue": "DLG", "summary": "SUM", "references": ["REF1"]}
    assert template.render(with_columns) == "DLG | IN | IN => SUM / REF1"


def test_missing_field_names_field_template_and_available_fields(row) -> None:
    template = PromptTemplate("needs-speaker", "{speaker} said: {dialogue}")
    with pytest.raises(PromptError) as err:
        template.render(row)
    msg = str(err.value)
    assert "'speaker'" in msg and "'needs-speaker'" in msg and "available fields:" in msg and "topic" in msg


def test_list_valued_field_is_an_error_not_a_python_repr() -> None:
    with pytest.raises(PromptError, match="field 'references' holds a list"):
        PromptTemplate("refs", "{references}").render({"input": "x", "references": ["a"]})


def test_literal_braces_survive(row) -> None:
    template = PromptTemplate("json", 'Return {{"summary": ...}} for:\n{dialogue}')
    assert template.render(row).startswith('Return {"summary": ...} for:\n#Person1#')


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": "broken", "text": "Summarize {dialogue"}, r"template 'broken': text: bad placeholder syntax"),
        ({"name": "stray", "text": "Summarize } {dialogue}"}, r"template 'stray': text: bad placeholder syntax"),
        ({"name": "positional", "text": "Summarize {0}"}, r"template 'positional': text: positional placeholder \{0\}"),
        ({"name": "anon", "text": "Summarize {}"}, r"template 'anon': text: positional placeholder \{\}"),
        ({"name": "attr", "text": "{row.dialogue}"}, r"template 'attr': text: placeholder \{row.dialogue\} is not"),
        ({"name": "spec", "text": "{dialogue:>10}"}, r"template 'spec': text: placeholder \{dialogue:>10\} has a"),
        ({"name": "empty", "text": "   "}, r"template 'empty': text is empty"),
        ({"name": "static", "text": "Summarize the conversation."}, r"template 'static': text has no \{field\}"),
        ({"name": "bad name!", "text": "{dialogue}"}, r"template name 'bad name!' is not valid"),
        ({"name": "t", "text": "{dialogue}", "target": "  "}, r"template 't': target must be non-empty"),
        ({"name": "t", "text": "{dialogue}", "target": " done"}, r"template 't': target has no \{field\}"),
        ({"name": "t", "text": "{dialogue}", "input_field": "context"}, r"input_field 'context' is not a placeholder"),
    ],
)
def test_malformed_templates_are_clear_errors(fields, expected) -> None:
    with pytest.raises(PromptError, match=expected):
        PromptTemplate(**fields)


def test_get_unknown_template_lists_valid_names() -> None:
    with pytest.raises(PromptError, match=r"unknown prompt template 'instructions'; valid: .*instruction"):
        get_template("instructions")


def test_register_and_duplicate(registry, row) -> None:
    made = register_template(name="polite", text="Please summarise:\n{dialogue}\nSummary:")
    assert get_template("polite") is made and made.target == " {summary}"  # default target for summarization
    with pytest.raises(PromptError, match="'polite' is already registered"):
        register_template(PromptTemplate("polite", "{dialogue}"))
    with pytest.raises(PromptError, match="'instruction' is already registered"):
        register_template(name="instruction", text="{dialogue}")
    register_template(PromptTemplate("polite", "Kindly: {dialogue}"), replace=True)
    assert get_template("polite").render(row).startswith("Kindly: ")
    with pytest.raises(PromptError, match="register_template: missing 'text'"):
        register_template(name="no-text")


def test_yaml_user_templates_load_and_register(tmp_path, registry, row) -> None:
    path = tmp_path / "templates.yaml"
    path.write_text(
        "- name: polite\n"
        "  text: \"Please summarise this chat.\\n\\n{dialogue}\\n\\nSummary:\"\n"
        "  description: A politer ask.\n"
        "- name: topic-guess\n"
        "  text: \"{dialogue}\\nTopic:\"\n"
        "  target: \" {topic}\"\n"
        "  task: classification\n",
        encoding="utf-8",
    )
    loaded = load_templates(path)
    assert [t.name for t in loaded] == ["polite", "topic-guess"] and "polite" not in registry
    load_templates(path, register=True)
    assert get_template("polite").render(row) == f"Please summarise this chat.\n\n{row['dialogue']}\n\nSummary:"
    assert get_template("topic-guess").render_shot(row).endswith("Topic: museum")
    with pytest.raises(PromptError, match="'polite' is already registered"):
        load_templates(path, register=True)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("- name: a\n  text: \"{dialogue\"\n", r"template 1 \('a'\): template 'a': text: bad placeholder syntax"),
        ("- name: a\n  text: \"{dialogue}\"\n- name: a\n  text: \"x {dialogue}\"\n", r"template 2 \('a'\): duplicate"),
        ("- name: a\n  txt: \"{dialogue}\"\n", r"template 1 \('a'\): unknown key\(s\) txt; valid: name, text"),
        ("- text: \"{dialogue}\"\n", r"template 1: missing 'name'"),
        ("- name: a\n  text: \"\"\n", r"template 1 \('a'\): template 'a': text is empty"),
        ("name: a\ntext: \"{dialogue}\"\n", r"expected a non-empty list of templates"),
        ("- name: a\n  text: [unclosed\n", r"line \d+ is not valid YAML"),
        ("- just a string\n", r"template 1: a template must be a mapping"),
    ],
)
def test_malformed_yaml_templates_name_file_entry_and_problem(tmp_path, registry, content, expected) -> None:
    path = tmp_path / "user.yaml"
    path.write_text(content, encoding="utf-8")
    before = dict(registry)
    with pytest.raises(PromptError, match=expected) as err:
        load_templates(path, register=True)
    assert str(path) in str(err.value)
    assert registry == before  # nothing registered from a file with a bad entry


def test_missing_templates_file(tmp_path) -> None:
    with pytest.raises(PromptError, match="no such file"):
        load_templates(tmp_path / "nope.yaml")


def test_prompt_error_is_a_user_error() -> None:
    assert issubclass(PromptError, LLMCycleError)
