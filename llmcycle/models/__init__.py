"""Models: loading (hub id, local directory, builtin), kinds, inspection.

``import llmcycle.models`` is cheap; torch and transformers load on first use.
"""

from llmcycle.models.loader import LoadedModel, load_model, model_kind

__all__ = ["LoadedModel", "load_model", "model_kind"]
