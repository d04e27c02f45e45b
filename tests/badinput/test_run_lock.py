"""One process at a time in a run directory: a second run refuses naming the first; a lock left by a killed
process is taken over; the lock goes on exit, failure and Ctrl-C; under ``accelerate launch`` only the main
process holds it. Processes meet on FIFOs, never on sleeps."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from llmcycle.core.errors import LLMCycleError
from llmcycle.core.lock import LOCK_NAME, FolderLock, FolderLocked, process_start, stale_reason
from tests.cli_helpers import run_cli

REPO = Path(__file__).resolve().parents[2]
HOLD = Path(__file__).with_name("hold_run.py")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture
def holder(tmp_path):
    """Start a real run that holds ``tmp_path/run`` (its stage waits on a FIFO); yields (process, run dir, go)."""
    recipe = tmp_path / "hold.yaml"
    recipe.write_text("model: {source: builtin:tiny-t5}\nstages:\n  - hold: {}\n")
    started, release = tmp_path / "started", tmp_path / "release"
    os.mkfifo(started)
    os.mkfifo(release)
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(HOLD), str(recipe), str(run), str(started), str(release)],
                            cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    def unblock_if_it_ends() -> None:  # a run that fails before its stage never opens the FIFO: open it instead
        proc.wait()
        with open(started, "w"):
            pass

    threading.Thread(target=unblock_if_it_ends, daemon=True).start()
    with open(started) as fh:  # blocks until the run's stage is running: it holds the lock now
        pid = fh.read()
    assert pid == str(proc.pid), proc.stderr.read() if proc.poll() is not None else pid

    def go() -> None:
        with open(release, "w") as fh:
            fh.write("go")

    yield proc, run, go
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _second_run(tmp_path: Path, run: Path) -> subprocess.CompletedProcess:
    recipe = tmp_path / "second.yaml"
    recipe.write_text("model: {source: builtin:tiny-t5}\nstages:\n  - estimate: {batch_size: 1, input_tokens: 8, "
                      "output_tokens: 8}\n")
    return subprocess.run([sys.executable, "-m", "llmcycle", "run", str(recipe), "--run-dir", str(run)], cwd=tmp_path,
                          env=_env(), capture_output=True, text=True, timeout=300)


def test_a_second_run_on_the_same_folder_refuses_naming_the_first(tmp_path, holder):
    proc, run, go = holder
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    second = _second_run(tmp_path, run)
    assert second.returncode == 1
    lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in second.stderr
    assert f"in use by pid {proc.pid} on host {socket.gethostname()} since " in lines[0] and str(run) in lines[0]
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == before  # the first run's folder untouched
    go()
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    assert (run / "stages" / "01-hold.done.json").is_file() and not (run / LOCK_NAME).exists()
    saved = json.loads((run / "recipe.json").read_text())
    assert [next(iter(s)) for s in saved["stages"]] == ["hold"]  # the second run wrote nothing into it


@pytest.mark.parametrize("command", ["tune", "align", "optimize"])
def test_a_stage_command_on_a_held_run_dir_refuses_too(tmp_path, holder, monkeypatch, capsys, command):
    """``tune``/``align``/``optimize --run-dir X`` take the same lock as ``llmcycle run``: one line, exit 1, the
    folder untouched, the first run going on to finish."""
    proc, run, go = holder
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    code, _, err = run_cli(monkeypatch, capsys, command, "builtin:tiny-t5", "--run-dir", str(run))
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert f"{run}: this run directory is in use by pid {proc.pid} on host {socket.gethostname()}" in err
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == before
    go()
    assert proc.wait(timeout=300) == 0, proc.stderr.read()


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path, holder):
    proc, run, _ = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    left = json.loads((run / LOCK_NAME).read_text())
    assert left["pid"] == proc.pid  # the killed run could not clean up
    second = _second_run(tmp_path, run)
    assert second.returncode == 0, second.stderr
    assert f"took over the lock of {run}, left by pid {proc.pid}" in second.stderr
    assert (run / "stages" / "01-estimate.done.json").is_file() and not (run / LOCK_NAME).exists()


def test_stale_holders_pid_gone_or_reused_and_live_ones():
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "process_start": process_start(os.getpid())}
    assert stale_reason({**me, "pid": int(gone.stdout)}) == f"pid {int(gone.stdout)} is no longer running"
    assert "another process" in stale_reason({**me, "process_start": "1"})  # same pid, another start: reused
    assert stale_reason(me) is None
    assert stale_reason({**me, "host": "elsewhere"}) is None  # cannot be checked from here: held
    assert stale_reason({}) == "it names no process"


def test_without_flock_the_holder_file_decides(tmp_path, monkeypatch):
    import llmcycle.core.lock as lock_module

    monkeypatch.setattr(lock_module, "fcntl", None)
    live = {"pid": os.getppid(), "host": socket.gethostname(), "process_start": process_start(os.getppid()),
            "since": "2026-12-06T07:00:00+00:00", "argv": ["llmcycle", "run"]}
    (tmp_path / LOCK_NAME).write_text(json.dumps(live))
    with pytest.raises(FolderLocked, match=f"in use by pid {os.getppid()} on host"):
        FolderLock(tmp_path).acquire()
    (tmp_path / LOCK_NAME).write_text(json.dumps({**live, "process_start": "1"}))  # its pid, reused since
    with FolderLock(tmp_path) as lock:
        assert lock.took_over is not None and json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_NAME).exists()


def test_the_lock_is_released_after_failure_and_ctrl_c(tmp_path, monkeypatch, capsys):
    from tests.stage_helpers import spy_on

    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: {source: builtin:tiny-t5}\nstages:\n  - estimate: {}\n  - info: {}\n")
    run = tmp_path / "run"

    def interrupted(ctx, cfg, out):
        raise KeyboardInterrupt

    spy_on(monkeypatch, "info", interrupted)
    code, _, err = run_cli(monkeypatch, capsys, "run", str(recipe), "--run-dir", str(run))
    assert code == 130
    assert err.strip().splitlines() == [f"interrupted; resume with: llmcycle run --run-dir {run}"]
    assert not (run / LOCK_NAME).exists() and (run / "stages" / "01-estimate.done.json").is_file()

    def failing(ctx, cfg, out):
        raise LLMCycleError("the model exploded")

    spy_on(monkeypatch, "info", failing)
    code, _, err = run_cli(monkeypatch, capsys, "run", "--run-dir", str(run))  # the run's own recipe.json
    assert code == 1 and "the model exploded" in err and f"resume with: llmcycle run --run-dir {run}" in err
    assert not (run / LOCK_NAME).exists()
    monkeypatch.undo()
    code, out, _ = run_cli(monkeypatch, capsys, "run", "--run-dir", str(run))  # resumed: estimate skipped
    assert code == 0 and "[01-estimate] already done with this config: skipped" in out


def test_under_accelerate_only_the_main_process_holds_the_lock(tmp_path, monkeypatch):
    from llmcycle.recipe import runner
    from llmcycle.recipe.recipe import Recipe

    recipe = Recipe.from_dict({"model": {"source": "builtin:tiny-t5"}, "stages": [{"estimate": {}}]})
    monkeypatch.setattr(runner, "_barrier", lambda: None)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    run, lock = runner.open_run(recipe, tmp_path / "run")
    assert lock is not None and (tmp_path / "run" / LOCK_NAME).is_file()
    monkeypatch.setenv("RANK", "1")
    other, none = runner.open_run(recipe, tmp_path / "run")  # a worker does not take the lock the main one holds
    assert none is None and other.path == run.path
    lock.release()
    assert not (tmp_path / "run" / LOCK_NAME).exists()
