"""Deployment optimisation: quantise, prune, distil, merge, each measured by the same table.

* ``run_optimize(loaded, rows, OptimizeConfig, out_dir)``: build every variant from the
  unoptimised model and measure size on disk, parameters, generation speed and ROUGE alike
  (``OptimizeResult.table()``; the optimize stage writes its report section).
* ``quantize``: fp16/bf16 casts, int8 dynamic quantisation (CPU), bitsandbytes 8/4-bit (CUDA).
* ``prune``: magnitude pruning (global or per layer, unstructured or rows), sparsity measured.
* ``distil``: a student with fewer decoder layers, trained on soft targets or teacher summaries.
* merging a LoRA adapter is ``llmcycle.models.adapters.merge_adapter`` (method ``merge``).
"""

from llmcycle.core.errors import OptimizeError
from llmcycle.optimize.config import DistilOptions, MeasureOptions, OptimizeConfig, PruneOptions
from llmcycle.optimize.run import OptimizeResult, check_methods, run_optimize

__all__ = ["DistilOptions", "MeasureOptions", "OptimizeConfig", "OptimizeError", "OptimizeResult", "PruneOptions",
           "check_methods", "run_optimize"]
