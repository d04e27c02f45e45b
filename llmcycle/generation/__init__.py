"""Generation: settings validated up front, and a batched engine over any builtin/HF model."""

from llmcycle.generation.engine import generate
from llmcycle.generation.settings import GenerationSettings

__all__ = ["GenerationSettings", "generate"]
