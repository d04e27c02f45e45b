"""The builtin templates: dialogue summarisation first, plus a few for other tasks.

The ``flan-*`` phrasings are FLAN's own SAMSum templates (google-research/FLAN,
``flan/v2/templates.py``), the instructions FLAN-T5 was tuned on; ``flan`` is the one the
course lab used with DialogSum. Targets follow FLAN: the answer on its own line after a
question, after a space when the prompt ends in ``Label:``-style cue.
"""

from __future__ import annotations

from llmcycle.prompts.templates import PromptTemplate

_SUM = "summarization"

BUILTIN_TEMPLATES: tuple[PromptTemplate, ...] = (
    PromptTemplate("none", "{dialogue}", _SUM, "\n{summary}", "The raw input, no instruction."),
    PromptTemplate("instruction", "Summarize the following conversation.\n\n{dialogue}\n\nSummary:", _SUM,
                   " {summary}", "The course lab's zero-shot instruction prompt."),
    PromptTemplate("flan", "Dialogue:\n\n{dialogue}\n\nWhat was going on?", _SUM, "\n{summary}",
                   "FLAN dialogue prompt used in the course lab."),
    PromptTemplate("flan-briefly", "{dialogue}\n\nBriefly summarize that dialogue.", _SUM, "\n{summary}",
                   "FLAN SAMSum template."),
    PromptTemplate("flan-short", "Here is a dialogue:\n{dialogue}\n\nWrite a short summary!", _SUM, "\n{summary}",
                   "FLAN SAMSum template."),
    PromptTemplate("flan-summary", "Dialogue:\n{dialogue}\n\nWhat is a summary of this dialogue?", _SUM,
                   "\n{summary}", "FLAN SAMSum template."),
    PromptTemplate("flan-two-sentences", "{dialogue}\n\nWhat was that dialogue about, in two sentences or less?",
                   _SUM, "\n{summary}", "FLAN SAMSum template."),
    PromptTemplate("flan-talking-about", "Here is a dialogue:\n{dialogue}\n\nWhat were they talking about?", _SUM,
                   "\n{summary}", "FLAN SAMSum template."),
    PromptTemplate("flan-main-points", "Dialogue:\n{dialogue}\nWhat were the main points in that conversation?",
                   _SUM, "\n{summary}", "FLAN SAMSum template."),
    PromptTemplate("flan-going-on", "Dialogue:\n{dialogue}\nWhat was going on in that conversation?", _SUM,
                   "\n{summary}", "FLAN SAMSum template."),
    PromptTemplate("tldr", "{dialogue}\n\nTL;DR:", _SUM, " {summary}",
                   "The GPT-2 paper's zero-shot summarisation cue, for decoder-only models."),
    PromptTemplate("one-sentence", "Summarize the conversation below in one sentence.\n\n{dialogue}\n\n"
                   "One-sentence summary:", _SUM, " {summary}", "Asks for a single sentence."),
    PromptTemplate("support", "Read this customer-support conversation and summarize the customer's problem "
                   "and how it was resolved.\n\nConversation:\n{dialogue}\n\nSummary:", _SUM, " {summary}",
                   "Domain instruction for support dialogues."),
    PromptTemplate("topic", "Dialogue:\n{dialogue}\n\nWhat is the topic of this dialogue?", "classification",
                   "\n{topic}", "DialogSum's topic label (the 'topic' column) as a classification task."),
    PromptTemplate("qa", "Answer the question using the context.\n\nContext: {context}\n\nQuestion: {question}"
                   "\n\nAnswer:", "question-answering", " {answer}", "Extractive / abstractive QA."),
    PromptTemplate("qa-flan", "Read this and answer the question\n\n{context}\n\n{question}", "question-answering",
                   "\n{answer}", "FLAN SQuAD template."),
    PromptTemplate("sentiment", "{text}\n\nIs the sentiment of this text positive or negative?", "classification",
                   "\n{label}", "Binary sentiment classification."),
)
