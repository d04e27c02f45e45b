"""PEFT methods, a registry with checked names: each takes a model and makes some parameters trainable.

``apply_method(loaded, cfg)`` returns the model to train (a ``PeftModel`` for lora / qlora /
prompt_tuning, the same module for full / selective) and records what trains.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmcycle.core.errors import ConfigError, LLMCycleError
from llmcycle.models.adapters import tie_token_heads, word_embeddings
from llmcycle.models.tokenizer import SPEAKER_TAGS

# Auto LoRA targets per model family (``config.model_type``).
LORA_TARGETS: dict[str, list[str]] = {
    "t5": ["q", "v"], "mt5": ["q", "v"], "umt5": ["q", "v"],
    "bart": ["q_proj", "v_proj"], "mbart": ["q_proj", "v_proj"], "pegasus": ["q_proj", "v_proj"],
    "llama": ["q_proj", "v_proj"], "mistral": ["q_proj", "v_proj"], "qwen2": ["q_proj", "v_proj"],
    "opt": ["q_proj", "v_proj"], "gemma": ["q_proj", "v_proj"], "phi": ["q_proj", "v_proj"],
    "gpt2": ["c_attn"], "gpt_neox": ["query_key_value"], "bloom": ["query_key_value"],
    "bert": ["query", "value"], "roberta": ["query", "value"], "encoder-decoder": ["query", "value"],
}
# Modules a warm start creates fresh (random, seeded), by model source: trained fully under PEFT when asked.
NEW_MODULES: dict[str, list[str]] = {
    "builtin:minilm-seq2seq": ["crossattention", "cls.predictions.transform"],
}
# Tokens a warm start added to its base vocabulary (fresh embedding rows), by model source: their rows train
# under LoRA when asked (``lora.train_new_tokens``).
NEW_TOKENS: dict[str, tuple[str, ...]] = {
    "builtin:minilm-seq2seq": SPEAKER_TAGS,
}


@dataclass
class Prepared:
    """The model to train and what trains in it."""

    model: Any
    method: str
    trainable: int
    total: int
    new_modules: list[str]

    @property
    def pct(self) -> float:
        return 100.0 * self.trainable / max(self.total, 1)

    def summary(self) -> str:
        return f"trainable params: {self.trainable:,} || all params: {self.total:,} || trainable%: {self.pct:.4f}"


def count_parameters(model: Any) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts; under PEFT the total includes adapter parameters."""
    trainable = total = 0
    for p in model.parameters():
        n = p.numel()
        if hasattr(p, "quant_storage") and hasattr(p, "element_size"):  # bitsandbytes 4-bit packs two per byte
            n *= 2
        total += n
        trainable += n if p.requires_grad else 0
    return trainable, total


def base_source(loaded: Any) -> str:
    """What an adapter trained on ``loaded`` names as its base: the source that loads these weights again (an
    earlier adapter's folder when that adapter was merged in), else the model's own source."""
    return loaded.origin or loaded.source.split("+")[0]


def new_modules(loaded: Any) -> list[str]:
    """Names (suffixes) of the freshly initialised modules of a warm-started model, if any."""
    return list(NEW_MODULES.get(loaded.source.split("+")[0], []))


def new_token_ids(loaded: Any) -> list[int]:
    """Vocabulary ids of the tokens a warm start added to its base vocabulary, if any."""
    tokens = NEW_TOKENS.get(loaded.source.split("+")[0], ())
    return [int(i) for i in loaded.tokenizer.convert_tokens_to_ids(list(tokens))] if tokens else []


def lora_targets(loaded: Any, explicit: list[str] | None) -> list[str]:
    if explicit:
        names = {n.rsplit(".", 1)[-1] for n, _ in loaded.model.named_modules()}
        missing = [t for t in explicit if t not in names and not any(n.endswith(t) for n, _ in
                                                                     loaded.model.named_modules())]
        if missing:
            raise ConfigError(f"lora.target_modules: {', '.join(missing)} match no module of {loaded.source}")
        return list(explicit)
    family = getattr(loaded.model.config, "model_type", loaded.family)
    if family not in LORA_TARGETS:
        raise ConfigError(f"lora.target_modules: no default for model family '{family}'; name the modules, "
                          "e.g. target_modules: [q_proj, v_proj]")
    return list(LORA_TARGETS[family])


def _task_type(loaded: Any) -> str:
    return "SEQ_2_SEQ_LM" if loaded.kind == "seq2seq" else "CAUSAL_LM"


def _freeze_all(model: Any) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def _full(loaded: Any, cfg: Any) -> tuple[Any, list[str]]:
    for p in loaded.model.parameters():
        p.requires_grad_(True)
    return loaded.model, new_modules(loaded)


def _selective(loaded: Any, cfg: Any) -> tuple[Any, list[str]]:
    model = loaded.model
    pats = [re.compile(p) for p in cfg.selective.patterns]
    names = [n for n, _ in model.named_parameters()]
    for pat in pats:
        if not any(pat.search(n) for n in names):
            raise ConfigError(f"selective.patterns: {pat.pattern!r} matches no parameter of {loaded.source} "
                              f"(names look like {names[0]!r}, {names[-1]!r})")
    for n, p in model.named_parameters():
        p.requires_grad_(any(pat.search(n) for pat in pats))
    return model, []


def _lora(loaded: Any, cfg: Any) -> tuple[Any, list[str]]:
    from peft import LoraConfig, get_peft_model

    opts = cfg.lora
    fresh = new_modules(loaded) if opts.train_new_modules else []
    tokens = new_token_ids(loaded) if opts.train_new_tokens else []
    lcfg = LoraConfig(
        task_type=_task_type(loaded), r=opts.r, lora_alpha=opts.alpha, lora_dropout=opts.dropout, bias=opts.bias,
        target_modules=lora_targets(loaded, opts.target_modules), modules_to_save=fresh or None,
        exclude_modules=(r".*(" + "|".join(re.escape(m) for m in fresh) + r").*") if fresh else None,
        trainable_token_indices={name: tokens for name in word_embeddings(loaded.model)} if tokens else None,
    )
    model = get_peft_model(loaded.model, lcfg)
    if tokens:
        tie_token_heads(model)
    model.peft_config["default"].base_model_name_or_path = base_source(loaded)
    return model, fresh


def _qlora(loaded: Any, cfg: Any) -> tuple[Any, list[str]]:
    import importlib.util

    import torch

    if not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None:
        raise LLMCycleError("method: QLoRA needs a CUDA GPU and bitsandbytes (pip install bitsandbytes); on a CPU "
                            "use method: lora")
    if not getattr(loaded.model, "is_loaded_in_4bit", False):
        raise LLMCycleError("method: qlora needs the base loaded in 4-bit (BitsAndBytesConfig(load_in_4bit=True)); "
                            "this model is not quantised")
    from peft import prepare_model_for_kbit_training

    loaded.model = prepare_model_for_kbit_training(loaded.model)
    return _lora(loaded, cfg)


def _prompt_tuning(loaded: Any, cfg: Any) -> tuple[Any, list[str]]:
    import torch
    from peft import PromptTuningConfig, get_peft_model

    opts = cfg.prompt_tuning
    dims = {}
    enc = getattr(loaded.model.config, "encoder", None)
    if enc is not None and not hasattr(loaded.model.config, "num_layers"):  # EncoderDecoderModel: sizes live inside
        dims = {"num_layers": enc.num_hidden_layers, "token_dim": enc.hidden_size,
                "num_attention_heads": enc.num_attention_heads}
    pcfg = PromptTuningConfig(task_type=_task_type(loaded), num_virtual_tokens=opts.n_virtual_tokens, **dims)
    model = get_peft_model(loaded.model, pcfg)
    model.peft_config["default"].base_model_name_or_path = base_source(loaded)
    if opts.init_text:  # peft's TEXT init reloads the tokenizer from the hub: copy the embeddings ourselves
        ids = loaded.tokenizer(opts.init_text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ConfigError("prompt_tuning.init_text: tokenises to nothing")
        words = loaded.model.get_input_embeddings().weight
        with torch.no_grad():
            emb = model.prompt_encoder["default"].embedding.weight  # (n_virtual x submodules, d)
            ids = (ids * (emb.shape[0] // len(ids) + 1))[: emb.shape[0]]
            emb.copy_(words[torch.tensor(ids)].detach().to(emb.dtype))
    return model, []


METHODS: dict[str, Callable[[Any, Any], tuple[Any, list[str]]]] = {
    "full": _full, "lora": _lora, "qlora": _qlora, "prompt_tuning": _prompt_tuning, "selective": _selective,
}


def apply_method(loaded: Any, cfg: Any) -> Prepared:
    """Make ``loaded.model`` trainable as ``cfg.method`` says (seeded by ``cfg.seed``); see module doc."""
    from transformers import set_seed

    if cfg.method not in METHODS:
        raise ConfigError(f"method: unknown {cfg.method!r}; valid: {', '.join(METHODS)}")
    if cfg.method != "full":
        _freeze_all(loaded.model)
    set_seed(cfg.seed)
    model, fresh = METHODS[cfg.method](loaded, cfg)
    trainable, total = count_parameters(model)
    if trainable == 0:
        raise ConfigError(f"{cfg.method}: no parameter would train")
    return Prepared(model, cfg.method, trainable, total, fresh)
