"""A real ``llmcycle run`` that holds its run directory until told to go on (for the lock tests).

``python hold_run.py RECIPE RUN_DIR STARTED RELEASE`` registers a stage ``hold`` and runs the CLI. The
stage opens the FIFO STARTED for writing (it blocks until the test opens it to read, so the test knows the run
holds its lock), writes its pid, then opens the FIFO RELEASE to read (blocking until the test opens it to
write). No sleeps: the two processes meet on the FIFOs.
"""

from __future__ import annotations

import os
import sys

from llmcycle.cli import main
from llmcycle.core.config import StageConfig
from llmcycle.stages import BaseStage, register_stage


class Hold(BaseStage):
    kind = "hold"
    config_cls = StageConfig
    title = "Hold"

    started = released = ""

    def run(self, ctx, cfg, out):
        with open(self.started, "w") as fh:
            fh.write(str(os.getpid()))
        with open(self.released) as fh:
            fh.read()
        return "## held\n"


if __name__ == "__main__":
    Hold.started, Hold.released = sys.argv[3], sys.argv[4]
    register_stage(Hold())
    recipe, run_dir = sys.argv[1], sys.argv[2]
    sys.argv = ["llmcycle", "run", recipe, "--run-dir", run_dir, *sys.argv[5:]]
    main()
