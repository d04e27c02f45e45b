"""``PPOConfig``: every option of a PPO run, documented once (pydantic; unknown fields are errors).

Errors name the dotted field: ``PPOConfig.from_dict({"batch_size": 4, "mini_batch_size": 8},
where="align")`` raises ``ConfigError("align: mini_batch_size: mini_batch_size (8) must not exceed
batch_size (4) ...")``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from llmcycle.core.config import StageConfig
from llmcycle.core.tracking import ReportTo, report_to_field
from llmcycle.generation.settings import GenerationSettings
from llmcycle.tuning.config import LoraOptions, TuneConfig


def _field_errors(model: str, problems: list[tuple[str, str, Any]]) -> ValidationError:
    """A ``ValidationError`` with one entry per ``(field, message, value)``, located at that field."""
    return ValidationError.from_exception_data(model, [
        InitErrorDetails(type=PydanticCustomError("ppo_config", "{msg}", {"msg": msg}), loc=(field,), input=value)
        for field, msg, value in problems])


# PPO can score a rollout only when its tokens were sampled from the policy's own (temperature-scaled)
# distribution: every field that changes the distribution or how rollouts are drawn is refused, naming why.
_SCORE = ("the rollouts' logprobs would no longer be those of the distribution they were sampled from "
          "(PPO scores them with the policy's own logits), so the ratio and the KL would be wrong")
_PPO_REFUSED: dict[str, str] = {
    "num_beams": f"beam search picks tokens by the beams' scores instead of sampling them: {_SCORE}; "
                 "leave num_beams at 1",
    "length_penalty": "a beam search setting; PPO samples its rollouts without beams (num_beams 1)",
    "early_stopping": "a beam search setting; PPO samples its rollouts without beams (num_beams 1)",
    "no_repeat_ngram_size": f"it bans tokens from the distribution sampled: {_SCORE}; leave it at 0",
    "repetition_penalty": f"it rescales the logits sampled from: {_SCORE}; leave it at 1.0",
    "frequency_penalty": f"it shifts the logits sampled from: {_SCORE}; leave it at 0",
    "presence_penalty": f"it shifts the logits sampled from: {_SCORE}; leave it at 0",
    "stop": "stop strings end a rollout where the policy did not choose to end, and the reward would score a "
            "text cut before the stop string while PPO trains on its tokens; end responses with the end token "
            "or max_new_tokens",
    "num_return_sequences": "PPO draws one response per prompt; more rollouts per step come from batch_size",
    "seed": "PPO seeds its rollouts from ppo.seed and the step (align: one run per entry of seeds); set "
            "ppo.seed instead",
}


class RolloutGeneration(GenerationSettings):
    """How rollouts are sampled: the generation settings, less beam search, penalties, stop strings and seed."""

    # Every field that changes the distribution tokens are drawn from, or how rollouts are drawn, is refused
    # (``_PPO_REFUSED``); the rollouts' seed is ``PPOConfig.seed`` (and the step). The sampling fields are
    # redefined only to say what they mean for PPO's logprobs; their checks are GenerationSettings'.
    do_sample: bool = Field(True, description="Sample responses (true: PPO needs exploration); false: greedy.")
    max_new_tokens: int = Field(16, ge=1, description="Most tokens per response (the end token included).")
    temperature: float = Field(1.0, description="Softmax temperature when sampling (> 0). Logprobs of the policy "
                               "and the reference are computed from logits / temperature too, so the ratio and "
                               "the KL refer to the distribution actually sampled from.")
    top_k: int = Field(0, ge=0, description="Sample among the k most likely tokens only (0: off). Logprobs ignore "
                       "the truncation (as TRL did): keep it off unless you need it.")
    top_p: float = Field(1.0, description="Nucleus sampling mass in (0, 1] (1: off); logprobs ignore it.")
    max_query_tokens: int | None = Field(None, ge=1, description="Prompts longer than this many tokens are cut "
                                         "(logged); None: the model's input limit.")

    def _problems(self) -> list[tuple[str, str]]:
        """The combination checks of ``GenerationSettings``, and every field PPO cannot score (set away from
        its default) refused, located at that field."""
        refused = [(name, f"{name}={getattr(self, name)!r} cannot be used with PPO: {_PPO_REFUSED[name]}")
                   for name in self.non_default_fields(set(type(self).model_fields) - set(_PPO_REFUSED))]
        named = {name for name, _ in refused}
        return refused + [(name, msg) for name, msg in super()._problems() if name not in named]

    def settings(self, seed: int = 0, greedy: bool = False) -> GenerationSettings:
        """The ``GenerationSettings`` for the engine, sampling with ``seed`` (``greedy=True``: the monitor's
        greedy decoding, the sampling fields reset)."""
        kw = self.model_dump(exclude={"preset", "max_query_tokens"}) | {"seed": seed}
        if greedy or not self.do_sample:
            kw |= {"do_sample": False, "temperature": 1.0, "top_k": 0, "top_p": 1.0}
        return GenerationSettings(**kw)


class KLOptions(StageConfig):
    """The per-token KL penalty against the frozen reference and its coefficient's controller."""

    mode: Literal["adaptive", "fixed"] = Field("adaptive", description="'adaptive': Ziegler et al. (2019) "
                                                "controller steering the KL towards target; 'fixed': init_coef "
                                                "throughout.")
    init_coef: float = Field(0.2, ge=0, description="KL coefficient beta at the start (0: no penalty).")
    target: float = Field(6.0, gt=0, description="Adaptive mode: the sequence KL (nats, summed over response "
                          "tokens, mean over rollouts) the controller aims for.")
    horizon: float = Field(10000, gt=0, description="Adaptive mode: rollouts over which a 20% KL error changes "
                           "the coefficient by a factor ~e^0.2: beta *= 1 + clip(kl/target - 1, -0.2, 0.2) * "
                           "batch_size / horizon after every step.")
    eos_coef: float = Field(0.0, ge=0, description="Weight, in the loss, of the KL between the policy's and the "
                            "reference's probability of ending the response, at every response position (0: off). "
                            "Anchors response length: the policy cannot raise its reward by stopping earlier (a "
                            "summariser cutting its summary short to avoid a penalised ending) or later than the "
                            "reference would, only by changing what it says.")
    loss_coef: float = Field(0.0, ge=0, description="Weight, in the loss, of the exact KL(policy || reference) "
                             "of the next-token distributions (summed over the whole vocabulary, mean over response "
                             "positions; 0: off), on top of the penalty in the reward. The penalty in the reward "
                             "only sees the sampled tokens and reaches the weights through noisy advantages, so "
                             "with few rollouts per step the policy drifts where the reward says nothing; this "
                             "term pulls every visited next-token distribution back towards the reference "
                             "directly, while a change the reward pays for (one position of one response) costs "
                             "little. Keeps the reference's log-probabilities of each rollout batch in memory: "
                             "batch_size x max_new_tokens x vocabulary floats.")
    estimator: Literal["k3", "abs", "squared"] = Field(
        "k3", description="Per-token KL estimator, all non-negative, with r = ref_logp - logp: 'k3' exp(r) - 1 - r "
        "(Schulman: unbiased for KL(policy||ref) on policy samples, low variance); 'abs' |r|; 'squared' r^2 / 2.")


class MonitorOptions(StageConfig):
    """Reward-hacking monitor: greedy responses on held-out prompts, checked every ``every`` steps."""

    every: int | None = Field(None, ge=1, description="Evaluate every this many steps (and before the first); "
                              "None: off.")
    n_samples: int = Field(16, ge=1, description="Held-out prompts evaluated (the first n of eval_prompts; without "
                           "eval_prompts, a seeded sample split off the training prompts, which needs references).")
    max_rouge_drop: float = Field(0.05, ge=0, description="Warn when ROUGE-1 against the references falls more than "
                                  "this below its value before training (absolute, in [0, 1]).")
    min_distinct2: float = Field(0.2, ge=0, le=1, description="Warn when distinct-2 of the responses falls below "
                                 "this (repetitive, collapsed outputs).")
    max_kl: float | None = Field(None, gt=0, description="Warn when the mean sequence KL of the greedy responses "
                                 "exceeds this; None: no bound.")
    action: Literal["warn", "stop", "rollback"] = Field(
        "warn", description="'warn': log and record; 'stop': also end the run (after checkpointing the step); "
        "'rollback': end the run with the policy as it was at the last check that passed (the start of the run "
        "at worst), like early stopping on a validation metric.")


class PPOConfig(StageConfig):
    """A PPO run: rollouts, KL penalty, GAE, clipped losses, optimisation, monitor, checkpoints."""

    steps: int = Field(20, ge=1, description="PPO steps (one rollout batch and its updates each).")
    batch_size: int = Field(16, ge=1, description="Rollouts (prompt, response) per step.")
    mini_batch_size: int = Field(4, ge=1, description="Rollouts per gradient step; batch_size / mini_batch_size "
                                 "gradient steps per PPO epoch.")
    ppo_epochs: int = Field(4, ge=1, description="Passes over each rollout batch.")
    learning_rate: float = Field(1.41e-5, gt=0, description="AdamW learning rate (constant) of the policy's "
                                 "trainable parameters.")
    value_learning_rate: float = Field(1e-3, gt=0, description="AdamW learning rate (constant) of the value head, "
                                       "a fresh linear layer: at the policy's rate it would barely move in a few "
                                       "dozen steps, and advantages would be little more than whitened returns.")
    value_warmup_steps: int = Field(0, ge=0, description="The first this many steps train only the value head on "
                                    "their rollouts (the policy does not change), so that advantages credit the "
                                    "tokens that changed the expected reward from the first policy update on. "
                                    "Counted within steps.")
    generation: RolloutGeneration = Field(default_factory=RolloutGeneration,
                                          description="Sampling of rollouts (the generation settings; those PPO "
                                          "cannot score are refused).")
    kl: KLOptions = Field(default_factory=KLOptions, description="KL penalty and its controller.")
    gamma: float = Field(1.0, ge=0, le=1, description="Discount of GAE.")
    lam: float = Field(0.95, ge=0, le=1, description="Lambda of GAE (bias/variance trade-off).")
    cliprange: float = Field(0.2, gt=0, description="Policy ratio clipped to [1 - c, 1 + c].")
    cliprange_value: float = Field(0.2, gt=0, description="Value predictions clipped to old value +- c.")
    vf_coef: float = Field(0.1, ge=0, description="Weight of the value loss in the total loss.")
    whiten_advantages: bool = Field(True, description="Normalise advantages to mean 0 / std 1 over the batch's "
                                    "response tokens.")
    normalize_rewards: bool = Field(False, description="Scale scores by a running mean/std before adding them "
                                    "(an object passed as train_ppo(normalizer=...) wins).")
    dense_rewards: bool = Field(False, description="Reward every token with the change it made to the reward of "
                                "the response so far (the reward callable scores each prefix; the sum over a "
                                "response is its score up to a constant, so what is optimal does not change), "
                                "instead of the whole score on the last token: credit lands on the words that "
                                "cost the reward, not on every word of a response that contains them. One reward "
                                "call per response token: for cheap rewards such as a linear classifier.")
    ptx_coef: float = Field(0.0, ge=0, description="PPO-ptx (Ouyang et al. 2022): weight of a supervised loss "
                            "added to every policy mini-batch, the mean negative log-likelihood of (prompt, target) "
                            "pairs from the data the policy was fine-tuned on (train_ppo's ptx_data; in the align "
                            "stage, the train split's inputs and first references), mini_batch_size pairs at a "
                            "time. It holds the policy to the task it was fine-tuned for where the reward alone "
                            "lets it drift (the 'alignment tax'); 0: off.")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Clip the global gradient norm (None: no clipping).")
    kl_stop: float | None = Field(None, gt=0, description="End the run when a rollout's mean sequence KL exceeds "
                                  "this (before updating on it); None: never.")
    method: Literal["full", "lora"] = Field("full", description="'full': every weight trains, the reference is a "
                                            "frozen copy; 'lora': only adapters train, the reference is the same "
                                            "model with the adapter disabled (no copy).")
    lora: LoraOptions = Field(default_factory=LoraOptions, description="Options of method lora.")
    seed: int = Field(0, ge=0, description="Seed of prompt order, sampling, mini-batch order and the value head.")
    save_every: int = Field(50, ge=1, description="Checkpoint every this many steps (and at the last step).")
    keep_checkpoints: int | None = Field(2, ge=1, description="Newest checkpoints kept; None keeps all.")
    log_every: int = Field(1, ge=1, description="Log a progress line (step, reward, KL, ETA) every this many steps.")
    report_to: ReportTo = report_to_field()
    save_model: bool = Field(True, description="Write the final policy (or adapter) and value head to model/.")
    monitor: MonitorOptions = Field(default_factory=MonitorOptions, description="Reward-hacking monitor.")

    @model_validator(mode="after")
    def _check(self) -> PPOConfig:
        problems = []
        if self.mini_batch_size > self.batch_size:
            msg = (f"mini_batch_size ({self.mini_batch_size}) must not exceed batch_size ({self.batch_size}), "
                   "the rollouts per step")
            problems.append(("mini_batch_size", msg, self.mini_batch_size))
        elif self.batch_size % self.mini_batch_size:
            msg = f"batch_size ({self.batch_size}) must be a multiple of mini_batch_size ({self.mini_batch_size})"
            problems.append(("mini_batch_size", msg, self.mini_batch_size))
        if self.dense_rewards and self.normalize_rewards:
            problems.append(("dense_rewards", "dense_rewards scores prefixes whose differences a running "
                             "normalisation would distort; set normalize_rewards: false", self.dense_rewards))
        if self.value_warmup_steps >= self.steps:
            msg = (f"value_warmup_steps ({self.value_warmup_steps}) must be fewer than steps ({self.steps}), "
                   "or the policy never trains")
            problems.append(("value_warmup_steps", msg, self.value_warmup_steps))
        if problems:
            raise _field_errors(type(self).__name__, problems)
        return self

    def resume_key(self) -> dict[str, Any]:
        """The fields a resumed run must share with the run that wrote the checkpoints (all but bookkeeping)."""
        return self.model_dump(mode="json", exclude={"steps", "log_every", "save_every", "keep_checkpoints",
                                                     "save_model", "report_to"})

    def tune_config(self) -> Any:
        """The ``TuneConfig`` that ``llmcycle.tuning.methods.apply_method`` needs for ``method``."""
        return TuneConfig(method=self.method, lora=self.lora, seed=self.seed)
