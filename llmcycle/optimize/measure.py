"""One measurement for every variant: size on disk, parameters, generation speed and ROUGE.

Every variant (and the unoptimised baseline) generates for the same prompts with the same
settings: one warm-up call, then the whole set batched (throughput: inputs and generated tokens
per second; the speed-up of a variant is the baseline's seconds over its own) and the first
``latency_n`` prompts one at a time (median per-request latency). ROUGE is computed against the
rows' references. Size is the bytes of the directory the variant is saved to.
"""

from __future__ import annotations

import copy
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmcycle.evaluation.rouge import rouge
from llmcycle.generation import generate_detailed
from llmcycle.models.adapters import is_peft, save_adapter
from llmcycle.models.quantized import count_params, is_int8, save_int8  # count_params: re-exported
from llmcycle.optimize.config import MeasureOptions


@dataclass
class Measurement:
    """What one variant costs and how well it summarises."""

    name: str
    params: int
    size_mb: float
    seconds: float  # the whole evaluation set, batched
    inputs_per_s: float
    tokens_per_s: float
    latency_ms: float | None  # median, one request at a time
    rouge1: float
    rouge2: float
    rougeL: float
    n: int
    examples: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        return cls(**data)


def save_variant(loaded: Any, path: str | Path) -> Path:
    """Save ``loaded`` so that ``llmcycle.models.load_model(path)`` (or the adapter loader) reads it back."""
    path = Path(path)
    if is_int8(loaded.model):
        return save_int8(loaded, path)
    if is_peft(loaded.model):
        save_adapter(loaded, path)
        return path
    loaded.model.save_pretrained(str(path))
    loaded.tokenizer.save_pretrained(str(path))
    return path


def dir_mb(path: str | Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20


def size_on_disk_mb(loaded: Any, saved: str | Path | None = None) -> float:
    """MB of the saved model: ``saved`` if given, else written to a temporary folder and measured.

    A model with an unmerged LoRA adapter counts its base and its adapter (what deploying it needs).
    """
    if saved is not None and not is_peft(loaded.model):
        return dir_mb(saved)
    with tempfile.TemporaryDirectory(prefix="llmcycle-size-") as tmp:
        total = 0.0
        if is_peft(loaded.model):
            base = copy.deepcopy(loaded.model).unload()
            base.save_pretrained(str(Path(tmp) / "base"))
            total += dir_mb(Path(tmp) / "base")
            save_variant(loaded, Path(tmp) / "adapter")
            return total + dir_mb(Path(tmp) / "adapter")
        save_variant(loaded, Path(tmp) / "model")
        return dir_mb(Path(tmp) / "model")


def measure(loaded: Any, prompts: list[str], references: list[list[str]], opts: MeasureOptions, name: str,
            saved: str | Path | None = None, details: dict[str, Any] | None = None) -> Measurement:
    """Measure ``loaded`` on ``prompts`` (see the module docstring)."""
    settings = opts.generation
    generate_detailed(loaded, prompts[:2], settings, batch_size=opts.batch_size, truncate=True)  # warm-up
    start = time.perf_counter()
    results = generate_detailed(loaded, prompts, settings, batch_size=opts.batch_size, truncate=True)
    seconds = time.perf_counter() - start
    tokens = sum(r.outputs[0].new_tokens for r in results)
    latencies = []
    for p in prompts[: opts.latency_n]:
        t = time.perf_counter()
        generate_detailed(loaded, [p], settings, batch_size=1, truncate=True)
        latencies.append((time.perf_counter() - t) * 1000)
    preds = [r.text for r in results]
    scores = rouge(preds, references, rouge_types=("rouge1", "rouge2", "rougeL"))
    return Measurement(name, count_params(loaded.model), round(size_on_disk_mb(loaded, saved), 3),
                       round(seconds, 3), round(len(prompts) / seconds, 3), round(tokens / seconds, 2),
                       round(statistics.median(latencies), 1) if latencies else None,
                       round(scores["rouge1"], 4), round(scores["rouge2"], 4), round(scores["rougeL"], 4),
                       len(prompts), preds[:3], details or {})


def compare(base: Measurement, m: Measurement) -> dict[str, Any]:
    """The change of ``m`` against the baseline: ratios of size and speed, ROUGE differences in points."""
    return {"size_ratio": round(m.size_mb / base.size_mb, 4) if base.size_mb else None,
            "params_ratio": round(m.params / base.params, 4) if base.params else None,
            "speedup": round(base.seconds / m.seconds, 3) if m.seconds else None,
            "latency_ratio": round(m.latency_ms / base.latency_ms, 3) if m.latency_ms and base.latency_ms else None,
            "rouge1_drop": round((base.rouge1 - m.rouge1) * 100, 2),
            "rouge2_drop": round((base.rouge2 - m.rouge2) * 100, 2),
            "rougeL_drop": round((base.rougeL - m.rougeL) * 100, 2)}


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
