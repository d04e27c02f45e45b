"""Does a chat model learn to stop where generation stops? (#21: the end-of-turn token in the labels)

``builtin:tiny-chat`` (a random Llama-family model with a ChatML chat template and two end ids in its
generation config, ``<|im_end|>`` and ``[SEP]``) is fine-tuned on the builtin dialogues' train split
(152 rows) in chat form: each row becomes a user turn (the dialogue) and an assistant turn (its
summary), the loss on the assistant turn only, its labels ending with ``<|im_end|>``
(``llmcycle.tuning.data.tokenize_chat``). Greedy generation, on prompts rendered by the same chat path
as the server's, is counted as stopped when it ends at an end id (finish reason ``eos``) within
``max_new_tokens``, before and after, on two sets: ``tuned_prompts``, the first 100 train dialogues
(the must-show's 100 prompts: does the model end its turn where generation stops?), and ``held_out``,
the 38 validation and test dialogues no step saw (does a model this small, 2 layers of width 64, also
end its turn on prompts it never saw?).

    python benchmarks/chat_stop.py

writes ``benchmarks/results/chat_stop.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import _common  # noqa: E402


def split_rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The train split's rows, and the validation and test rows (held out)."""
    from llmcycle.data import load_data

    data = load_data("builtin:dialogues")
    held = [dict(r) for r in data["validation"]] + [dict(r) for r in data["test"]]
    return [dict(r) for r in data["train"]], held


def stop_rate(loaded: Any, rows: list[dict[str, Any]], max_new_tokens: int) -> dict[str, Any]:
    """Greedy generation on ``rows`` (chat prompts as every stage builds them): how many end at an end id."""
    from llmcycle.generation import GenerationSettings, generate_detailed
    from llmcycle.models.chat import uses_chat
    from llmcycle.prompts import build_prompts

    prompts = build_prompts("none", rows, tokenizer=loaded.tokenizer, chat=uses_chat(loaded)).texts
    outs = generate_detailed(loaded, prompts, GenerationSettings(max_new_tokens=max_new_tokens), batch_size=16)
    first = [r.outputs[0] for r in outs]
    stopped = sum(o.finish_reason == "eos" for o in first)
    ends = sorted({loaded.tokenizer.convert_ids_to_tokens(o.token_ids[-1]) for o in first
                   if o.finish_reason == "eos"})
    return {"prompts": len(rows), "stopped": stopped, "rate": stopped / len(rows), "end_tokens": ends,
            "mean_new_tokens": round(sum(len(o.token_ids) for o in first) / len(first), 1),
            "examples": [o.text for o in first[:3]]}


def run(steps: int, max_new_tokens: int, out_dir: Path, learning_rate: float = 3e-3,
        max_input_tokens: int = 256) -> dict[str, Any]:
    from llmcycle.models import load_model
    from llmcycle.tuning import train

    train_rows, held = split_rows()
    loaded = load_model("builtin:tiny-chat")
    sets = {"tuned_prompts": train_rows[:100], "held_out": held}
    before = {name: stop_rate(loaded, rows, max_new_tokens) for name, rows in sets.items()}
    cfg = {"method": "full", "max_steps": steps, "batch_size": 8, "learning_rate": learning_rate,
           "warmup_ratio": 0.05, "max_input_tokens": max_input_tokens, "max_target_tokens": 64, "eval_every": 10_000,
           "save_every": 10_000, "seed": 0}
    start = time.perf_counter()
    result = train(loaded, (train_rows, None), cfg, out_dir)
    after = {name: stop_rate(loaded, rows, max_new_tokens) for name, rows in sets.items()}
    return {"before": before, "after": after, "train_s": round(time.perf_counter() - start, 1),
            "final_loss": result.train_loss[-1][1] if result.train_loss else None, "tune": cfg}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--max-input-tokens", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = run(args.steps, args.max_new_tokens, Path(tmp) / "tune", args.learning_rate, args.max_input_tokens)
    out |= {"model": "builtin:tiny-chat", "data": "builtin:dialogues: the 152 train rows in chat form; prompts: "
            "the first 100 train dialogues, and the 38 validation and test dialogues", "machine": _common.machine(),
            "versions": _common.versions(), "command": _common.command()}
    _common.write_json("chat_stop", out)
    for name in out["before"]:
        b, a = out["before"][name], out["after"][name]
        print(f"{name}: stopped at an end id before {b['stopped']}/{b['prompts']}, after {a['stopped']}/{a['prompts']}")
    print(f"{out['train_s']} s of training")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
