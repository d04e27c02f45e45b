"""Model cards: the ``README.md`` a saved model carries, in the Hugging Face Hub's format (``huggingface_hub``'s
``ModelCard`` and ``ModelCardData``: YAML metadata, then Markdown).

Every model llmcycle saves gets one: the library functions that save a model (``tuning.train``,
``pretrain.pretrain``, ``train_ppo``, ``train_dpo``, ``run_optimize``) write it with what they know (base,
method, training rows, the run's metrics, settings), and a recipe stage that hands a model on writes it again
with the recipe's data source and the stage's report section. It replaces the empty template peft writes
beside an adapter; a ``README.md`` of the user's own is never replaced (``write_model_card`` leaves it, and the
savers carry it over when they replace a folder). The card says what the model is, what it was made from and
whether the Hub can resolve that base: a Hub id goes in the metadata as ``base_model`` (the Hub's convention);
a ``builtin:`` model or a local folder is said to be one, no ``base_model`` is claimed for it, and the card
says how to load it (``llmcycle.models.load_model(folder)``: an adapter's ``adapter_config.json`` keeps naming
``builtin:NAME``, which only llmcycle resolves). ``llmcycle.models.hub.push_folder`` then publishes the card
with the weights.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import ModelCard, ModelCardData

from llmcycle.models.loader import HUB_ID
from llmcycle.models.quantized import MARKER as QUANTIZED_MARKER

CARD_FILE = "README.md"
BUILTIN_TAG = "llmcycle-builtin-base"
"""Metadata tag of a model whose base is an llmcycle builtin (built locally, not on the Hub)."""
PEFT_TEMPLATE = "Model Card for Model ID"
"""The heading of the empty template peft writes beside an adapter (replaced by the real card)."""

log = logging.getLogger("llmcycle")


def hub_id(source: str) -> str | None:
    """``source`` when the loader would fetch it from the Hub (a repository id, not a folder here); else None."""
    return source if HUB_ID.match(source) and not Path(source).expanduser().exists() else None


def _adapter_config(folder: str | Path) -> dict[str, Any] | None:
    """The ``adapter_config.json`` of a peft adapter folder (None: not an adapter, or unreadable)."""
    path = Path(folder).expanduser() / "adapter_config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None


def adapter_base(folder: str | Path) -> str | None:
    """The base an adapter folder names (``base_model_name_or_path``: what ``load_model`` loads under it)."""
    cfg = _adapter_config(folder)
    return cfg.get("base_model_name_or_path") if cfg else None


def saved_form(folder: str | Path) -> tuple[str, bool]:
    """What a saved folder holds in words, and whether it is a peft adapter: (``lora adapter``, True),
    (``quantised weights``, False), (``weights``, False)."""
    cfg = _adapter_config(folder)
    if cfg is not None:
        return f"{str(cfg.get('peft_type') or 'peft').lower().replace('_', ' ')} adapter", True
    return ("quantised weights" if (Path(folder) / QUANTIZED_MARKER).is_file() else "weights"), False


def _builtin_base(source: str) -> str | None:
    """The ``builtin:NAME`` at the bottom of ``source`` (a builtin, an adapter stacked on one, a saved adapter
    folder naming one), else None."""
    first = source.split(" + ")[0].strip()
    if first.startswith("builtin:"):
        return first
    seen = 0
    while seen < 8 and (base := adapter_base(first)) is not None:  # adapters stack: follow them down
        if base.startswith("builtin:"):
            return base
        first, seen = base, seen + 1
    return None


def describe_base(source: str) -> str:
    """The base in words: a Hub id, one of llmcycle's builtins, or a local folder (an adapter: and its base)."""
    if " + " in source:  # a model with an adapter attached: "BASE + ADAPTER"
        base, adapter = source.split(" + ", 1)
        return f"{describe_base(base.strip())} with the adapter `{adapter.strip()}`"
    if source.startswith("builtin:"):
        from llmcycle.models.builtins import BUILTINS

        spec = BUILTINS.get(source.removeprefix("builtin:"))
        what = f" ({spec.description})" if spec is not None else ""
        return (f"`{source}`{what}, one of llmcycle's builtin models: built locally by llmcycle, not downloaded and "
                "not on the Hugging Face Hub (load this model with llmcycle, whose `load_model` builds the "
                "builtin base)")
    if hub_id(source):
        return f"[`{source}`](https://huggingface.co/{source}) on the Hugging Face Hub"
    below = adapter_base(source)
    if below is not None:
        return f"the local adapter `{source}` (not on the Hugging Face Hub) on {describe_base(below)}"
    return f"the local model `{source}` (not on the Hugging Face Hub)"


def is_user_card(path: str | Path) -> bool:
    """Whether ``path`` is a ``README.md`` of the user's own: neither a card llmcycle wrote (tag ``llmcycle``)
    nor the empty template peft writes beside an adapter. Those two are replaced; a user's never is."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return True
    if PEFT_TEMPLATE in text:
        return False
    meta: Any = None
    if text.startswith("---"):
        head = text[3:].split("\n---", 1)
        try:
            meta = yaml.safe_load(head[0]) if len(head) == 2 else None
        except yaml.YAMLError:
            meta = None
    tags = meta.get("tags") if isinstance(meta, dict) else None
    return not (isinstance(tags, list) and "llmcycle" in tags)


def keep_user_card(old: str | Path, new: str | Path) -> None:
    """Carry a user's own ``README.md`` from the folder ``old`` into ``new`` (a saver replacing ``old`` with the
    freshly saved ``new``): what a user wrote beside a model survives saving it again."""
    mine = Path(old) / CARD_FILE
    if is_user_card(mine):
        shutil.copy2(mine, Path(new) / CARD_FILE)


def _metrics_table(metrics: Mapping[str, Any]) -> list[str]:
    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return ["| metric | value |", "| --- | --- |", *(f"| {k} | {fmt(v)} |" for k, v in metrics.items() if v is not None)]


def write_model_card(folder: str | Path, *, name: str, base: str | None, stage: str, method: str | None,
                     data: str | None = None, what: str | None = None, results: str = "",
                     metrics: Mapping[str, Any] | None = None, settings: Mapping[str, Any] | None = None,
                     adapter: bool | None = None, repo_id: str | None = None) -> Path:
    """Write ``folder/README.md``, the model card of the model saved in ``folder``; a ``README.md`` of the
    user's own already there is left as it is (``is_user_card``). Returns the card's path.

    Args:
        name: the model's name in the run (``tuned-lora``, ``int8``).
        base: the source it was made from (a Hub id, ``builtin:NAME`` or a folder; ``"BASE + ADAPTER"``); None:
            from scratch (random initialisation).
        stage: the stage that made it (``05-tune``, or ``tune`` outside a recipe); ``method``: how (``lora``,
            ``ppo``, ``int8``).
        data: the data set it was trained or measured on, if known (a source: ``builtin:dialogues``, a Hub id).
        what: its form in words (``weights``, ``lora adapter``, ``quantised weights``); None: read from the folder.
        results: Markdown of what the run measured (image links are dropped: they point into the run folder).
        metrics: figures of the run (``train_loss``, ``training rows``), shown as a table.
        settings: the stage's settings, shown as YAML.
        adapter: a peft adapter (library ``peft``) rather than full weights (``transformers``); None: read from
            the folder (``adapter_config.json``).
        repo_id: the Hub repository it is about to be pushed to (``hub.repo_id``): the card says how to load it
            from there too.
    """
    folder = Path(folder)
    path = folder / CARD_FILE
    if is_user_card(path):
        log.info("%s: a README.md of your own is there; it is kept (no model card written)", folder)
        return path
    found_what, found_adapter = saved_form(folder)
    what = what or found_what
    adapter = found_adapter if adapter is None else adapter
    builtin = _builtin_base(base) if base else None
    tags = ["llmcycle", *(t for t in (method, stage.split("-", 1)[-1]) if t), *([BUILTIN_TAG] if builtin else [])]
    meta = ModelCardData(base_model=hub_id(base) if base else None, library_name="peft" if adapter else "transformers",
                         datasets=[data] if data and hub_id(data) else None, tags=list(dict.fromkeys(tags)))
    made = f"by llmcycle's `{stage}` stage" + (f" ({method})" if method else "")
    what = what.replace("lora", "LoRA")
    origin = f"from {describe_base(base)}" if base else "from scratch (random initialisation, no base model)"
    lines = [f"# {name}", "", f"{what[0].upper() + what[1:]} made {made} {origin}"
             + (f", on the data `{data}`." if data else "."), ""]
    shown = "\n".join(line for line in results.splitlines() if not line.lstrip().startswith("!["))
    if shown.strip() or metrics:
        lines += ["## Results of the run", ""]
        if metrics:
            lines += [*_metrics_table(metrics), ""]
        if shown.strip():
            lines += [re.sub(r"^(#+) ", lambda m: "#" + m.group(1) + " ", shown.strip(), flags=re.M), ""]  # one down
    if builtin:
        named = adapter_base(folder) if adapter else None
        lines += ["## Its base is an llmcycle builtin", "",
                  f"`{builtin}` is one of llmcycle's builtin models: llmcycle builds it locally (from a configuration "
                  "and tokenizer shipped in the `llmcycle` package), it is not on the Hugging Face Hub, so this card "
                  "names no `base_model`" + (f" and `adapter_config.json` names the base `{named}`, which only "
                                              "llmcycle resolves (peft's `AutoPeftModel` cannot)" if named else "")
                  + ". Load it with llmcycle as below.", ""]
    lines += ["## How to load it", "", "```python", "from llmcycle.models import load_model", "",
              f'model = load_model("{folder.resolve()}")  # .model, .tokenizer', "```", ""]
    if repo_id:
        lines += ["From the Hugging Face Hub (with llmcycle installed):", "", "```python",
                  "from huggingface_hub import snapshot_download", "from llmcycle.models import load_model", "",
                  f'model = load_model(snapshot_download("{repo_id}"))', "```", ""]
    if adapter and base and hub_id(base):
        lines += ["With peft alone:", "", "```python", "from peft import AutoPeftModel", "",
                  f'model = AutoPeftModel.from_pretrained("{repo_id or folder.resolve()}")', "```", ""]
    if settings:
        lines += ["## Settings", "", "```yaml", yaml.safe_dump(dict(settings), sort_keys=False).rstrip(), "```", ""]
    card = ModelCard(f"---\n{meta.to_yaml()}\n---\n\n" + "\n".join(lines))
    tmp = path.with_name(f".{CARD_FILE}.tmp")
    card.save(str(tmp))
    tmp.replace(path)
    return path
