"""``load_data``: one entry point for builtin, local (file or directory) and hub data sets.

Order of work for each split: read every row (errors name file and line) -> map columns ->
check rows (stop at the first bad one, or skip and count them with ``on_bad_rows="skip"``) ->
keep every k-th row -> seeded subsample of at most n rows (original order kept) -> a
``datasets.Dataset`` with the original columns plus ``input`` and ``references``. Bad rows are
checked over the whole split before sampling, so a file passes or fails whatever the sample.

What was read and skipped is logged (``logging.getLogger("llmcycle")``) and, when the caller
passes ``report=LoadReport()``, written into that object. Nothing is written to disk (a hub
fetch fills the ``datasets`` cache, as ``datasets.load_dataset`` always does).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmcycle.core.config import DataConfig
from llmcycle.core.errors import DataError
from llmcycle.core.hub import offline_unless_reachable
from llmcycle.data.readers import RawSplit, read_bytes
from llmcycle.data.rows import build_dataset, check_rows, hub_rows, resolve_columns, sample_indices
from llmcycle.data.sources import HubSource, SplitFile, canonical_split, resolve_source, split_key, split_rank

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

logger = logging.getLogger("llmcycle")


@dataclass
class LoadReport:
    """What ``load_data`` read, skipped and returned, per split (pass one in as ``report=``)."""

    sources: dict[str, str] = field(default_factory=dict)  # split -> file, builtin file or "hub id (split)"
    rows_read: dict[str, int] = field(default_factory=dict)  # split -> rows in the source, good and bad
    bad_rows: dict[str, int] = field(default_factory=dict)  # split -> rows dropped by on_bad_rows="skip"
    bad_row_examples: dict[str, list[str]] = field(default_factory=dict)  # split -> first 5 messages
    rows: dict[str, int] = field(default_factory=dict)  # split -> rows returned (after every_k and n)

    def clear(self) -> None:
        """Forget an earlier load (``load_data`` calls this before filling the report in)."""
        for entries in (self.sources, self.rows_read, self.bad_rows, self.bad_row_examples, self.rows):
            entries.clear()


def load_data(source: str | os.PathLike[str], *, report: LoadReport | None = None, **options: Any) -> DatasetDict:
    """Load a data set as a ``DatasetDict`` keyed by split (``train``, ``validation``, ``test``).

    Args:
        source: ``builtin:dialogues``; a .jsonl/.json/.csv/.parquet file (its split is the split
            word in its name, else ``split_name``, default train); a directory of such files whose
            names contain train / dev / validation / valid / val / test; or a hub id
            (``knkarthick/dialogsum``) fetched with ``datasets.load_dataset``.
        report: a ``LoadReport`` to fill in (rows read, bad rows skipped, rows returned per split).
        **options: any field of ``llmcycle.core.config.DataConfig`` (input_column, reference_columns,
            split, split_name, n, every_k, seed, on_bad_rows, require_references, revision);
            unknown names and invalid values raise ``ConfigError`` naming the option.

    Returns:
        One ``Dataset`` per split with the source's columns plus ``input`` (str) and
        ``references`` (list[str] of non-empty strings).

    Raises:
        DataError: the source, a file or a row cannot be used; the message names file and line.
        ConfigError: an option is unknown or invalid.
    """
    cfg = DataConfig.from_dict({"source": os.fspath(source), **options}, where="load_data")
    return load_data_from_config(cfg, report=report)


def load_data_from_config(cfg: DataConfig, report: LoadReport | None = None) -> DatasetDict:
    """``load_data`` for an already validated ``DataConfig`` (what recipes hold)."""
    from datasets import DatasetDict

    resolved = resolve_source(cfg.source, cfg.split_name)
    if isinstance(resolved, HubSource):
        raws = _read_hub(resolved, cfg)
    else:
        if cfg.split is not None and all(f.one_split for f in resolved):  # read only the wanted file
            wanted = _pick_split([f.split for f in resolved], cfg.split, cfg.source)
            resolved = [f for f in resolved if f.split == wanted]
        raws = _read_files(resolved)
    if cfg.split is not None:
        wanted = _pick_split(list(raws), cfg.split, cfg.source)
        raws = {wanted: raws[wanted]}
    report = report if report is not None else LoadReport()
    report.clear()
    splits = {split: _prepare_split(raws[split], split, cfg, report) for split in sorted(raws, key=split_rank)}
    return DatasetDict(splits)


def _pick_split(available: list[str], wanted: str, source: str) -> str:
    """The canonical name of ``wanted`` if ``source`` has it; else an error listing what it has."""
    split = canonical_split(wanted)
    if split not in available:
        listed = ", ".join(sorted(set(available), key=split_rank))
        raise DataError(f"split={wanted!r}: {source} has no such split; available splits: {listed}")
    return split


def _read_files(files: list[SplitFile]) -> dict[str, RawSplit]:
    """Read each file; a JSON file holding several splits contributes each of them."""
    raws: dict[str, RawSplit] = {}
    for file in files:
        parsed = read_bytes(file.kind, file.name, file.read(), split_key)
        if None in parsed:
            found = {file.split: parsed[None]}
        elif file.one_split:
            raise DataError(
                f"{file.name}: holds several splits ({', '.join(map(str, parsed))}); in a directory each "
                "file must hold one split (a list of objects), named by the file name"
            )
        else:
            found = {canonical_split(str(key)): raw for key, raw in parsed.items()}
            if len(found) < len(parsed):
                raise DataError(f"{file.name}: two top-level keys name the same split ({', '.join(map(str, parsed))})")
        for split, raw in found.items():
            if split in raws:  # defensive: sources.directory_files already refuses this
                raise DataError(f"two sources for the {split} split: {raws[split].origin} and {raw.origin}")
            raws[split] = raw
    return raws


def _prepare_split(raw: RawSplit, split: str, cfg: DataConfig, report: LoadReport) -> Dataset:
    """Map columns, check rows, sample, build the Dataset, and record what happened."""
    if not raw.columns and raw.dataset is None:  # no row was readable: report the rows, not the columns
        bad = check_rows(raw, cfg.input_column, [], cfg)[3]  # raises at the first with on_bad_rows="error"
        raise _no_usable_rows(raw, split, bad)
    input_column, reference_columns = resolve_columns(raw, split, cfg)
    if raw.dataset is not None:
        raw.rows = hub_rows(raw.dataset, [input_column, *reference_columns])
    keep, inputs, references, bad = check_rows(raw, input_column, reference_columns, cfg)
    if not keep:
        raise _no_usable_rows(raw, split, bad)
    picked = sample_indices(len(keep), cfg.every_k, cfg.n, cfg.seed)
    dataset = build_dataset(
        raw, [keep[i] for i in picked], [inputs[i] for i in picked], [references[i] for i in picked]
    )
    if bad:
        logger.warning(
            "%s: skipped %d bad row(s) of %d in the %s split (on_bad_rows='skip'); first: %s",
            raw.origin, len(bad), len(raw.rows), split, bad[0],
        )
    report.sources[split] = raw.origin
    report.rows_read[split] = len(raw.rows)
    report.bad_rows[split] = len(bad)
    report.bad_row_examples[split] = bad[:5]
    report.rows[split] = len(dataset)
    return dataset


def _no_usable_rows(raw: RawSplit, split: str, bad: list[str]) -> DataError:
    detail = f"all {len(bad)} rows are bad; first: {bad[0]}" if bad else "it has no rows"
    return DataError(f"{raw.origin}: no usable rows in the {split} split ({detail})")


def _read_hub(hub: HubSource, cfg: DataConfig) -> dict[str, RawSplit]:
    """Fetch ``hub.repo_id`` with the real ``datasets.load_dataset``; failures become one sentence."""
    import datasets

    try:
        with offline_unless_reachable():  # offline: the local cache or a quick clear error, not 25 s of retries
            loaded = datasets.load_dataset(hub.repo_id, revision=cfg.revision)
    except Exception as exc:  # noqa: BLE001 - translated, or re-raised below when not a hub failure
        error = _hub_error(hub.repo_id, exc)
        if error is None:
            raise
        raise error from None
    raws: dict[str, RawSplit] = {}
    for name, dataset in loaded.items():
        split = canonical_split(str(name))
        if split in raws:
            raise DataError(f"{hub.repo_id}: two hub splits map to the {split} split; pick one with split=")
        raws[split] = RawSplit(f"{hub.repo_id} ({name} split)", [], by_line=False,
                               columns=list(dataset.column_names), dataset=dataset)
    if not raws:
        raise DataError(f"{hub.repo_id}: the hub data set has no splits")
    return raws


_ALTERNATIVE = "pass a local file or directory, or builtin:dialogues"


def _hub_error(repo_id: str, exc: Exception) -> DataError | None:
    """One-sentence ``DataError`` for a failed hub fetch, or None when ``exc`` is not one (a bug)."""
    from datasets.exceptions import DatasetNotFoundError

    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if _is_connection_error(exc):
        return DataError(f"cannot reach the Hugging Face hub to fetch dataset {repo_id} (offline?); {_ALTERNATIVE}")
    if isinstance(exc, DatasetNotFoundError):
        return DataError(
            f"dataset {repo_id} was not found on the Hugging Face hub (check the id; if it is private or gated, "
            f"log in with `hf auth login`); {_ALTERNATIVE}"
        )
    if isinstance(exc, (OSError, ValueError)):
        return DataError(f"cannot load dataset {repo_id} from the Hugging Face hub ({first_line}); {_ALTERNATIVE}")
    return None


def _is_connection_error(exc: BaseException) -> bool:
    """True for network failures (no route, DNS, timeouts, offline mode), here or in any cause."""
    seen: BaseException | None = exc
    for _ in range(20):  # causes can form a cycle; real chains are a few links long
        if seen is None:
            break
        if isinstance(seen, (ConnectionError, TimeoutError)):
            return True
        module, name = type(seen).__module__, type(seen).__name__
        if module.startswith(("httpx", "requests", "urllib3")) and ("Connect" in name or "Timeout" in name):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
