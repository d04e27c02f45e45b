"""llmcycle: take a language model through the generative-AI project lifecycle.

Importing the package is cheap: torch, transformers and peft are imported only by the
functions that need them (``llmcycle.models.load_model`` and friends).
"""

__version__ = "0.1.0"

from llmcycle.core.errors import LLMCycleError

__all__ = ["LLMCycleError", "__version__"]
