"""Tuning: instruction data, full / LoRA / prompt tuning / selective fine-tuning, adapters.

- ``data``: rows -> prompt/completion pairs (templates) -> masked token ids; ``PadCollator``
  pads each batch to its longest row; ``TruncationReport`` counts what was cut.
- ``methods``: the method registry (``METHODS``), ``apply_method``, ``count_parameters``.
- ``train``: ``train(loaded, data, cfg, out_dir)`` on the Hugging Face Trainer, resumable exactly.
- ``adapters``: ``save_adapter``, ``load_adapter``, ``switch_adapter``, ``merge_adapter``.
- ``config``: ``TuneConfig``.

Importing this package is cheap: torch, transformers and peft load when a function runs.
"""

from llmcycle.models.adapters import (
    load_adapter,
    merge_adapter,
    save_adapter,
    switch_adapter,
)
from llmcycle.tuning.config import (
    LoraOptions,
    PromptTuningOptions,
    SelectiveOptions,
    TuneConfig,
)
from llmcycle.tuning.data import (
    IGNORE,
    PadCollator,
    Pair,
    TruncationReport,
    build_dataset,
    to_pairs,
    tokenize_pairs,
)
from llmcycle.tuning.methods import LORA_TARGETS, METHODS, Prepared, apply_method, count_parameters
from llmcycle.tuning.train import TuneResult, check_precision, train

__all__ = [
    "IGNORE", "LORA_TARGETS", "METHODS", "LoraOptions", "PadCollator", "Pair", "Prepared", "PromptTuningOptions",
    "SelectiveOptions", "TruncationReport", "TuneConfig", "TuneResult", "apply_method", "build_dataset",
    "check_precision", "count_parameters", "load_adapter", "merge_adapter", "save_adapter", "switch_adapter",
    "to_pairs", "tokenize_pairs", "train",
]
