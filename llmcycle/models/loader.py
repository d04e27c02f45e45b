"""``load_model``: one entry point for hub ids, local directories and builtin models.

Dispatch order: ``builtin:NAME`` -> an existing local directory -> a hub id. Hub ids are fetched
with the real ``from_pretrained`` (so users with a hub get the real thing); when the hub cannot
be reached the error is one sentence saying what to pass instead, after a short reachability
probe rather than transformers' 25 s of retries. ``weights="random"`` builds the real
architecture untrained, from the bundled configs when offline.
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from llmcycle.core.errors import ModelSourceError
from llmcycle.core.hub import hub_reachable
from llmcycle.models.adapters import attach_adapter
from llmcycle.models.architectures import bundled_config, bundled_config_dict
from llmcycle.models.build import Kind, auto_class, build_random, model_kind  # model_kind: re-exported
from llmcycle.models.builtins import get_builtin
from llmcycle.models.chat import resolve_chat
from llmcycle.models.quantized import load_int8
from llmcycle.models.tokenizer import offline_tokenizer

log = logging.getLogger("llmcycle")

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
DTYPES = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16",
          "fp16": "float16", "float16": "float16"}


@dataclass
class LoadedModel:
    """A model ready to use: the torch module, its tokenizer and what kind of model it is."""

    model: Any
    tokenizer: Any
    kind: Kind
    source: str
    family: str
    untrained: bool = False
    notes: list[str] = field(default_factory=list)
    origin: str | None = None  # a load_model source that gives these weights again (None: changed in memory)
    chat: bool | None = None  # used in chat form (its chat template); None: auto, when the tokenizer has one

    @property
    def label(self) -> str:
        """The source, marked ``(untrained)`` when the weights are random."""
        return f"{self.source} (untrained)" if self.untrained else self.source


def resolve_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        if device == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if dtype not in DTYPES:
        raise ModelSourceError(f"dtype: unknown value {dtype!r}; valid: fp32, bf16, fp16, auto")
    return getattr(torch, DTYPES[dtype])


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelSourceError("device: 'cuda' asked for but no CUDA GPU is visible; use device='cpu' or 'auto'")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ModelSourceError(f"device: unknown value {device!r}; valid: cpu, cuda, auto")
    return device


def _hub_error(source: str, what: str = "model") -> ModelSourceError:
    return ModelSourceError(
        f"cannot reach the Hugging Face hub to fetch {what} {source} (offline or blocked); pass a local "
        "directory saved with save_pretrained, a builtin: model (see `llmcycle models`), or "
        "weights='random' to build its bundled architecture untrained"
    )


def _hub_tokenizer(source: str, kind: Kind, revision: str | None, notes: list[str]) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, revision=revision, local_files_only=not hub_reachable())
    except (OSError, ValueError):
        notes.append("tokenizer: offline MiniLM WordPiece stand-in (the real one needs the hub)")
        return offline_tokenizer(kind)


def _load_hub(source: str, weights: str, revision: str | None, torch_dtype: Any) -> LoadedModel:
    if not HUB_ID.match(source):
        raise ModelSourceError(
            f"model source {source!r} is neither builtin:NAME, an existing directory, nor a hub id (owner/name)"
        )
    online = hub_reachable()
    notes: list[str] = []
    if weights == "random":
        config, cdict = bundled_config(source), bundled_config_dict(source)
        if config is None:
            config = _hub_config(source, revision, online)
        model = build_random(config, cdict).to(torch_dtype)
        kind = model_kind(config)
        notes.append("weights: random (architecture only, UNTRAINED)")
        tok = _hub_tokenizer(source, kind, revision, notes)
        return LoadedModel(model, tok, kind, source, config.model_type, untrained=True, notes=notes)
    config = _hub_config(source, revision, online)
    kind = model_kind(config)
    try:
        model = auto_class(kind).from_pretrained(
            source, revision=revision, dtype=torch_dtype, local_files_only=not online)
    except OSError:
        raise _hub_error(source) from None
    tok = _hub_tokenizer(source, kind, revision, notes)
    return LoadedModel(model.eval(), tok, kind, source, config.model_type, notes=notes)


def _hub_config(source: str, revision: str | None, online: bool) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, revision=revision, local_files_only=not online)
    except OSError as exc:
        if not online:
            raise _hub_error(source) from None
        raise ModelSourceError(f"cannot load model {source} from the hub: {str(exc).splitlines()[0]}") from None
    except ValueError as exc:
        raise ModelSourceError(f"{source}: {str(exc).splitlines()[0]}") from None


def _adapter_base(path: Path) -> str:
    """The base model an adapter directory names (``base_model_name_or_path``)."""
    try:
        base = json.loads((path / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError) as exc:
        raise ModelSourceError(f"{path}/adapter_config.json cannot be read: {exc}") from None
    if not base:
        raise ModelSourceError(f"{path} holds a PEFT adapter that does not name its base model; pass the base as "
                               "the source and the adapter with adapter=...")
    return str(base)


def check_weight_files(path: Path) -> None:
    """Every ``*.safetensors`` file in model folder ``path`` is whole: a header that parses and tensors that lie
    inside the file. A truncated, empty or garbage file is a ``ModelSourceError`` naming it (read before any
    weight is loaded; safetensors itself would fail with a Rust error)."""
    for file in sorted(path.glob("*.safetensors")):
        size = file.stat().st_size
        what = f"{file}: not a complete safetensors file"
        if size < 8:
            raise ModelSourceError(f"{what} ({size} bytes); save the model again (save_pretrained)")
        with file.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > min(size - 8, 100_000_000):
                raise ModelSourceError(f"{what} (its header claims {n:,} bytes, the file has {size:,}); save the "
                                       "model again (save_pretrained)")
            try:
                header = json.loads(fh.read(n))
            except (ValueError, UnicodeDecodeError):
                raise ModelSourceError(f"{what} (its header is not valid JSON); save the model again") from None
        if not isinstance(header, dict):
            raise ModelSourceError(f"{what} (its header is not a JSON object); save the model again")
        ends = [t.get("data_offsets", [0, 0])[1] for k, t in header.items() if k != "__metadata__" and
                isinstance(t, dict) and isinstance(t.get("data_offsets"), list) and len(t["data_offsets"]) == 2]
        end = max(ends, default=0)
        if not isinstance(end, int) or 8 + n + end > size:
            raise ModelSourceError(f"{what}: truncated (its tensors need {8 + n + int(end):,} bytes, the file has "
                                   f"{size:,}); save the model again or copy it whole")


def _load_local(path: Path, weights: str, torch_dtype: Any) -> LoadedModel:
    from transformers import AutoConfig, AutoTokenizer

    if not (path / "config.json").is_file():
        raise ModelSourceError(f"{path} is not a model directory: no config.json (save one with save_pretrained)")
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelSourceError(f"{path}/config.json cannot be read: {str(exc).splitlines()[0]}") from None
    kind = model_kind(config)
    if weights == "random":
        model = build_random(config).to(torch_dtype)
    elif (path / "llmcycle_quantization.json").is_file():  # llmcycle's int8 format (models.quantized)
        check_weight_files(path)
        model = load_int8(path, kind)
    else:
        check_weight_files(path)
        try:
            model = auto_class(kind).from_pretrained(path, dtype=torch_dtype)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelSourceError(f"{path}: cannot load weights: {(str(exc).splitlines() or [repr(exc)])[0]}") \
                from None
        except Exception as exc:  # safetensors' own error type (a Rust exception) for what the check let through
            if type(exc).__name__ != "SafetensorError":
                raise
            raise ModelSourceError(f"{path}: cannot load weights: {str(exc).splitlines()[0]}") from None
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError):
        raise ModelSourceError(f"{path} has no tokenizer files; save the tokenizer next to the model "
                               "(tokenizer.save_pretrained)") from None
    return LoadedModel(model.eval(), tok, kind, str(path), config.model_type, untrained=weights == "random")


def _load_builtin(source: str, weights: str, torch_dtype: Any) -> LoadedModel:
    spec = get_builtin(source)
    tok = offline_tokenizer(spec.tok_kind)
    model = spec.build(tok)
    if weights == "random" and spec.pretrained:
        model = build_random(model.config)
    untrained = weights == "random" or not spec.pretrained
    family = getattr(model.config, "model_type", spec.kind)
    notes = [] if not untrained else ["weights: random (UNTRAINED)"]
    return LoadedModel(model.to(torch_dtype).eval(), tok, spec.kind, f"builtin:{spec.name}", family, untrained, notes)


def load_model(
    source: str,
    *,
    weights: Literal["pretrained", "random"] = "pretrained",
    dtype: str = "fp32",
    device: str = "cpu",
    revision: str | None = None,
    adapter: str | Path | None = None,
    chat: str | bool | None = "auto",
) -> LoadedModel:
    """Load a model, its tokenizer and its kind.

    Args:
        source: ``builtin:NAME`` (``llmcycle models`` lists them), a directory written by
            ``save_pretrained`` (model and tokenizer), or a Hugging Face hub id.
        weights: ``pretrained``, or ``random`` for the same architecture untrained (bundled configs
            make this work offline for common hub ids).
        dtype: ``fp32``, ``bf16``, ``fp16`` or ``auto``.
        device: ``cpu``, ``cuda`` or ``auto``.
        revision: hub branch, tag or commit.
        adapter: a PEFT adapter directory to attach. A ``source`` that is itself an adapter
            directory loads the base model its ``adapter_config.json`` names, then the adapter.
        chat: ``auto`` (chat form when the tokenizer has a chat template), ``always`` (an error when it has
            none) or ``never``: how every stage renders this model's prompts and training examples
            (``llmcycle.prompts.chat``).
    """
    loaded = _load_model(source, weights=weights, dtype=dtype, device=device, revision=revision, adapter=adapter)
    if chat not in (None, "auto"):
        loaded.chat = resolve_chat(loaded.tokenizer, chat, loaded.source)
    return loaded


def _load_model(source: str, *, weights: Literal["pretrained", "random"], dtype: str, device: str,
                revision: str | None, adapter: str | Path | None) -> LoadedModel:
    if not isinstance(source, str) or not source.strip():
        raise ModelSourceError("model source is empty; pass a hub id, a local directory or builtin:NAME")
    if weights not in ("pretrained", "random"):
        raise ModelSourceError(f"weights: unknown value {weights!r}; valid: pretrained, random")
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    source = source.strip()
    path = Path(source).expanduser()
    if source.startswith("builtin:"):
        loaded = _load_builtin(source, weights, torch_dtype)
    elif path.is_dir() and (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
        # an adapter folder names its base, which may itself be an adapter trained before (adapters stack)
        loaded = _load_model(_adapter_base(path), weights=weights, dtype=dtype, device=device, revision=revision,
                             adapter=path)
        if adapter is None:
            return loaded
        loaded = attach_adapter(loaded, adapter)  # merges the one below first
        loaded.origin = str(Path(adapter).expanduser()) if weights == "pretrained" else None
        return loaded
    elif path.is_dir():
        loaded = _load_local(path, weights, torch_dtype)
    elif path.exists():
        raise ModelSourceError(f"{source} is a file; pass the directory that holds config.json")
    elif source.startswith((".", "/", "~")) or os.sep in source.rstrip(os.sep) and source.count("/") > 1:
        raise ModelSourceError(f"no such model directory: {source}")
    else:
        loaded = _load_hub(source, weights, revision, torch_dtype)
    loaded.model.to(device)
    if weights == "pretrained":
        loaded.origin = str(Path(adapter).expanduser()) if adapter is not None else source
    return attach_adapter(loaded, adapter) if adapter is not None else loaded
