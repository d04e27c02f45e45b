"""Running a bad-input case as a user would, in-process, and judging what came out.

``run_case`` calls the real entry point (``llmcycle.cli.main``) with the case's arguments in the work
folder, catching what a terminal would show: the exit code, stdout, stderr, and a traceback (an exception
that escaped ``main``: the interpreter would print it). ``problems`` lists what is wrong with the outcome;
an empty list is a clear error. Shared by ``tests/badinput`` and ``benchmarks/reliability.py``.
"""

from __future__ import annotations

import contextlib
import io
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from tests.badinput.cases import Case


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root``: path -> (size, mtime ns); folders as (-1, 0)."""
    out: dict[str, tuple[int, int]] = {}
    for p in root.rglob("*"):
        st = p.lstat()
        out[str(p.relative_to(root))] = (-1, 0) if p.is_dir() else (st.st_size, st.st_mtime_ns)
    return out


def changes(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    """What was created, changed or removed between two snapshots."""
    return ([f"created {p}" for p in sorted(set(after) - set(before))]
            + [f"removed {p}" for p in sorted(set(before) - set(after))]
            + [f"changed {p}" for p in sorted(set(before) & set(after)) if before[p] != after[p]])


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    traceback: str | None = None
    changed: list[str] = field(default_factory=list)

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("error:")]


def run_case(case: Case, root: Path) -> Outcome:
    """``llmcycle ARGS`` in ``root`` (the current directory must be ``root``), in this process."""
    from llmcycle import cli

    before = snapshot(root)
    out, err = io.StringIO(), io.StringIO()
    code, tb = 0, None
    argv = sys.argv
    sys.argv = ["llmcycle", *case.args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # what the interpreter would print as a traceback
                tb = traceback.format_exc()
                code = 1
    finally:
        sys.argv = argv
    return Outcome(code, out.getvalue(), err.getvalue(), tb, changes(before, snapshot(root)))


def problems(case: Case, outcome: Outcome) -> list[str]:
    """What makes ``outcome`` less than one clear line: a traceback, the wrong exit code, no or several error
    lines, a line that does not name what it should, anything left behind on disk."""
    out = []
    if outcome.traceback is not None:
        out.append("traceback: " + outcome.traceback.strip().splitlines()[-1])
    if "Traceback" in outcome.err + outcome.out:
        out.append("a traceback was printed")
    if outcome.code != case.code:
        out.append(f"exit {outcome.code}, expected {case.code}")
    lines = outcome.error_lines
    if len(lines) != 1:
        out.append(f"{len(lines)} error lines in stderr: {outcome.err.strip()[-300:]!r}")
    elif [ln for ln in outcome.err.splitlines() if ln.strip()][-1] != lines[0]:
        out.append("the error line is not the last line of stderr")
    else:
        missing = [s for s in case.says if s not in lines[0]]
        if missing:
            out.append(f"the error does not name {missing}: {lines[0]!r}")
    if outcome.changed:
        out.append(f"left behind: {outcome.changed[:5]}")
    return out
