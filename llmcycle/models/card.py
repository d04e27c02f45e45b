"""Model cards: the ``README.md`` a saved model carries, in the Hugging Face Hub's format (``huggingface_hub``'s
``ModelCard`` and ``ModelCardData``: YAML metadata, then Markdown).

Every model a recipe stage hands on (tuned weights or adapter, PPO or DPO policy, an optimised variant) gets
one, replacing the empty template peft writes beside an adapter: what the model is, what it was made from
(its base, and whether the Hub can resolve that base: a ``builtin:`` model or a local folder is said to be
one, and no ``base_model`` is claimed for it), the stage, method and data, the results the run measured (the
stage's own report section) and how to load it. ``push_to_hub`` or ``huggingface-cli upload`` then publishes
the card with the weights.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import ModelCard, ModelCardData

from llmcycle.models.loader import HUB_ID

CARD_FILE = "README.md"


def hub_id(source: str) -> str | None:
    """``source`` when the loader would fetch it from the Hub (a repository id, not a folder here); else None."""
    return source if HUB_ID.match(source) and not Path(source).expanduser().exists() else None


def describe_base(source: str) -> str:
    """The base in words: a Hub id, one of llmcycle's builtins, or a local folder."""
    if source.startswith("builtin:"):
        return (f"`{source}`, one of llmcycle's builtin models (not on the Hugging Face Hub: load this model "
                "with llmcycle, whose `load_model` builds the builtin base)")
    if hub_id(source):
        return f"[`{source}`](https://huggingface.co/{source}) on the Hugging Face Hub"
    return f"the local model `{source}` (not on the Hugging Face Hub)"


def write_model_card(folder: str | Path, *, name: str, base: str, what: str, stage: str, method: str | None,
                     data: str | None, results: str = "", settings: Mapping[str, Any] | None = None,
                     adapter: bool = False) -> Path:
    """Write ``folder/README.md``, the model card of the model saved in ``folder``.

    Args:
        name: the model's name in the run (``tuned-lora``, ``int8``).
        base: the source it was made from (a Hub id, ``builtin:NAME`` or a folder).
        what: its form in words (``weights``, ``lora adapter``, ``quantised weights``).
        stage: the stage that made it (``05-tune``); ``method``: how (``lora``, ``ppo``, ``int8``).
        data: the data set it was trained or measured on, if any.
        results: Markdown of what the run measured (image links are dropped: they point into the run folder).
        settings: the stage's settings, shown as YAML.
        adapter: a peft adapter (library ``peft``) rather than full weights (``transformers``).
    """
    folder = Path(folder)
    tags = ["llmcycle", *(t for t in (method, stage.split("-", 1)[-1]) if t)]
    meta = ModelCardData(base_model=hub_id(base), library_name="peft" if adapter else "transformers",
                         datasets=[data] if data and hub_id(data) else None, tags=list(dict.fromkeys(tags)))
    made = f"by llmcycle's `{stage}` stage" + (f" ({method})" if method else "")
    what = what.replace("lora", "LoRA")
    lines = [f"# {name}", "", f"{what[0].upper() + what[1:]} made {made} from {describe_base(base)}"
             + (f", on the data `{data}`." if data else "."), ""]
    shown = "\n".join(line for line in results.splitlines() if not line.lstrip().startswith("!["))
    if shown.strip():
        body = re.sub(r"^(#+) ", lambda m: "#" + m.group(1) + " ", shown.strip(), flags=re.M)  # one level down
        lines += ["## Results of the run", "", body, ""]
    lines += ["## How to load it", "", "```python", "from llmcycle.models import load_model", "",
              f'model = load_model("{folder}")  # .model, .tokenizer', "```", ""]
    if adapter and hub_id(base):
        lines += ["With peft alone:", "", "```python", "from peft import AutoPeftModel", "",
                  f'model = AutoPeftModel.from_pretrained("{folder}")', "```", ""]
    if settings:
        lines += ["## Settings", "", "```yaml", yaml.safe_dump(dict(settings), sort_keys=False).rstrip(), "```", ""]
    card = ModelCard(f"---\n{meta.to_yaml()}\n---\n\n" + "\n".join(lines))
    path = folder / CARD_FILE
    tmp = path.with_name(f".{CARD_FILE}.tmp")
    card.save(str(tmp))
    tmp.replace(path)
    return path
