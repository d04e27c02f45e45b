"""How long does the README's promise take on a fresh clone? Setup, then `llmcycle run`, timed.

Clones this repository (its committed HEAD) into a new folder, runs the README's setup
(`bash scripts/setup.sh`: a new virtual environment, PyTorch CPU, llmcycle and its dependencies)
and then `llmcycle run` (the offline quickstart, every stage), and checks the report: every
recipe stage has its section and nothing says "(not run)". Writes
``benchmarks/results/quickstart.json`` here with the wall time of each part.

    python benchmarks/quickstart.py                      # clones into a temporary folder
    python benchmarks/quickstart.py --clone-dir /tmp/qs  # or a folder of your choice (must not exist)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import _common  # noqa: E402


def _timed(cmd: list[str], cwd: Path, log: Path) -> float:
    start = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, env=os.environ | {"CI": "true"})
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}); see {log}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clone-dir", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the clone afterwards")
    args = parser.parse_args()
    clone = Path(args.clone_dir) if args.clone_dir else Path(tempfile.mkdtemp(prefix="llmcycle-fresh-")) / "repo"
    if clone.exists():
        sys.exit(f"--clone-dir {clone} exists; give a new folder")
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True).stdout.strip()
    logs = clone.parent
    setup_s = _timed(["bash", "scripts/setup.sh"], clone, logs / "setup.log")
    run_s = _timed([str(clone / ".venv" / "bin" / "llmcycle"), "run", "--runs-dir", str(clone / "runs")], clone,
                   logs / "run.log")
    run_dir = next((clone / "runs").glob("quickstart-*"))
    html = run_dir / "report.html"
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    import yaml

    recipe = yaml.safe_load((clone / "recipes" / "quickstart.yaml").read_text())
    stages = [next(iter(s)) for s in recipe["stages"]]
    sections = re.findall(r"^## (.+)$", md, flags=re.M)
    out = {"wall_s": round(run_s, 1), "setup_s": round(setup_s, 1), "total_s": round(setup_s + run_s, 1),
           "cores": os.cpu_count(), "stages": stages, "n_sections": len(sections), "sections": sections,
           "not_run": md.count("(not run)"), "report_html_bytes": html.stat().st_size, "commit": head,
           "machine": _common.machine(), "versions": _common.versions(), "command": _common.command(),
           "note": "wall_s: `llmcycle run` alone; setup_s: `bash scripts/setup.sh` in the fresh clone "
                   "(new venv; PyTorch from local disk, the rest from PyPI)"}
    path = _common.write_json("quickstart", out)
    print({k: v for k, v in out.items() if k not in ("machine", "versions", "sections")})
    print(f"wrote {path}")
    if not args.keep:
        shutil.rmtree(clone.parent if not args.clone_dir else clone, ignore_errors=True)


if __name__ == "__main__":
    main()
