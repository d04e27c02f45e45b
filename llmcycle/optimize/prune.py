"""Magnitude pruning of linear layers with ``torch.nn.utils.prune``, made permanent and measured.

Unstructured pruning zeroes the smallest-magnitude weights, either globally (one threshold over
all selected layers) or per layer (the same share in each); structured pruning zeroes whole
output rows (neurons) by L2 norm. The pruning masks are folded into the weights
(``prune.remove``), so the result is a plain model that ``save_pretrained`` writes and any loader
reads; the zeros are stored densely (the file does not shrink; sparse kernels or a sparse format
would be needed for that). ``sparsity_report`` counts the zeros actually achieved.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, replace
from typing import Any

from llmcycle.core.errors import OptimizeError
from llmcycle.models.adapters import is_peft
from llmcycle.optimize.config import PruneOptions


@dataclass
class Sparsity:
    """Zeros among the pruned layers' weights and among all parameters."""

    pruned_layers: int
    pruned_weights: int
    pruned_zero: int
    total_params: int
    total_zero: int

    @property
    def selected(self) -> float:
        return self.pruned_zero / self.pruned_weights if self.pruned_weights else 0.0

    @property
    def overall(self) -> float:
        return self.total_zero / self.total_params if self.total_params else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"layers": self.pruned_layers, "weights": self.pruned_weights, "sparsity": round(self.selected, 4),
                "overall_sparsity": round(self.overall, 4)}


def _linear_types() -> tuple[type, ...]:
    import torch
    from transformers.pytorch_utils import Conv1D  # GPT-2's linear layer (weight stored in x out)

    return torch.nn.Linear, Conv1D


def prunable_layers(model: Any, exclude: list[str]) -> list[tuple[str, Any]]:
    """The linear modules (``nn.Linear``, GPT-2's ``Conv1D``) whose names match none of ``exclude`` and whose
    weight is not shared with another module."""
    pats = [re.compile(p) for p in exclude]
    layers = [(n, m) for n, m in model.named_modules()
              if isinstance(m, _linear_types()) and not any(p.search(n) for p in pats)]
    # a weight tied to another module (e.g. an output head tied to the embeddings) would be pruned there too
    seen: dict[int, int] = {}
    for _, m in model.named_modules():
        for p in m.parameters(recurse=False):
            seen[id(p)] = seen.get(id(p), 0) + 1
    return [(n, m) for n, m in layers if seen.get(id(m.weight), 0) <= 1]


def sparsity_report(model: Any, layers: list[tuple[str, Any]]) -> Sparsity:
    weights = sum(m.weight.numel() for _, m in layers)
    zeros = sum(int((m.weight == 0).sum()) for _, m in layers)
    params = {id(p): p for p in model.parameters()}.values()
    return Sparsity(len(layers), weights, zeros, sum(p.numel() for p in params),
                    sum(int((p == 0).sum()) for p in params))


def prune_model(loaded: Any, opts: PruneOptions) -> tuple[Any, Sparsity]:
    """A copy of ``loaded`` with its linear layers pruned as ``opts`` says; the achieved sparsity beside it."""
    import torch
    from torch.nn.utils import prune

    if is_peft(loaded.model):
        raise OptimizeError("prune: merge the LoRA adapter first (method merge); pruning would touch only the base")
    model = copy.deepcopy(loaded.model)
    layers = prunable_layers(model, opts.exclude)
    if not layers:
        raise OptimizeError(f"prune.exclude: {opts.exclude} leaves no linear layer to prune in {loaded.source}")
    with torch.no_grad():
        if opts.structured:
            for _, m in layers:  # output rows: dim 0 of a Linear's weight, dim 1 of a Conv1D's
                out_dim = 0 if isinstance(m, torch.nn.Linear) else 1
                prune.ln_structured(m, "weight", amount=opts.sparsity, n=2, dim=out_dim)
        elif opts.scope == "global":
            prune.global_unstructured([(m, "weight") for _, m in layers], pruning_method=prune.L1Unstructured,
                                      amount=opts.sparsity)
        else:
            for _, m in layers:
                prune.l1_unstructured(m, "weight", amount=opts.sparsity)
        for _, m in layers:
            prune.remove(m, "weight")
    how = "structured rows" if opts.structured else f"{opts.scope} unstructured"
    report = sparsity_report(model, layers)
    note = f"magnitude pruning ({how}): {report.selected:.1%} of {report.pruned_layers} linear layers' weights zero"
    return replace(loaded, model=model.eval(), notes=[*loaded.notes, note]), report
