"""Stages: the lifecycle's unit. Each kind is one module here that registers one ``Stage``.

``base`` holds the contract (``Stage``, ``BaseStage``, ``ModelHandoff``, ``StageContext``,
``register_stage``). Every other module of this package is imported here, and registers its kind:
adding a stage kind means adding one module (its kind joins recipes, ``llmcycle stage KIND``,
``llmcycle plan`` and the reference at once). The builtin kinds register in the order the
lifecycle usually runs them; others follow, by module name. A stage of your own, outside the
package, registers itself when its module is imported (before the recipe is loaded).
"""

import importlib
import pkgutil

from llmcycle.stages.base import (
    BaseStage,
    Glance,
    ModelHandoff,
    Stage,
    StageContext,
    StageOutput,
    get_stage,
    register_stage,
    stage_kinds,
    unregister_stage,
)

LIFECYCLE = ("info", "estimate", "prompt_lab", "generate", "tune", "align", "evaluate", "optimize", "serve")
_HELPERS = {"base", "memory"}  # modules of this package that are not stages


def _load_builtin_stages() -> None:
    found = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")} - _HELPERS
    for name in [k for k in LIFECYCLE if k in found] + sorted(found - set(LIFECYCLE)):
        importlib.import_module(f"{__name__}.{name}")


_load_builtin_stages()

__all__ = ["BaseStage", "Glance", "ModelHandoff", "Stage", "StageContext", "StageOutput", "get_stage",
           "register_stage", "stage_kinds", "unregister_stage"]
