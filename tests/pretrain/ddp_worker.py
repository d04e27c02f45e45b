"""Run by ``accelerate launch`` from test_pretrain_chain.py: pre-train a tiny GPT-2 from scratch through
``llmcycle.pretrain.train.pretrain`` and write what this process ended with (rank, world size, tokens, a hash
of its weights)."""

import hashlib
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from llmcycle.data import load_data  # noqa: E402
from llmcycle.pretrain.config import PretrainConfig  # noqa: E402
from llmcycle.pretrain.train import pretrain  # noqa: E402

out = Path(sys.argv[1])
data = load_data("builtin:dialogues")
cfg = PretrainConfig.from_dict({"architecture": {"family": "gpt2", "layers": 1, "width": 32, "heads": 2,
                                                 "context": 32},
                                "max_steps": 4, "batch_size": 4, "save_every": 2, "eval_blocks": 2,
                                "general_text": None, "learning_rate": 1e-2})
result = pretrain(cfg, out / "run", texts=[r["input"] for r in data["train"]],
                  heldout=[r["input"] for r in data["validation"]])
model = result.loaded.model
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for _, p in sorted(model.named_parameters())))
rank = int(os.environ.get("RANK", "0"))
(out / f"rank{rank}.json").write_text(json.dumps({
    "rank": rank, "world": int(os.environ.get("WORLD_SIZE", "1")), "hash": digest.hexdigest(),
    "steps": result.steps, "tokens": result.tokens}))
