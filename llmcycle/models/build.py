"""What kind a model is and how its architecture is built: the pieces the loader and the quantised
formats share (``load_model`` and ``load_int8`` both build architectures from a config).
"""

from __future__ import annotations

from typing import Any, Literal

from llmcycle.models.builtins import seeded

Kind = Literal["seq2seq", "causal", "classifier"]


def model_kind(config: Any) -> Kind:
    """``seq2seq``, ``causal`` or ``classifier``, from a transformers config."""
    archs = " ".join(getattr(config, "architectures", None) or [])
    if "ForSequenceClassification" in archs:
        return "classifier"
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    return "causal"


def auto_class(kind: Kind) -> Any:
    """The transformers Auto class that builds or loads a model of this kind."""
    import transformers

    return {"seq2seq": transformers.AutoModelForSeq2SeqLM, "causal": transformers.AutoModelForCausalLM,
            "classifier": transformers.AutoModelForSequenceClassification}[kind]


def untie_lm_head(model: Any, config_dict: dict[str, Any]) -> None:
    """T5 v1.1 / FLAN-T5 have an LM head separate from the embeddings (247,577,856 params for
    flan-t5-base); transformers 5.x always ties T5's head, so untie it for a faithful build."""
    import torch

    if config_dict.get("model_type") == "t5" and config_dict.get("tie_word_embeddings") is False:
        head = torch.empty_like(model.shared.weight).normal_(0.0, 1.0)  # T5's untied-head init
        model.lm_head.weight = torch.nn.Parameter(head)
        model._tied_weights_keys = {k: v for k, v in model._tied_weights_keys.items() if k != "lm_head.weight"}


def build_random(config: Any, config_dict: dict[str, Any] | None = None, seed: int = 1234) -> Any:
    """The architecture of ``config`` with seeded random weights."""
    with seeded(seed):
        model = auto_class(model_kind(config)).from_config(config)
        if config_dict:
            untie_lm_head(model, config_dict)
    return model.eval()
