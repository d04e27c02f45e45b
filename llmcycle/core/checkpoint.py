"""The one checkpoint format of llmcycle's trainers: written whole or not at all, found again, and
resumed only by the run that wrote it.

Who uses it:

- ``llmcycle.tuning.train`` (Hugging Face Trainer): ``checkpoints/checkpoint-N/``, written by the
  Trainer itself; a callback calls ``mark_complete`` once the Trainer has finished the folder (its
  writes are not atomic). Config file: ``tune_config.json``.
- ``llmcycle.alignment.ppo`` (``ppo_checkpoint.save_checkpoint``): ``checkpoints/step-N/``, written
  with ``write_checkpoint``. Config file: ``ppo_config.json`` (the config under ``"config"``, beside
  digests of the prompts and ptx pairs).
- ``llmcycle.alignment.dpo``: ``checkpoints/checkpoint-N/``, written with ``write_checkpoint``.
  Config file: ``dpo_config.json``.

The format, under a run folder ``out``::

    <config file>                 the config the run started with (JSON), see ``check_same_run``
    checkpoints/<prefix>-N/       one checkpoint per saved step N (what is inside is the trainer's)
        llmcycle-checkpoint.complete   ``{"step": N}``, written last: the folder is whole

``write_checkpoint`` fills a temporary folder ``checkpoints/.<prefix>-N.tmp``, writes the marker,
renames it into place and prunes to the newest ``keep``; a kill at any point leaves no folder that
looks finished. ``last_checkpoint`` returns the newest folder that has its marker and removes (with a
warning) every newer one without it and every leftover temporary folder. PPO folders written before
this module carry the marker ``complete.json``; it is still read (never written).

``check_same_run`` makes a run folder resume only with the values it started with: the saved config
and the current one are compared field by field (a field added since the run started counts at its
default), and a difference is a ``ConfigError`` naming the fields. ``resume=False`` starts over: the
old checkpoints are removed.

Nothing here imports torch or transformers: what a checkpoint holds is written by the caller's
``write_fn``.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from llmcycle.core.errors import ConfigError
from llmcycle.core.files import atomic_write_json, changed_fields

log = logging.getLogger("llmcycle")

COMPLETE = "llmcycle-checkpoint.complete"
_LEGACY_COMPLETE = ("complete.json",)  # PPO checkpoints written before this module: read, never written
CHECKPOINTS = "checkpoints"


def checkpoint_step(path: Path, prefix: str = "checkpoint") -> int | None:
    """N for a folder named ``<prefix>-N``, else None."""
    head, sep, tail = path.name.partition("-")
    return int(tail) if sep and head == prefix and tail.isdigit() else None


def list_checkpoints(root: str | Path, prefix: str = "checkpoint", complete_only: bool = False) -> list[Path]:
    """The ``<prefix>-N`` folders under ``root``, oldest (smallest N) first; only marked ones if ``complete_only``."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = sorted((step, p) for p in root.iterdir()
                   if p.is_dir() and (step := checkpoint_step(p, prefix)) is not None)
    return [p for _, p in found if not complete_only or is_complete(p)]


def is_complete(folder: str | Path) -> bool:
    """Whether ``folder`` carries the completion marker (written last, so everything else is there)."""
    folder = Path(folder)
    return any((folder / name).is_file() for name in (COMPLETE, *_LEGACY_COMPLETE))


def mark_complete(folder: str | Path, step: int) -> Path:
    """Write the completion marker into ``folder`` (for folders the HF Trainer wrote itself)."""
    return atomic_write_json(Path(folder) / COMPLETE, {"step": int(step)})


def prune(root: str | Path, keep: int | None, prefix: str = "checkpoint") -> list[Path]:
    """Remove all but the newest ``keep`` checkpoints under ``root`` (None or 0: keep all); returns the removed."""
    if not keep:
        return []
    old = list_checkpoints(root, prefix)[:-keep]
    for path in old:
        shutil.rmtree(path, ignore_errors=True)
    return old


def write_checkpoint(root: str | Path, step: int, write_fn: Callable[[Path], Any], keep: int | None,
                     prefix: str = "checkpoint") -> Path:
    """Checkpoint ``step`` as ``root/<prefix>-<step>``, whole or not at all; returns its folder.

    ``write_fn(tmp)`` writes the checkpoint's files into the temporary folder ``root/.<prefix>-<step>.tmp``;
    then the marker is written, the folder renamed into place (replacing one of the same step) and the
    checkpoints pruned to the newest ``keep`` (None: all kept).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final, tmp = root / f"{prefix}-{step}", root / f".{prefix}-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    write_fn(tmp)
    mark_complete(tmp, step)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    prune(root, keep, prefix)
    return final


def last_checkpoint(root: str | Path, prefix: str = "checkpoint") -> Path | None:
    """The newest complete checkpoint under ``root``, or None.

    Newer folders without the marker (a kill during a save) and leftover temporary folders are removed,
    with a warning."""
    root = Path(root)
    if not root.is_dir():
        return None
    for tmp in root.glob(f".{prefix}-*.tmp"):
        log.warning("removing %s, a checkpoint the run was killed while writing", tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    for path in reversed(list_checkpoints(root, prefix)):
        if is_complete(path):
            return path
        log.warning("removing incomplete checkpoint %s (the run was killed while saving it)", path)
        shutil.rmtree(path, ignore_errors=True)
    return None


def check_same_run(out: str | Path, config_file_name: str, current: Mapping[str, Any], defaults: Mapping[str, Any],
                   ignore: Iterable[str] = (), resume: bool = True, what: str = "run", main_process: bool = True, *,
                   section: str | None = None, extra: Mapping[str, Any] | None = None,
                   check_saved: Callable[[dict[str, Any]], None] | None = None, write: bool = True,
                   checkpoints: str = CHECKPOINTS) -> None:
    """A run folder resumes only with the config it started with; ``resume=False`` starts over.

    When ``out/checkpoints`` exists and ``out/<config_file_name>`` holds the config the run started
    with, ``current`` is compared with it field by field (``changed_fields``: a field the saved config
    lacks counts at its value in ``defaults``; fields in ``ignore`` are skipped) and any difference is a
    ``ConfigError`` naming the fields. Every process checks; only the main one removes or writes.

    Args:
        out: the run folder.
        config_file_name: the JSON file in ``out`` that records the config.
        current, defaults: this run's config and the config class's defaults, as JSON-able dicts.
        ignore: top-level fields never compared (option blocks the method does not read).
        resume: False removes ``out/checkpoints`` (no comparison).
        what: the kind of run, for the message ("a PPO run").
        main_process: whether this process removes and writes (rank 0 under DDP).
        section: the key of the file the config is stored under (None: the file is the config).
        extra: more entries written beside ``section`` (digests of the data, the full config).
        check_saved: called with the saved file's contents after the config compared equal, to check
            more of it (e.g. that the data digests in ``extra`` are unchanged); raises to refuse.
        write: False only checks (nothing removed or written), for a check before anything else can fail.
        checkpoints: the checkpoints folder's name inside ``out``.
    """
    if extra and section is None:
        raise ValueError("check_same_run: extra entries need a section for the config")
    out = Path(out)
    saved = out / config_file_name
    if resume and saved.is_file() and (out / checkpoints).is_dir():
        old = json.loads(saved.read_text(encoding="utf-8"))
        was = old.get(section, {}) if section is not None else old
        diff = changed_fields(was, current, defaults, ignore=ignore)
        if diff:
            raise ConfigError(f"{', '.join(diff)}: {out} holds checkpoints of a {what} with other values; use a new "
                              "out_dir, the same config, or resume=False to start over")
        if check_saved is not None:
            check_saved(old)
    if not write or not main_process:
        return
    if not resume:
        shutil.rmtree(out / checkpoints, ignore_errors=True)
    atomic_write_json(saved, {section: dict(current), **(extra or {})} if section is not None else dict(current))
