"""Generation: settings validated up front, and a batched engine over any builtin/HF model.

* ``GenerationSettings``: every decoding knob, checked as a whole (``parse``, ``from_preset``).
* ``PRESETS``: greedy, creative, precise, beam4.
* ``generate`` -> texts in input order; ``generate_detailed`` -> ``GenerationResult`` objects with
  token counts and finish reasons.
* ``llmcycle.generation.processors``: frequency/presence penalty, per-example seeded sampler and the
  stop-string criterion (imported lazily: it needs torch and transformers).
"""

from llmcycle.generation.engine import GenerationResult, Output, generate, generate_detailed
from llmcycle.generation.presets import PRESETS
from llmcycle.generation.settings import GenerationSettings

__all__ = ["PRESETS", "GenerationResult", "GenerationSettings", "Output", "generate", "generate_detailed"]
