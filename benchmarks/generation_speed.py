"""Batched generation engine vs the per-example loop of the course lab, on real DialogSum dialogues.

The lab summarises one dialogue at a time: tokenise it, ``model.generate``, decode. The engine
(``llmcycle.generation.generate``) sorts the inputs by length and decodes padded batches with the
KV cache. Both sides use the same greedy settings; the script checks that they produce the same
token ids and texts, and times each side (best of ``--reps`` alternating repetitions, so a burst of
load on this shared machine hits both sides alike). Each model runs in its own process.

    python benchmarks/generation_speed.py                 # 64 test dialogues, minilm-seq2seq and tiny-t5
    python benchmarks/generation_speed.py --n 16 --reps 1 --batch-sizes 16  # quick look

Writes ``benchmarks/results/generation_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command, machine, versions, write_json  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dialogsum" / "dialogsum.test.jsonl"
MODELS = ["builtin:minilm-seq2seq", "builtin:tiny-t5"]
# Random tiny-t5 ties its output head to its embeddings and starts decoding from token 0 ([PAD]), so
# greedy decoding repeats [PAD] for ever (an empty text, trivially "identical"); a repetition
# penalty makes it emit varied tokens. Both sides get the same settings.
EXTRA = {"builtin:tiny-t5": {"repetition_penalty": 1.3}}


def lab_loop(loaded, dialogues, kwargs):
    """The course lab: one dialogue at a time. Returns (texts, generated ids up to the end token)."""
    import torch

    tok, model = loaded.tokenizer, loaded.model
    eos = model.generation_config.eos_token_id
    texts, ids = [], []
    for d in dialogues:
        enc = tok(d, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**enc, **kwargs)
        row = out[0, 1:].tolist()  # drop the decoder start token
        ids.append(row[:row.index(eos) + 1] if eos in row else row)
        texts.append(tok.decode(out[0], skip_special_tokens=True).strip())
    return texts, ids


def run_one(model: str, n: int, batch_sizes: list[int], max_new_tokens: int, reps: int) -> list[dict]:
    """Time the lab loop and the engine at each batch size on one model; one run record per batch size."""
    import torch

    from llmcycle.generation import GenerationSettings, generate_detailed
    from llmcycle.models import load_model

    dialogues = [json.loads(line)["dialogue"] for line in DATA.open(encoding="utf-8")][:n]
    loaded = load_model(model)
    fields = {"max_new_tokens": max_new_tokens, "min_new_tokens": max_new_tokens, **EXTRA.get(model, {})}
    settings = GenerationSettings(**fields)
    lab_kwargs = {**fields, "do_sample": False, "num_beams": 1}
    generate_detailed(loaded, dialogues[:2], settings.model_copy(update={"max_new_tokens": 4, "min_new_tokens": 4}))
    loop_times: list[float] = []
    batch_times: dict[int, list[float]] = {b: [] for b in batch_sizes}
    batch_results: dict[int, list] = {}
    for _ in range(reps):  # alternate the sides so load bursts hit both
        t0 = time.perf_counter()
        loop_texts, loop_ids = lab_loop(loaded, dialogues, lab_kwargs)
        loop_times.append(time.perf_counter() - t0)
        for b in batch_sizes:
            t0 = time.perf_counter()
            batch_results[b] = generate_detailed(loaded, dialogues, settings, batch_size=b)
            batch_times[b].append(time.perf_counter() - t0)
    lengths = [len(loaded.tokenizer(d)["input_ids"]) for d in dialogues]
    loop_s = min(loop_times)
    runs = []
    for b in batch_sizes:
        texts = [r.text for r in batch_results[b]]
        ids = [r.outputs[0].token_ids for r in batch_results[b]]
        batched_s = min(batch_times[b])
        runs.append({
            "model": model, "n": n, "batch_size": b, "settings": {**fields, "decoding": "greedy"},
            "batched_s": round(batched_s, 3), "loop_s": round(loop_s, 3), "speedup": round(loop_s / batched_s, 2),
            "identical_outputs": texts == loop_texts, "identical_token_ids": ids == loop_ids,
            "n_different": sum(a != c for a, c in zip(ids, loop_ids)),
            "loop_reps_s": [round(t, 3) for t in loop_times], "batched_reps_s": [round(t, 3) for t in batch_times[b]],
            "tokens_generated": sum(len(i) for i in ids),
            "input_tokens": {"min": min(lengths), "max": max(lengths), "mean": round(sum(lengths) / n, 1)},
            "empty_outputs": sum(not t for t in texts), "torch_threads": torch.get_num_threads(),
            "example_output": texts[0][:200],
        })
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="DialogSum test dialogues (the first n).")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32], help="Engine batch sizes to time.")
    ap.add_argument("--max-new-tokens", type=int, default=60, help="Tokens generated per dialogue (min = max).")
    ap.add_argument("--reps", type=int, default=2, help="Repetitions per side; the best is reported.")
    ap.add_argument("--models", nargs="+", default=MODELS)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one model, print its JSON
    args = ap.parse_args()
    if not DATA.is_file():
        sys.exit(f"DialogSum test data not found at {DATA}")
    if args.one:
        print(json.dumps(run_one(args.one, args.n, args.batch_sizes, args.max_new_tokens, args.reps)))
        return
    runs = []
    for model in args.models:  # one process per model: neither run warms or fragments memory for the other
        cmd = [sys.executable, __file__, "--one", model, "--n", str(args.n), "--batch-sizes",
               *map(str, args.batch_sizes), "--max-new-tokens", str(args.max_new_tokens), "--reps", str(args.reps)]
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
        for run in json.loads(out.strip().splitlines()[-1]):
            print(f"{model}, batch {run['batch_size']}: loop {run['loop_s']:.1f} s, batched {run['batched_s']:.1f} s, "
                  f"speedup {run['speedup']}x, identical outputs: {run['identical_outputs']}, identical token ids: "
                  f"{run['identical_token_ids']}")
            runs.append(run)
    path = write_json("generation_speed", {
        "runs": runs, "machine": machine(), "versions": versions("torch", "transformers", "llmcycle"),
        "command": command(), "data": "DialogSum test split, first n dialogues (dialogsum.test.jsonl)",
        "method": "loop: the lab's one-dialogue-at-a-time tokenise/generate/decode; batched: "
                  "llmcycle.generation.generate_detailed (length-sorted padded batches, KV cache). Same greedy "
                  "settings on both sides; best of reps, the sides alternating. min_new_tokens = max_new_tokens, so "
                  "every dialogue gets exactly that many tokens on both sides (equal decoding work; an untrained "
                  "model's early end token cannot favour either side). Identity is checked on token ids and texts.",
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
