"""The floor every other package stands on: errors, typed config bases, the hub probe, atomic files
and checkpoints. Nothing here imports another llmcycle package, torch or transformers at import time.

- ``errors``: ``LLMCycleError`` and its kinds; messages name the field, file, row or model source.
- ``config``: ``StageConfig`` (unknown fields are errors), ``ModelConfig``, ``DataConfig``, YAML reading.
- ``hub``: whether the Hugging Face hub is reachable, asked once.
- ``files``: atomic writes, config hashes, which fields changed since a run started.
- ``checkpoint``: the one checkpoint format of tuning, PPO and DPO (completion marker, same-run check).
"""
