"""Run by ``accelerate launch`` from test_tuning_distributed.py: train a tiny T5 through ``llmcycle.tuning.train``
and write what this process ended with (rank, world size, a hash of its weights, how many tensors moved)."""

import hashlib
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from conftest import make_rows  # noqa: E402

from llmcycle.models import load_model  # noqa: E402
from llmcycle.tuning import train  # noqa: E402

out = Path(sys.argv[1])
loaded = load_model("builtin:tiny-t5")
before = {n: p.detach().clone() for n, p in loaded.model.named_parameters()}
cfg = {"method": "full", "max_steps": 4, "batch_size": 2, "learning_rate": 1e-2, "log_every": 1, "save_every": 2,
       "max_input_tokens": 48, "max_target_tokens": 16}
result = train(loaded, (make_rows(16), make_rows(4, 100)), cfg, out / "run")
params = sorted(result.loaded.model.named_parameters())
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for _, p in params)).hexdigest()
rank = int(os.environ.get("RANK", "0"))
(out / f"rank{rank}.json").write_text(json.dumps({
    "rank": rank, "world": int(os.environ.get("WORLD_SIZE", "1")), "hash": digest, "steps": result.steps,
    "changed": sum(not torch.equal(before[n], p) for n, p in params), "tensors": len(params)}))
