"""How long does `llmcycle ui` take to show its first page? From starting the command to the page and the data
its first view asks for, over several fresh processes; the median is the figure (goal: at most 5 s).

Each try runs ``python -m llmcycle.cli ui --runs-dir DIR --port 0`` as a new process, reads the address it prints,
then fetches what the page fetches when it opens: ``/``, ``/static/app.js``, ``/static/style.css``,
``/api/options``, ``/api/jobs`` and ``/api/runs``. No model is loaded at start-up or by these requests (the
playground loads one only when asked to generate), so model loading is excluded by construction. The runs
directory holds ``--runs`` copies of one small finished run (made once, before timing: that takes a model load),
so the runs table has something to read. Writes ``benchmarks/results/ui.json``.

    python benchmarks/ui_startup.py                  # 5 tries, 10 runs listed
    python benchmarks/ui_startup.py --tries 9 --runs 50
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import _common  # noqa: E402

FIRST_VIEW = ["/", "/static/app.js", "/static/style.css", "/api/options", "/api/jobs", "/api/runs"]
GOAL_S = 5.0


def make_runs(root: Path, copies: int) -> None:
    """``copies`` copies of one finished run (estimates and a 2-step LoRA tune of builtin:tiny-t5)."""
    from llmcycle.recipe.recipe import Recipe
    from llmcycle.recipe.runner import run_recipe

    recipe = Recipe.from_dict({
        "name": "bench", "runs_dir": str(root), "model": {"source": "builtin:tiny-t5"},
        "data": {"source": "builtin:dialogues", "split": "test", "n": 4},
        "stages": [{"estimate": {"batch_size": 2, "input_tokens": 64, "output_tokens": 16}},
                   {"tune": {"method": "lora", "lora": {"r": 4}, "max_steps": 2, "batch_size": 2, "log_every": 1,
                             "eval_every": None, "max_input_tokens": 48, "max_target_tokens": 12}}]})
    first = run_recipe(recipe, run_dir=root / "bench-0").path
    for i in range(1, copies):
        shutil.copytree(first, root / f"bench-{i}")


def one_start(runs: Path) -> dict[str, float]:
    """Start the UI, time the first view's requests, stop it."""
    env = os.environ | {"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "llmcycle.cli", "ui", "--runs-dir", str(runs), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
    try:
        line = proc.stdout.readline()  # "llmcycle ui: http://127.0.0.1:PORT/ (...)"
        if "http://" not in line:
            sys.exit(f"the UI did not start: {line}{proc.stdout.read() if proc.poll() is not None else ''}")
        url = line.split("http://", 1)[1].split("/", 1)[0]
        listening = time.perf_counter() - start
        for path in FIRST_VIEW:
            with urllib.request.urlopen(f"http://{url}{path}", timeout=60) as response:
                response.read()
                assert response.status == 200, (path, response.status)
        first_page = time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"listening_s": round(listening, 3), "first_view_s": round(first_page, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tries", type=int, default=5, help="fresh UI processes timed")
    parser.add_argument("--runs", type=int, default=10, help="runs in the runs directory the UI lists")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="llmcycle-ui-bench-"))
    try:
        make_runs(work / "runs", args.runs)
        one_start(work / "runs")  # warm the file cache once (not counted), as a second start of the day would be
        tries = [one_start(work / "runs") for _ in range(args.tries)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    median = statistics.median(t["first_view_s"] for t in tries)
    result = {
        "what": "seconds from starting `llmcycle ui` to the first view served (the page, its script and style, "
                "/api/options, /api/jobs, /api/runs); fresh process per try; no model is loaded",
        "first_view_s_median": round(median, 3),
        "listening_s_median": round(statistics.median(t["listening_s"] for t in tries), 3),
        "goal_s": GOAL_S, "met": median <= GOAL_S, "runs_listed": args.runs, "tries": tries,
        "machine": _common.machine(), "versions": _common.versions("torch", "transformers", "fastapi", "uvicorn",
                                                                   "llmcycle"),
        "command": _common.command(),
    }
    path = _common.write_json("ui", result)
    print(f"UI first view in {median:.2f} s (median of {args.tries}; goal <= {GOAL_S:g} s); wrote {path}")


if __name__ == "__main__":
    main()
