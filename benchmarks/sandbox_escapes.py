"""The sandbox against escape and abuse attempts: runs the test file of attempts and counts what was contained.

Runs ``pytest tests/apps/test_sandbox_escapes.py`` (each attempt is one ``test_attempt_is_contained`` case: the
program runs in ``llmcycle.apps.sandbox.Sandbox`` and a check on the host decides whether it was contained, and
whether the host still works) and reads the JUnit report: ``attempts`` is the number of cases, ``contained``
the number that passed. A skipped file (no bubblewrap) is an error here, not a result.

    python benchmarks/sandbox_escapes.py

Writes ``benchmarks/results/sandbox.json``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))
from _common import command, machine, versions, write_json  # noqa: E402

TEST_FILE = "tests/apps/test_sandbox_escapes.py"


def main() -> None:
    from llmcycle.apps.sandbox import Sandbox, SandboxConfig

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        pytest_cmd = [sys.executable, "-m", "pytest", TEST_FILE, "-q", "-p", "no:cacheprovider",
                      f"--junitxml={report}"]
        proc = subprocess.run(pytest_cmd, cwd=REPO, capture_output=True, text=True, check=False)
        print(proc.stdout[-2000:])
        cases = ET.parse(report).getroot().iter("testcase")
        attempts = [c for c in cases if c.get("name", "").startswith("test_attempt_is_contained")]
    if not attempts or any(c.find("skipped") is not None for c in attempts):
        sys.exit("the escape attempts were skipped or not found (is bubblewrap installed?)")
    failed = [c.get("name", "")[len("test_attempt_is_contained"):].strip("[]") for c in attempts
              if c.find("failure") is not None or c.find("error") is not None]
    result = {"attempts": len(attempts), "contained": len(attempts) - len(failed),
              "isolation": Sandbox(SandboxConfig()).isolation, "not_contained": failed,
              "names": [c.get("name", "")[len("test_attempt_is_contained"):].strip("[]") for c in attempts],
              "limits": SandboxConfig().model_dump(), "test_file": TEST_FILE,
              "pytest_command": " ".join(["python", *pytest_cmd[1:-1]]), "pytest_exit": proc.returncode,
              "machine": machine(), "versions": versions("llmcycle"), "command": command()}
    print(f"{result['contained']} of {result['attempts']} attempts contained ({result['isolation']})")
    print(write_json("sandbox", result))


if __name__ == "__main__":
    main()
