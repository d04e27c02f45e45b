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
    # integrate: retrieval-augmented answers, chain-of-thought, program-aided answers, ReAct (llmcycle.apps)
    PromptTemplate("rag-cite", "Answer the question using only the numbered passages below. Cite the passages "
                   "you use by their numbers, like [1].\n\n{context}\n\nQuestion: {question}\nAnswer:",
                   "question-answering", " {answer}", "RAG: numbered retrieved passages, answer with citations "
                   "(passages are dropped, lowest ranked first, then cut, to fit the budget).", "context"),
    PromptTemplate("cot", "Q: {question}\nA:", "reasoning", " {rationale} The answer is {answer}.",
                   "Few-shot chain-of-thought (Wei et al. 2022): solved shots show their reasoning, then "
                   "'The answer is X.'", "question"),
    PromptTemplate("cot-zero", "Q: {question}\nA: Let's think step by step.", "reasoning",
                   " {rationale} The answer is {answer}.", "Zero-shot chain-of-thought (Kojima et al. 2022).",
                   "question"),
    PromptTemplate("pal", "# Question: {question}\n# A Python program that prints the answer:\n", "program",
                   "{program}", "Program-aided answers (Gao et al. 2022): the model writes Python, the sandbox "
                   "runs it, the last printed line is the answer.", "question"),
    PromptTemplate("react", "Answer the question. You can use these tools:\n{tools}\n\nUse exactly this "
                   "format:\nThought: what you think next\nAction: tool_name[tool input]\nObservation: what the "
                   "tool returned\n... (Thought, Action and Observation repeat as needed)\nThought: I know the "
                   "answer\nFinal Answer: the answer\n\n{examples}Question: {question}\n{scratchpad}", "agent",
                   "{trajectory}", "ReAct (Yao et al. 2022): Thought / Action / Observation steps with tools.",
                   "scratchpad"),
)

# Solved examples for few-shot prompts (written for llmcycle), by name: rows with the fields their template's
# target needs. ``cot-arithmetic`` for the ``cot`` template, ``pal-arithmetic`` for ``pal``, ``react`` for ``react``.
BUILTIN_EXEMPLARS: dict[str, tuple[dict[str, str], ...]] = {
    "cot-arithmetic": (
        {"question": "Sara has 4 boxes of 6 eggs. She uses 5 eggs for a cake. How many eggs does she have left?",
         "rationale": "She has 4 x 6 = 24 eggs. After using 5 she has 24 - 5 = 19 eggs.", "answer": "19"},
        {"question": "A shirt costs $15 and a pair of trousers costs twice as much. How many dollars do both cost "
                     "together?",
         "rationale": "The trousers cost 2 x 15 = 30 dollars. Together they cost 15 + 30 = 45 dollars.",
         "answer": "45"},
        {"question": "A runner runs 3 km every morning and 5 km every evening. How many km does she run in a week?",
         "rationale": "She runs 3 + 5 = 8 km a day. In 7 days she runs 8 x 7 = 56 km.", "answer": "56"},
        {"question": "A hall has 120 seats and two thirds of them are taken. How many seats are free?",
         "rationale": "Two thirds of 120 is 120 / 3 x 2 = 80 seats taken, so 120 - 80 = 40 seats are free.",
         "answer": "40"},
    ),
    "pal-arithmetic": (
        {"question": "Sara has 4 boxes of 6 eggs. She uses 5 eggs for a cake. How many eggs does she have left?",
         "program": "eggs = 4 * 6\nleft = eggs - 5\nprint(left)", "answer": "19"},
        {"question": "A shirt costs $15 and a pair of trousers costs twice as much. How many dollars do both cost "
                     "together?",
         "program": "shirt = 15\ntrousers = 2 * shirt\nprint(shirt + trousers)", "answer": "45"},
        {"question": "A runner runs 3 km every morning and 5 km every evening. How many km does she run in a week?",
         "program": "per_day = 3 + 5\nprint(per_day * 7)", "answer": "56"},
        {"question": "A hall has 120 seats and two thirds of them are taken. How many seats are free?",
         "program": "taken = 120 * 2 // 3\nprint(120 - taken)", "answer": "40"},
    ),
    "react": (
        {"question": "What is 12 times the number of days in a week?",
         "trajectory": "Thought: A week has 7 days, so I need 12 * 7.\nAction: calculator[12 * 7]\n"
                       "Observation: 84\nThought: I know the answer.\nFinal Answer: 84"},
    ),
}
