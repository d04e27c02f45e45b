"""One process at a time in a folder: the run-directory lock.

``with FolderLock(run_dir): ...`` holds ``<run_dir>/.llmcycle.lock`` for the block. A second process
(``llmcycle run --run-dir X`` while another writes X) is refused at once with one line naming the holder:
its pid, host, start time and command. The lock is released on exit, on failure and on Ctrl-C (the
block's ``finally``).

How a lock is held: an exclusive ``flock`` on the lock file (the kernel drops it when its process dies,
however it dies: SIGKILL included), with the holder written into the file for the message. A lock file
left by a process that is gone is recognised and taken over. Where ``flock`` is not available (a file
system without it), the file's contents decide: a holder on this host whose pid no longer runs, or runs
but started at another time than the holder did (the pid was reused), is stale and taken over; a
holder on another host is refused (its pid cannot be checked from here).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llmcycle.core.errors import LLMCycleError

try:  # POSIX; elsewhere only the holder file is checked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("llmcycle")

LOCK_NAME = ".llmcycle.lock"


class FolderLocked(LLMCycleError):
    """The folder is in use by another live process."""


def process_start(pid: int) -> str | None:
    """When process ``pid`` started, in clock ticks since boot (``/proc/<pid>/stat`` field 22); None when
    unknown (no such process, or no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # after the command name, which may hold spaces


def pid_running(pid: int) -> bool:
    """Whether a process ``pid`` exists (signal 0: exists, owned by anyone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def stale_reason(holder: dict[str, Any]) -> str | None:
    """Why the lock ``holder`` (the contents of a lock file) is no longer held; None when it may still be.

    Stale: no pid recorded; on this host, a pid that no longer runs, or runs but started at another time
    than the holder did (the pid was reused by another process). A holder on another host may still run.
    """
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return "it names no process"
    if holder.get("host") != socket.gethostname():
        return None
    if not pid_running(pid):
        return f"pid {pid} is no longer running"
    started, now = holder.get("process_start"), process_start(pid)
    if started is not None and now is not None and str(started) != now:
        return f"pid {pid} now belongs to another process (started at another time)"
    return None


def describe_holder(holder: dict[str, Any]) -> str:
    """``pid 123 on host h since 2026-12-06T07:19:31+00:00 (llmcycle run ...)``."""
    argv = holder.get("argv")
    command = f" ({' '.join(map(str, argv))[:200]})" if isinstance(argv, list) and argv else ""
    return f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} since {holder.get('since', '?')}{command}"


def _read(path: Path) -> dict[str, Any]:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


class FolderLock:
    """The lock of one folder (it must exist). ``acquire`` raises ``FolderLocked`` naming the holder."""

    def __init__(self, folder: str | Path, what: str = "run directory"):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.what = what
        self.fd: int | None = None
        self.took_over: str | None = None  # the stale holder this lock replaced, described

    def me(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(), "process_start": process_start(os.getpid()),
                "since": datetime.now(timezone.utc).isoformat(timespec="seconds"), "argv": sys.argv}

    def acquire(self) -> "FolderLock":
        for _ in range(100):  # the lock file can be replaced between open and flock: then try again
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if not self._lock_fd(fd):
                    continue
            except BaseException:
                os.close(fd)
                raise
            self.fd = fd
            previous = _read(self.path)
            if previous and previous.get("pid") != os.getpid():
                self.took_over = describe_holder(previous)
                log.info("took over the lock of %s, left by %s (%s)", self.folder, self.took_over,
                         stale_reason(previous) or "it no longer holds it")
            data = json.dumps(self.me()).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            return self
        raise FolderLocked(f"{self.folder}: cannot take the lock {self.path} (it keeps being replaced)")

    def _lock_fd(self, fd: int) -> bool:
        """Lock ``fd``; False when the file was replaced meanwhile (retry); ``FolderLocked`` when held."""
        flocked = False
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                flocked = True
            except BlockingIOError:
                self._refuse(_read(self.path))
            except OSError as exc:  # no flock on this file system: the holder file decides
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise
        try:
            same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            return False
        if not flocked:
            holder = _read(self.path)
            if holder and holder.get("pid") != os.getpid() and stale_reason(holder) is None:
                self._refuse(holder)
        return True

    def _refuse(self, holder: dict[str, Any]) -> None:
        who = describe_holder(holder) if holder else "another process"
        raise FolderLocked(f"{self.folder}: this {self.what} is in use by {who}; wait for it to finish or stop it "
                           f"(a lock left by a process that is gone is taken over by itself; one held on another "
                           f"host is not: remove {self.path} once that run has stopped)")

    def release(self) -> None:
        """Remove the lock file, then let the lock go (a waiting process then finds the file gone and retries)."""
        if self.fd is None:
            return
        try:
            if _read(self.path).get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
