"""The hub path (datasets.load_dataset) offline, and the cost of importing llmcycle.data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import datasets
import pytest

from llmcycle.core.errors import DataError
from llmcycle.data import load_data

OFFLINE_SENTENCE = (
    "cannot reach the Hugging Face hub to fetch dataset knkarthick/dialogsum (offline?); "
    "pass a local file or directory, or builtin:dialogues"
)


class ConnectError(Exception):
    """Stands in for the HTTP client's connect error (httpx or httpx2, whichever the hub client uses)."""


ConnectError.__module__ = "httpx"


def _offline_errors() -> list[Exception]:
    from huggingface_hub.errors import OfflineModeIsEnabled

    wrapped = ConnectionError("Couldn't reach 'knkarthick/dialogsum' on the Hub (LocalEntryNotFoundError)")
    chained = OSError("request failed")
    chained.__cause__ = ConnectError("[Errno -2] Name or service not known")
    return [wrapped, OfflineModeIsEnabled("offline"), ConnectError("no route"), TimeoutError(), chained]


@pytest.mark.parametrize("error", _offline_errors(), ids=lambda e: type(e).__name__)
def test_unreachable_hub_is_one_sentence(monkeypatch, error: Exception) -> None:
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(datasets, "load_dataset", fail)
    with pytest.raises(DataError) as info:
        load_data("knkarthick/dialogsum")
    assert str(info.value) == OFFLINE_SENTENCE
    assert info.value.__cause__ is None


def test_hub_dataset_not_found(monkeypatch) -> None:
    from datasets.exceptions import DatasetNotFoundError

    def fail(*args, **kwargs):
        raise DatasetNotFoundError("Dataset 'nobody/nothing' doesn't exist on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", fail)
    with pytest.raises(DataError, match="dataset nobody/nothing was not found on the Hugging Face hub"):
        load_data("nobody/nothing")


def test_hub_splits_are_mapped_and_features_kept(monkeypatch) -> None:
    features = datasets.Features(
        {"dialogue": datasets.Value("string"), "summary": datasets.Value("string"),
         "label": datasets.ClassLabel(names=["no", "yes"])}
    )
    rows = {"dialogue": ["#Person1#: Hi.", "", "#Person1#: Bye."], "summary": ["a", "b", "c"], "label": [0, 1, 1]}
    calls = []

    def fake(source, **kwargs):
        calls.append((source, kwargs))
        return datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows, features=features),
                                     "dev": datasets.Dataset.from_dict(rows, features=features)})

    monkeypatch.setattr(datasets, "load_dataset", fake)
    data = load_data("someone/chats", revision="v1", on_bad_rows="skip", split="validation")
    assert calls == [("someone/chats", {"revision": "v1"})]
    assert list(data) == ["validation"]
    assert data["validation"]["input"] == ["#Person1#: Hi.", "#Person1#: Bye."]
    assert data["validation"].features["label"] == features["label"]
    with pytest.raises(DataError, match=r"someone/chats \(train split\): row 2: column 'dialogue' is empty"):
        load_data("someone/chats")


def test_real_load_dataset_offline_raises_data_error(monkeypatch) -> None:
    """The real datasets.load_dataset on a fake id with HF_HUB_OFFLINE: a DataError, fast, no traceback."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # datasets and huggingface_hub read HF_HUB_OFFLINE once, at import; mirror the env var there.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError) as info:
        load_data("llmcycle-tests/no-such-dataset")
    message = str(info.value)
    assert message.startswith("cannot reach the Hugging Face hub to fetch dataset llmcycle-tests/no-such-dataset")


def test_import_is_cheap() -> None:
    """``import llmcycle.data`` pulls in none of the heavy libraries."""
    heavy = ("datasets", "pyarrow", "torch", "pandas", "transformers")
    code = f"import sys, llmcycle.data; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo)
    assert out.stdout.strip() == "[]"


def test_unreachable_hub_uses_local_cache_only(monkeypatch) -> None:
    """With the hub unreachable and HF_HUB_OFFLINE unset, datasets runs cache-only inside the call
    (one clear sentence instead of retries) and its offline switch is restored afterwards."""
    import datasets.config
    import huggingface_hub.constants as hub_constants

    from llmcycle.core import hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    seen = {}

    def fake_load(*args, **kwargs):
        seen["offline"] = (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE)
        raise ConnectionError("Couldn't reach 'someone/nothing' on the Hub (offline mode is enabled)")

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    with pytest.raises(DataError, match="cannot reach the Hugging Face hub"):
        load_data("someone/nothing")
    assert seen["offline"] == (True, True)
    assert (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE) == (False, False)
