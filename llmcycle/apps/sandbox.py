"""Run untrusted Python (a model's program) in a real sandbox: bubblewrap namespaces plus resource limits.

Isolation is the kernel's, not a Python-level filter. ``Sandbox.run(code)`` starts Debian's ``bwrap`` with:

* new PID, network, IPC, UTS and cgroup namespaces (only loopback, which is down: no network; ``/proc``
  shows the sandbox's own processes only), ``--new-session`` and ``--die-with-parent``;
* a read-only root of its own with nothing in it but the interpreter: its binary, its standard library
  (``site-packages`` hidden under an empty read-only tmpfs) and the shared libraries they link
  (found with ``ldd``), all bound read-only; ``/dev`` minimal, ``/proc`` new;
* a size-limited tmpfs as the working directory ``/work`` (also ``$HOME`` and ``$TMPDIR``), gone afterwards;
* an empty environment (the host's variables and secrets never enter, bwrap's own included);
* resource limits set before the program starts: CPU seconds, address space, file size, processes,
  open files, no core dumps. Run as root, the program drops to ``nobody`` (65534) after the limits are set,
  so the process limit applies (the kernel does not enforce it on root); run as another user, bwrap makes a
  user namespace and forbids nested ones (``--disable-userns``).

The host reads at most ``output_bytes`` of output and waits at most ``wall_s`` seconds: a program that
runs longer, prints more, or hits a limit ends with an answer of its own kind (``timeout``,
``output_limit``, ``cpu_limit``, ``memory_limit``, ``file_size_limit``, ``process_limit``), never a hang.
Only the standard library is importable inside.

Without bubblewrap ``Sandbox`` refuses to start (``SandboxUnavailable`` names what to install) unless
``unsafe_no_sandbox`` is set: then the program runs as a plain child process with the same limits and a
temporary directory, and nothing else between it and the machine.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field

from llmcycle.core.config import StageConfig
from llmcycle.core.errors import LLMCycleError

Status = Literal["ok", "error", "timeout", "cpu_limit", "memory_limit", "file_size_limit", "output_limit",
                 "process_limit", "killed"]
NOBODY = 65534
MAX_CODE_BYTES = 100_000  # the program travels as one argv string (the kernel's limit is 128 KiB)
STDERR_KEEP = 8_000
INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap), "
                "or pass --unsafe-no-sandbox (sandbox.unsafe_no_sandbox: true) to run generated code without "
                "isolation")


class SandboxUnavailable(LLMCycleError):
    """No working isolation tool on this machine (and unsafe mode was not asked for)."""


class SandboxConfig(StageConfig):
    """Limits for running generated Python in the sandbox."""

    cpu_s: int = Field(5, ge=1, le=600, description="CPU seconds the program may use (RLIMIT_CPU); then it is "
                       "stopped and the answer is 'cpu_limit'.")
    wall_s: float = Field(10.0, gt=0, le=3600, description="Wall-clock seconds before the sandbox is killed "
                          "(answer 'timeout'): a sleeping or blocked program ends too.")
    memory_mb: int = Field(512, ge=64, description="Address space in MB (RLIMIT_AS); an allocation beyond it "
                           "fails (answer 'memory_limit').")
    file_size_mb: int = Field(8, ge=1, description="Largest file the program may write, in MB (RLIMIT_FSIZE).")
    tmpfs_mb: int = Field(64, ge=1, description="Size of the temporary working directory /work, in MB.")
    max_processes: int = Field(8, ge=1, description="Processes and threads the program may have at once "
                               "(RLIMIT_NPROC): a fork bomb stops here (answer 'process_limit').")
    max_open_files: int = Field(64, ge=16, description="Open file descriptors (RLIMIT_NOFILE).")
    output_bytes: int = Field(65_536, ge=1, description="Most bytes of standard output read; a program printing "
                              "more is killed (answer 'output_limit').")
    unsafe_no_sandbox: bool = Field(False, description="Run without bubblewrap when it is missing: a plain child "
                                    "process with the same limits and a temporary directory, but with the user's "
                                    "view of the file system and network. Only for code you trust.")


@dataclass
class SandboxResult:
    """What a program did in the sandbox. ``status`` says how it ended; ``answer`` is its last printed line."""

    status: Status
    stdout: str
    stderr: str
    returncode: int | None
    wall_s: float
    isolation: str
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def answer(self) -> str | None:
        """The last non-empty line printed (PAL's answer), or None when the program did not end cleanly."""
        if not self.ok:
            return None
        lines = [line.strip() for line in self.stdout.splitlines() if line.strip()]
        return lines[-1] if lines else None

    def to_dict(self) -> dict:
        return {**asdict(self), "answer": self.answer}


# The first code to run inside: set the limits, drop root, then run the program as __main__.
_LAUNCHER = """\
import os, resource, sys
limits, uid = {limits}, {uid}
for name, value in limits.items():
    resource.setrlimit(getattr(resource, name), tuple(value))
if uid is not None and os.getuid() == 0:
    os.setgroups([]); os.setgid(uid); os.setuid(uid)
code = sys.argv[1]
sys.argv = ["main.py"]
del limits, uid, name, value, os, resource
exec(compile(code, "main.py", "exec"), {{"__name__": "__main__", "__builtins__": __builtins__}})
"""


def _limits(cfg: SandboxConfig) -> dict[str, list[int]]:
    mb = 1024 * 1024
    return {"RLIMIT_CPU": [cfg.cpu_s, cfg.cpu_s + 1], "RLIMIT_AS": [cfg.memory_mb * mb] * 2,
            "RLIMIT_FSIZE": [cfg.file_size_mb * mb] * 2, "RLIMIT_NPROC": [cfg.max_processes] * 2,
            "RLIMIT_NOFILE": [cfg.max_open_files] * 2, "RLIMIT_CORE": [0, 0]}


def interpreter() -> str:
    """The real interpreter binary behind ``sys.executable`` (a virtual environment's python is a link)."""
    return os.path.realpath(sys.executable)


def _stdlib_dirs() -> list[str]:
    """The standard library folders (``os.py``'s folder and the compiled extension modules')."""
    dirs = [os.path.dirname(os.__file__)]
    dynload = sysconfig.get_config_var("DESTSHARED")
    if dynload and os.path.isdir(dynload) and not dynload.startswith(dirs[0] + os.sep):
        dirs.append(dynload)
    return dirs


def _hidden_dirs(stdlib: list[str]) -> list[str]:
    """Package folders inside the bound standard library (the base interpreter's site-packages)."""
    found = []
    for d in stdlib:
        for name in ("site-packages", "dist-packages"):
            if os.path.isdir(os.path.join(d, name)):
                found.append(os.path.join(d, name))
    return found


@lru_cache(maxsize=4)
def _shared_libraries(exe: str, stdlib: tuple[str, ...]) -> tuple[str, ...]:
    """Every shared library the interpreter and its extension modules link (``ldd``), the loader included."""
    files = [exe] + [str(p) for d in stdlib for p in Path(d).glob("lib-dynload/*.so")] + \
        [str(p) for d in stdlib if d.endswith("lib-dynload") for p in Path(d).glob("*.so")]
    ldd = shutil.which("ldd")
    if ldd is None:
        raise SandboxUnavailable("ldd (Debian package libc-bin) is missing, so the sandbox cannot find the "
                                 f"interpreter's libraries; install it, or {INSTALL_HINT.split(', or ', 1)[1]}")
    out = subprocess.run([ldd, *files], capture_output=True, text=True, check=False).stdout
    libs = set()
    for line in out.splitlines():
        for token in line.split():
            if token.startswith("/") and not token.endswith(":") and os.path.exists(token):
                libs.add(token)
    return tuple(sorted(libs))


def _ancestors(paths: list[str]) -> list[str]:
    """Every folder above ``paths`` (outermost first), which bwrap must create world-traversable."""
    seen: set[str] = set()
    for p in paths:
        for parent in Path(p).parents:
            if str(parent) != "/":
                seen.add(str(parent))
    return sorted(seen, key=lambda s: (s.count("/"), s))


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def _bwrap_args(cfg: SandboxConfig, exe: str) -> list[str]:
    """bwrap's command line up to (not including) the command it runs."""
    stdlib = _stdlib_dirs()
    libs = list(_shared_libraries(exe, tuple(stdlib)))
    binds = libs + [exe] + stdlib
    root = os.geteuid() == 0
    args = [bwrap_path() or "bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--clearenv"]
    if root:  # the launcher needs these two to drop to nobody; every other capability is gone
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:  # an unprivileged user: a user namespace, and no nested ones
        args += ["--unshare-user", "--disable-userns"]
    for var, value in (("PATH", "/nonexistent"), ("HOME", "/work"), ("TMPDIR", "/work"), ("LANG", "C.UTF-8")):
        args += ["--setenv", var, value]
    for folder in _ancestors(binds):
        args += ["--perms", "0755", "--dir", folder]
    for path in binds:
        args += ["--ro-bind", path, path]
    for hidden in _hidden_dirs(stdlib):
        args += ["--tmpfs", hidden, "--remount-ro", hidden]
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(cfg.tmpfs_mb * 1024 * 1024), "--tmpfs", "/work",
             "--chmod", "1777", "/work", "--chdir", "/work", "--remount-ro", "/"]
    return args


@lru_cache(maxsize=4)
def _probe(key: tuple) -> str | None:
    """None when bwrap runs a trivial program here, else the reason it cannot (its first line of stderr)."""
    cfg = SandboxConfig.model_validate(dict(key))
    exe = interpreter()
    try:
        proc = subprocess.run(_bwrap_args(cfg, exe) + [exe, "-I", "-S", "-B", "-c", "pass"], capture_output=True,
                              text=True, timeout=60, env={"PATH": "/usr/bin:/bin"}, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if proc.returncode != 0:
        return (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[0]
    return None


def sandbox_unavailable(config: SandboxConfig | None = None) -> str | None:
    """Why bubblewrap cannot isolate a program on this machine (not installed, or it cannot create namespaces
    here), or None when it can: what ``Sandbox`` refuses on without ``unsafe_no_sandbox``."""
    if bwrap_path() is None:
        return "bubblewrap (bwrap) is not on PATH"
    return _probe(tuple(sorted((config or SandboxConfig()).model_dump().items())))


class Sandbox:
    """``Sandbox(SandboxConfig()).run("print(6 * 7)")`` -> ``SandboxResult(status="ok", answer="42")``."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.exe = interpreter()
        if bwrap_path() is None:
            if not self.config.unsafe_no_sandbox:
                raise SandboxUnavailable(f"the sandbox for generated code needs bubblewrap (bwrap), which is not "
                                         f"on PATH: {INSTALL_HINT}")
            self.isolation = "none (unsafe_no_sandbox): a child process with resource limits only"
            return
        problem = _probe(tuple(sorted(self.config.model_dump().items())))
        if problem is not None:
            if not self.config.unsafe_no_sandbox:
                raise SandboxUnavailable(f"bubblewrap cannot create its sandbox here ({problem}); allow user "
                                         "namespaces (sysctl kernel.unprivileged_userns_clone=1, or run as root), "
                                         "or pass --unsafe-no-sandbox to run generated code without isolation")
            self.isolation = "none (unsafe_no_sandbox): a child process with resource limits only"
            return
        who = f"as uid {NOBODY}" if os.geteuid() == 0 else "in a user namespace"
        self.isolation = (f"bubblewrap {_bwrap_version()}: pid/net/ipc/uts namespaces, read-only interpreter only, "
                          f"tmpfs /work, no environment, rlimits, {who}")

    @property
    def isolated(self) -> bool:
        return self.isolation.startswith("bubblewrap")

    def run(self, code: str) -> SandboxResult:
        """Run ``code`` as ``__main__``; never raises for anything the program does."""
        if not isinstance(code, str):
            raise LLMCycleError(f"sandbox: code must be text, got {type(code).__name__}")
        if len(code.encode("utf-8", "replace")) > MAX_CODE_BYTES:
            return SandboxResult("error", "", "", None, 0.0, self.isolation,
                                 f"program longer than {MAX_CODE_BYTES} bytes; not run")
        if "\x00" in code:
            return SandboxResult("error", "", "", None, 0.0, self.isolation, "program contains a NUL byte; not run")
        cfg = self.config
        launcher = _LAUNCHER.format(limits=json.dumps(_limits(cfg)), uid=NOBODY if self.isolated else None)
        command = [self.exe, "-I", "-S", "-B", "-X", "utf8", "-c", launcher, code]
        if self.isolated:
            return self._run([*_bwrap_args(cfg, self.exe), *command], cwd=None)
        with tempfile.TemporaryDirectory(prefix="llmcycle-unsafe-") as work:
            return self._run(command, cwd=work)

    def _run(self, argv: list[str], cwd: str | None) -> SandboxResult:
        cfg = self.config
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        if cwd is not None:
            env.update(HOME=cwd, TMPDIR=cwd)
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=env, cwd=cwd, start_new_session=True, close_fds=True)
        out, err, why = bytearray(), bytearray(), None
        sel = selectors.DefaultSelector()
        assert proc.stdout is not None and proc.stderr is not None
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        deadline = start + cfg.wall_s
        try:
            while sel.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    why = "timeout"
                    break
                for key, _ in sel.select(timeout=min(left, 1.0)):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fileobj)
                        continue
                    buf = key.data
                    if buf is out:
                        out += chunk
                        if len(out) > cfg.output_bytes:
                            del out[cfg.output_bytes:]
                            why = "output_limit"
                    elif len(err) < STDERR_KEEP:
                        err += chunk[:STDERR_KEEP - len(err)]
                if why:
                    break
            if why:
                _kill(proc)
            try:
                rc = proc.wait(timeout=max(deadline - time.monotonic(), 0) + 5)
            except subprocess.TimeoutExpired:
                why = why or "timeout"
                _kill(proc)
                rc = proc.wait()
        finally:
            sel.close()
            proc.stdout.close()
            proc.stderr.close()
            if proc.poll() is None:
                _kill(proc)
                proc.wait()
        wall = time.monotonic() - start
        stdout, stderr = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        status, message = _classify(rc, stderr, why, cfg, self.isolated)
        return SandboxResult(status, stdout, stderr, rc, round(wall, 4), self.isolation, message)


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL bwrap's process group; --die-with-parent and the PID namespace take everything inside with it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_of(rc: int | None, isolated: bool) -> int | None:
    """The signal that ended the program (bwrap reports 128 + N; a plain child -N)."""
    if rc is None:
        return None
    if rc < 0:
        return -rc
    if isolated and rc > 128:
        return rc - 128
    return None


def _last_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else ""


def _classify(rc: int | None, stderr: str, why: str | None, cfg: SandboxConfig,
              isolated: bool) -> tuple[Status, str]:
    """How the program ended, as one status and one line."""
    if why == "timeout":
        return "timeout", f"still running after {cfg.wall_s:g} s of wall time; killed"
    if why == "output_limit":
        return "output_limit", f"printed more than {cfg.output_bytes} bytes; killed"
    sig = _signal_of(rc, isolated)
    last = _last_line(stderr)
    if sig == signal.SIGXCPU:
        return "cpu_limit", f"used its {cfg.cpu_s} s of CPU time; stopped"
    if rc == 0:
        return "ok", ""
    if "MemoryError" in stderr or "Cannot allocate memory" in stderr:
        return "memory_limit", f"ran out of its {cfg.memory_mb} MB of memory ({last})"
    if "File too large" in stderr:
        return "file_size_limit", f"wrote past the {cfg.file_size_mb} MB file size limit ({last})"
    if "can't start new thread" in stderr or ("Resource temporarily unavailable" in stderr
                                              and ("fork" in stderr or "BlockingIOError" in stderr)):
        return "process_limit", f"reached the limit of {cfg.max_processes} processes ({last})"
    if sig == signal.SIGKILL:
        return "killed", "killed by SIGKILL (the memory or CPU limit)"
    if sig is not None:
        return "error", f"ended by signal {signal.Signals(sig).name}"
    return "error", last or f"exit status {rc}"


@lru_cache(maxsize=1)
def _bwrap_version() -> str:
    try:
        out = subprocess.run([bwrap_path() or "bwrap", "--version"], capture_output=True, text=True, timeout=10,
                             check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.strip().split()[-1] if out.strip() else "?"
