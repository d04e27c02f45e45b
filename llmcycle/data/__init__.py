"""Data: load a data set from builtin:NAME, a local file or directory, or the hub, as a DatasetDict.

``load_data(source, **options)`` returns one ``datasets.Dataset`` per split (``train``,
``validation``, ``test``), each with its own columns plus ``input`` (str) and ``references``
(list[str]). Options are the fields of ``llmcycle.core.config.DataConfig``. Importing this package is
cheap: ``datasets`` and ``pyarrow`` are imported only when data is loaded.

Modules: ``sources`` (what a source string means, split names, builtin registry), ``readers``
(JSONL / JSON / CSV / Parquet parsing with file:line locations), ``rows`` (column mapping, row
checks, sampling), ``loader`` (``load_data`` and the hub path).
"""

from llmcycle.data.loader import LoadReport, load_data, load_data_from_config
from llmcycle.data.sources import BUILTIN_DATASETS, SPLIT_WORDS

__all__ = ["BUILTIN_DATASETS", "SPLIT_WORDS", "LoadReport", "load_data", "load_data_from_config"]
