"""``import llmcycle.evaluation`` stays cheap: no torch, transformers, scikit-learn, NLTK or sacrebleu."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "sklearn", "scipy", "nltk", "rouge_score", "sacrebleu", "profanity_check", "datasets")


def test_import_is_light() -> None:
    code = (
        "import sys, llmcycle.evaluation as e; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules)); "
        "print(len(e.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    loaded, n_public = out.stdout.split("\n")[:2]
    assert loaded == "", f"heavy modules imported eagerly: {loaded}"
    assert int(n_public) > 20


def test_public_names_resolve() -> None:
    import llmcycle.evaluation as e

    for name in e.__all__:
        assert getattr(e, name) is not None
    assert callable(e.rouge) and callable(e.perplexity) and callable(e.toxicity)
