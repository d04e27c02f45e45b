"""Recipes: a YAML file naming the model, the data and an ordered list of stages.

```yaml
name: quickstart
model: {source: builtin:minilm-seq2seq}
data: {source: builtin:dialogues, split: test, n: 6}
stages:
  - info: {}
  - estimate: {batch_size: 8, input_tokens: 384, output_tokens: 64}
  - generate: {generation: {max_new_tokens: 48}}
```

Each stage's settings are validated by its kind's config class (the stage registry,
``llmcycle.stages``), every field at every depth, before anything runs; errors name the path
(``stages[2].generate.generation.max_new_tokens``). ``--set a.b=value`` overrides any field. The
recipe names shipped with the package (``llmcycle/recipes/*.yaml``) can be used by name.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, field_validator, model_validator

from llmcycle.core.config import DataConfig, ModelConfig, StageConfig, load_yaml
from llmcycle.core.errors import ConfigError, LLMCycleError
from llmcycle.prompts import TEMPLATES, load_templates, register_template
from llmcycle.stages import get_stage


class Recipe(StageConfig):
    """A whole lifecycle run."""

    name: str = Field("run", pattern=r"^[\w.\-]+$", description="Run name; the run directory is <name>-<timestamp>.")
    model: ModelConfig = Field(..., description="The model every stage starts from (required: a recipe names its "
                               "model, e.g. model: {source: builtin:minilm-seq2seq}).")
    data: DataConfig = Field(default_factory=DataConfig, description="The data every stage reads.")
    runs_dir: str = Field("runs", description="Where run directories are created.")
    templates_file: str | None = Field(None, description="A YAML file of your own prompt templates (a list of "
                                       "name, text, target, ... entries; see llmcycle.prompts), usable by name in "
                                       "every stage's template(s) field; checked with the recipe.")
    stages: list[dict[str, Any]] = Field(..., min_length=1, description="Ordered stages: [{kind: settings}] "
                                         "(`llmcycle reference` lists the kinds and their fields).")

    @field_validator("stages")
    @classmethod
    def _stages(cls, stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for i, entry in enumerate(stages):
            if not isinstance(entry, dict) or len(entry) != 1:
                raise ValueError(f"stages[{i}] must be a mapping with one key, the stage kind, e.g. '- info: {{}}'")
            (kind, settings), = entry.items()
            stage = get_stage(str(kind), where=f"stages[{i}]")
            if settings is not None and not isinstance(settings, dict):
                raise ValueError(f"stages[{i}].{kind}: settings must be a mapping of field: value, got "
                                 f"{type(settings).__name__}")
            cfg = stage.config_cls.from_dict(settings or {}, where=f"stages[{i}].{kind}")
            out.append({kind: cfg.model_dump()})
        return out

    @model_validator(mode="after")
    def _template_names(self) -> "Recipe":
        """Every template a stage names exists (a builtin or one of ``templates_file``): checked before any work."""
        valid = set(TEMPLATES) | {t.name for t in self.user_templates()}
        for i, entry in enumerate(self.stages):
            for kind, settings in entry.items():
                for where, name in _template_fields(settings, f"stages[{i}].{kind}"):
                    if name not in valid:
                        raise ValueError(f"{where}: unknown prompt template {name!r}; valid: "
                                         f"{', '.join(sorted(valid))}" + ("" if self.templates_file else
                                                                         " (or add yours with templates_file)"))
        return self

    def user_templates(self) -> list[Any]:
        """The templates of ``templates_file`` (checked entry by entry), none without it."""
        if not self.templates_file:
            return []
        try:
            templates = load_templates(self.templates_file)
        except LLMCycleError as exc:
            raise ValueError(f"templates_file: {exc}") from None
        for t in templates:
            if t.name in TEMPLATES and TEMPLATES[t.name] != t:
                raise ValueError(f"templates_file: {self.templates_file}: template '{t.name}' is already a "
                                 "different registered template; choose another name")
        return templates

    def register_templates(self) -> None:
        """Make ``templates_file``'s templates usable by name in this process (what the runner does first)."""
        for t in self.user_templates():
            if t.name not in TEMPLATES:
                register_template(t)

    def stage_configs(self) -> list[tuple[str, StageConfig]]:
        """(kind, validated config) for each stage, in order."""
        return [(k, get_stage(k).config_cls.model_validate(v)) for e in self.stages for k, v in e.items()]


def _template_fields(value: Any, where: str) -> list[tuple[str, str]]:
    """``(path, name)`` of every ``template: NAME`` / ``templates: [NAMES]`` in a stage's settings, at any depth."""
    out: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}"
            if key == "template" and isinstance(item, str):
                out.append((path, item))
            elif key == "templates" and isinstance(item, list):
                out += [(f"{path}[{j}]", n) for j, n in enumerate(item) if isinstance(n, str)]
            else:
                out += _template_fields(item, path)
    elif isinstance(value, list):
        for j, item in enumerate(value):
            out += _template_fields(item, f"{where}[{j}]")
    return out


def builtin_recipes() -> list[str]:
    folder = resources.files("llmcycle") / "recipes"
    return sorted(f.name[:-5] for f in folder.iterdir() if f.name.endswith(".yaml"))


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML). A first part naming a stage kind sets that stage's
    field (``generate.generation.max_new_tokens``: the first generate stage; ``tune[1].lora.r``: the second
    tune stage); anything else is a top-level field (``model.source``, ``data.n``)."""
    import re
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set model.source=builtin:tiny-t5")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: the value {raw!r} is not valid YAML "
                              f"({getattr(exc, 'problem', None) or 'parse error'}); quote it") from None
        parts = key.strip().split(".")
        indexed = re.fullmatch(r"(\w+)\[(\d+)\]", parts[0])
        kind, nth = (indexed.group(1), int(indexed.group(2))) if indexed else (parts[0], 0)
        entries = [e for e in data.get("stages") or [] if isinstance(e, dict) and kind in e]
        if indexed and nth >= len(entries):
            raise ConfigError(f"--set {key}: the recipe has {len(entries)} {kind} stage(s); {kind}[{nth}] counts "
                              "from 0")
        stage = entries[nth] if nth < len(entries) else None
        if stage is not None:
            parts[0] = kind
            if stage[kind] is None:
                stage[kind] = {}
        target = stage if stage is not None else data
        for p in parts[:-1]:
            if target.get(p) is None:
                target[p] = {}
            target = target[p]
            if not isinstance(target, dict):
                raise ConfigError(f"--set {key}: {p} is not a mapping")
        target[parts[-1]] = value
    return data


def load_recipe(source: str | None = None, overrides: list[str] | None = None) -> Recipe:
    """A recipe from a YAML path or a shipped name (default: ``quickstart``), with overrides applied."""
    source = source or "quickstart"
    path = Path(source)
    if not path.is_file():
        if source in builtin_recipes():
            path = Path(str(resources.files("llmcycle") / "recipes" / f"{source}.yaml"))
        else:
            raise ConfigError(f"no recipe file {source!r}; shipped recipes: {', '.join(builtin_recipes())}")
    data = apply_overrides(load_yaml(path), overrides or [])
    return Recipe.from_dict(data, where=str(path))
