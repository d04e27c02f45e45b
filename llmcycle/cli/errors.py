"""How the ``llmcycle`` command ends: one line on stderr for every error a user can fix, exit codes.

* ``LLMCycleError`` (bad input, named by field, file, row or value): ``error: ...``, exit 1.
* A usage error (a wrong-type flag, an unknown option, a missing argument): one line too, with where to
  read the usage (``see `llmcycle tune --help```), exit 1: the same as any other bad input.
* An ``OSError`` about the user's disk or folders (full disk, read-only or unwritable folder, a file where a
  folder belongs): one line naming the path, exit 1.
* Ctrl-C: ``interrupted; resume with: llmcycle run --run-dir DIR`` when a run directory was open, exit 130.
* Anything else is a bug and keeps its traceback; ``llmcycle --debug`` shows the traceback of every error.

Messages print with markup, emoji codes and wrapping off (``err_console``): a path holding ``[/red]`` or
``file.jsonl:100:`` prints as it is, and a resume command is never split over lines.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from typing import Any

import typer

from llmcycle.cli.output import err_console
from llmcycle.core.errors import LLMCycleError
from llmcycle.recipe.runner import interrupted_run

DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR,
               errno.ENAMETOOLONG, errno.EFBIG}
"""OSErrors about the user's disk or folders rather than bugs: printed as one line naming the path."""

USAGE_EXIT = 1
"""Exit code of a usage error (README: bad input prints one line and exits 1)."""

# typer's command-line errors (its own copy of click's): the base of every usage error, and usage errors proper
CommandLineError: type[Exception] = typer.TyperException
UsageError: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def run_main(app: Callable[..., Any], debug: Callable[[], bool]) -> None:
    """Run the typer ``app`` as the console entry point; ``debug()`` says whether --debug was given."""
    try:
        code = app(standalone_mode=False, prog_name="llmcycle")
    except CommandLineError as exc:
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:  # `llmcycle estimate` alone: the help
            typer.echo(ctx.get_help())
            sys.exit(getattr(exc, "exit_code", 2))
        if debug():
            raise
        fail(usage_message(exc), USAGE_EXIT if isinstance(exc, UsageError) else getattr(exc, "exit_code", 1) or 1)
    except LLMCycleError as exc:
        if debug():
            raise
        fail(str(exc))
    except OSError as exc:
        if debug() or exc.errno not in DISK_ERRNOS:
            raise
        fail(disk_error_message(exc))
    except (KeyboardInterrupt, typer.Abort):
        interrupted()
    if code == 130:  # typer turns Ctrl-C inside a command into exit code 130
        interrupted()
    sys.exit(code if isinstance(code, int) else 0)  # as a console script does: SystemExit(0) on success


def fail(message: str, code: int = 1) -> None:
    """``error: MESSAGE`` on one line of stderr, then exit ``code``."""
    err_console.print("error: " + " ".join(str(message).splitlines()))
    sys.exit(code)


def usage_message(exc: Exception) -> str:
    """click's usage error as one line, with where to read the usage (``see `llmcycle tune --help```)."""
    ctx = getattr(exc, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    text = " ".join((exc.format_message() if hasattr(exc, "format_message") else str(exc)).split())
    value = _given(getattr(exc, "param", None)) if type(exc).__name__ == "BadParameter" else None
    return text + (f" (got {value!r})" if value is not None else "") + where


def _given(param: Any) -> str | None:
    """The value typed for option ``param`` on this command line (``--lr fast`` or ``--lr=fast``), if any."""
    opts = set(getattr(param, "opts", None) or [])
    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg in opts and i + 1 < len(args):
            return args[i + 1]
        name, eq, value = arg.partition("=")
        if eq and name in opts:
            return value
    return None


def disk_error_message(exc: OSError) -> str:
    """``cannot write runs/x/a.json: No space left on device (free some space ...)``: the path and what to do."""
    target = str(exc.filename) if exc.filename is not None else "a file"
    if exc.filename2 is not None:
        target += f" -> {exc.filename2}"
    elsewhere = "write elsewhere (--runs-dir / --run-dir / --output)"
    hint = {errno.ENOSPC: f"the disk is full; free some space or {elsewhere}",
            errno.EDQUOT: f"over the disk quota; free some space or {elsewhere}",
            errno.EFBIG: f"the file is too large for this file system; {elsewhere}",
            errno.EROFS: f"the file system is read-only; {elsewhere}",
            errno.EACCES: f"no permission; {elsewhere} or change the folder's permissions",
            errno.EPERM: f"not permitted; {elsewhere} or change the folder's permissions",
            errno.ENOTDIR: "a part of that path is a file, not a folder",
            errno.EISDIR: "that path is a folder where a file was expected",
            errno.ENAMETOOLONG: "the path is too long"}.get(exc.errno or 0, "")
    return f"cannot write {target}: {exc.strerror or exc}" + (f" ({hint})" if hint else "")


def interrupted() -> None:
    """Ctrl-C: say how to resume the run it interrupted (when one was open), exit 130."""
    run = interrupted_run()
    err_console.print(f"interrupted; resume with: llmcycle run --run-dir {run}" if run is not None else "interrupted")
    sys.exit(130)
