"""Evaluation: ROUGE, BLEU/chrF, diversity, lengths, labels, toxicity, perplexity, statistics.

``import llmcycle.evaluation`` is cheap: rouge-score (which pulls in NLTK, SciPy and
scikit-learn), sacrebleu, alt-profanity-check, torch and transformers are imported by the
functions that use them.

Modules: ``rouge`` (rouge-score wrapper), ``text_metrics`` (sacrebleu BLEU/chrF, distinct-n,
self-BLEU, length statistics, accuracy and macro-F1), ``toxicity`` (pluggable scorers),
``perplexity`` (causal and seq2seq, token-weighted), ``stats`` (bootstrap intervals, paired tests).
"""

from llmcycle.evaluation.perplexity import (
    PerplexityResult,
    causal_perplexity,
    perplexity,
    seq2seq_perplexity,
)
from llmcycle.evaluation.rouge import ROUGE_TYPES, Score, rouge, rouge_per_example, split_sentences
from llmcycle.evaluation.stats import (
    ConfidenceInterval,
    PairedTestResult,
    approximate_randomization_test,
    bootstrap_ci,
    paired_bootstrap_test,
    paired_test,
)
from llmcycle.evaluation.text_metrics import (
    accuracy,
    bleu,
    chrf,
    distinct,
    distinct_n,
    length_stats,
    macro_f1,
    reference_streams,
    self_bleu,
)
from llmcycle.evaluation.toxicity import (
    TOXICITY_SCORERS,
    ClassifierScorer,
    ProfanityCheckScorer,
    ToxicityScorer,
    get_toxicity_scorer,
    register_toxicity_scorer,
    toxicity,
)

__all__ = [
    "ROUGE_TYPES",
    "TOXICITY_SCORERS",
    "ClassifierScorer",
    "ConfidenceInterval",
    "PairedTestResult",
    "PerplexityResult",
    "ProfanityCheckScorer",
    "Score",
    "ToxicityScorer",
    "accuracy",
    "approximate_randomization_test",
    "bleu",
    "bootstrap_ci",
    "causal_perplexity",
    "chrf",
    "distinct",
    "distinct_n",
    "get_toxicity_scorer",
    "length_stats",
    "macro_f1",
    "paired_bootstrap_test",
    "paired_test",
    "perplexity",
    "reference_streams",
    "register_toxicity_scorer",
    "rouge",
    "rouge_per_example",
    "self_bleu",
    "seq2seq_perplexity",
    "split_sentences",
    "toxicity",
]
