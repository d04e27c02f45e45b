"""Experiment tracking (``report_to``) for every training loop, through accelerate's trackers.

One implementation serves the Hugging Face Trainer (``tune``, through ``TrackingCallback``) and llmcycle's own
loops (PPO, DPO, the reward model): ``Tracking(report_to, folder, run_name, config)`` starts accelerate's tracker
of each name (``accelerate.tracking.LOGGER_TYPE_TO_CLASS``: TensorBoard, Trackio, MLflow, W&B, Comet, ClearML,
Aim, DVCLive, SwanLab), stores the run's settings as its hyperparameters, logs each step's numbers and finishes.
Trackers that write files (TensorBoard, Aim, ...) write under ``folder`` (``<stage folder>/tracking/``), so the run
directory holds them; the others go where their own configuration says (``WANDB_PROJECT``, ``MLFLOW_TRACKING_URI``).
The run's own files (losses, rewards, KL in the result JSON and the report) do not depend on it.

Off by default (``report_to: []``). A tracker whose package is missing is refused when the config is checked,
before any work, naming what to install. Logging happens on the main process only (accelerate's rule), so a
``accelerate launch`` run logs once.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

TrackerName = Literal["tensorboard", "trackio", "mlflow", "wandb", "comet_ml", "clearml", "aim", "dvclive", "swanlab"]

PACKAGES: dict[str, tuple[str, ...]] = {
    "tensorboard": ("tensorboard", "tensorboardX"),  # accelerate writes through either
    "trackio": ("trackio",), "mlflow": ("mlflow",), "wandb": ("wandb",), "comet_ml": ("comet_ml",),
    "clearml": ("clearml",), "aim": ("aim",), "dvclive": ("dvclive",), "swanlab": ("swanlab",),
}
"""The Python packages (any one of them) each tracker needs."""


def _installed(names: list[str]) -> list[str]:
    seen: list[str] = []
    for name in names:
        if name in seen:
            continue
        if not any(find_spec(package) is not None for package in PACKAGES[name]):
            raise ValueError(f"{name!r} needs the {PACKAGES[name][0]} package, which is not installed "
                             f"(pip install {PACKAGES[name][0]})")
        seen.append(name)
    return seen


ReportTo = Annotated[list[TrackerName], AfterValidator(_installed)]
"""The ``report_to`` field's type: tracker names, each checked installed when the config is validated."""

REPORT_TO_HELP = ("Experiment trackers to log training to, as transformers' report_to: tensorboard, trackio, "
                  "mlflow, wandb, comet_ml, clearml, aim, dvclive, swanlab (off by default; TensorBoard and "
                  "other file-based trackers write under the stage folder's tracking/).")


def report_to_field() -> Any:
    """The ``report_to`` field every training config declares (documented once, here)."""
    return Field(default_factory=list, description=REPORT_TO_HELP)


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as ``a.b: value`` with values trackers accept (bool, str, int, float; lists as text)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{name}."))
        elif value is None or isinstance(value, (bool, str, int, float)):
            out[name] = "null" if value is None else value
        else:
            out[name] = str(value)
    return out


class Tracking:
    """The trackers of one training run: ``log(values, step)`` to each, ``finish()`` at the end (or ``with``)."""

    def __init__(self, report_to: list[str], folder: str | Path, run_name: str,
                 config: Mapping[str, Any] | None = None) -> None:
        self.names = list(report_to)
        self.folder = Path(folder)
        self.trackers: list[Any] = []
        if not self.names:
            return
        from accelerate.tracking import LOGGER_TYPE_TO_CLASS  # heavy: only when tracking is on

        self.folder.mkdir(parents=True, exist_ok=True)
        for name in self.names:
            cls = LOGGER_TYPE_TO_CLASS[name]
            tracker = cls(run_name, str(self.folder)) if cls.requires_logging_directory else cls(run_name)
            tracker.start()
            self.trackers.append(tracker)
        if config:
            settings = _flat(config)
            for tracker in self.trackers:
                tracker.store_init_configuration(settings)

    def log(self, values: Mapping[str, Any], step: int) -> None:
        """Log the numbers of ``values`` (others are skipped) at ``step``."""
        numbers = {k: float(v) for k, v in values.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if numbers:
            for tracker in self.trackers:
                tracker.log(numbers, step=step)

    def finish(self) -> None:
        for tracker in self.trackers:
            tracker.finish()
        self.trackers = []

    def __enter__(self) -> Tracking:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.finish()


def tracking_callback(tracking: Tracking) -> Any:
    """A ``transformers.TrainerCallback`` sending the Trainer's logs (loss, learning rate, eval loss) to
    ``tracking`` at the global step, and finishing it when training ends."""
    from transformers import TrainerCallback  # heavy

    class TrackingCallback(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None,
                   **kwargs: Any) -> None:
            if logs and state.is_world_process_zero:
                tracking.log(logs, state.global_step)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            tracking.finish()

    return TrackingCallback()
