"""Publishing a saved model on the Hugging Face Hub: the ``hub`` block of every stage that saves one (tune,
pretrain, align, optimize), documented once here, and ``push_folder``, which uploads a saved folder with
``huggingface_hub.HfApi`` (``create_repo`` + ``upload_folder``).

Pushing is off by default. It happens after the model and its card (``llmcycle.models.card``) are saved, so a
push that fails (offline, ``HF_HUB_OFFLINE=1``, no token, no rights) fails in one line naming ``hub.push`` and
leaves the saved folder as it is; ``hf upload REPO FOLDER`` publishes it later. The repository id is checked
when the config is read, before any work.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from llmcycle.core.config import StageConfig
from llmcycle.core.errors import LLMCycleError

HUB_HELP = ("Publish the saved model (with its model card) on the Hugging Face Hub after it is saved: push, "
            "repo_id, private, token_env. Off by default; a push that fails leaves the saved model in place.")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class HubOptions(StageConfig):
    """Where and how a saved model is pushed to the Hugging Face Hub."""

    push: bool = Field(False, description="Upload the saved model folder (weights or adapter, tokenizer, README.md "
                       "model card) to the Hub repository repo_id once it is saved (created if missing). Needs the "
                       "network and a token with write access; offline (HF_HUB_OFFLINE=1) it fails in one line "
                       "after the local save.")
    repo_id: str | None = Field(None, description="The Hub repository, namespace/name (me/flan-t5-dialogsum-lora) "
                                "or name (under the token's user).")
    private: bool = Field(True, description="Create the repository private (only when it does not exist yet).")
    token_env: str = Field("HF_TOKEN", description="Environment variable holding the Hub token (unset: the token "
                           "saved by `hf auth login`). The token itself never goes in a recipe.")

    @field_validator("repo_id")
    @classmethod
    def _repo_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from huggingface_hub.errors import HFValidationError
        from huggingface_hub.utils import validate_repo_id

        try:
            validate_repo_id(value)
        except HFValidationError as exc:
            raise ValueError(f"{value!r} is not a Hub repository id: write namespace/name or name (letters, digits, "
                             "'-', '_', '.'; no '--' or '..'; at most 96 characters)") from exc
        return value

    @field_validator("token_env")
    @classmethod
    def _token_env(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError(f"{value!r} is not an environment variable name (the name of the variable holding "
                             "the token, e.g. HF_TOKEN; never the token itself)")
        return value

    @model_validator(mode="after")
    def _needs_repo(self) -> HubOptions:
        if self.push and not self.repo_id:
            raise ValidationError.from_exception_data(type(self).__name__, [InitErrorDetails(
                type=PydanticCustomError("hub", "push: true needs the Hub repository to push to (namespace/name)"),
                loc=("repo_id",), input=None)])
        return self


def hub_field() -> Any:
    """The ``hub`` field every config of a stage that saves a model declares (documented once, here)."""
    return Field(default_factory=HubOptions, description=HUB_HELP)


def push_folder(folder: str | Path, hub: HubOptions, *, where: str = "hub") -> str | None:
    """Upload ``folder`` to ``hub.repo_id`` when ``hub.push``; returns the repository's URL (None: not pushed).

    ``where`` names the block in errors (``tune.hub``). Any failure of the Hub client (offline, network, token,
    rights) is an ``LLMCycleError`` of one line that names ``<where>.push`` and says the folder is kept.
    """
    if not hub.push:
        return None
    folder = Path(folder)
    if not folder.is_dir():
        raise LLMCycleError(f"{where}.push: nothing to push: {folder} is not a saved model folder")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import OfflineModeIsEnabled

    token = os.environ.get(hub.token_env) or None
    try:
        api = HfApi(token=token)
        url = api.create_repo(hub.repo_id, private=hub.private, exist_ok=True, repo_type="model")
        api.upload_folder(repo_id=hub.repo_id, folder_path=str(folder), repo_type="model",
                          commit_message=f"llmcycle: upload {folder.name}", ignore_patterns=[".*"])
    except Exception as exc:  # the Hub client's errors vary (offline, httpx, HTTP status): all mean "not pushed"
        reason = ("offline mode is on (HF_HUB_OFFLINE=1)" if isinstance(exc, OfflineModeIsEnabled)
                  else " ".join(str(exc).split())[:200] or type(exc).__name__)
        raise LLMCycleError(
            f"{where}.push: could not push to the Hugging Face Hub repository {hub.repo_id}: {reason}. The model is "
            f"saved in {folder}; publish it later with `hf upload {hub.repo_id} {folder}`, or set "
            f"{where}.push: false") from exc
    return str(url)
