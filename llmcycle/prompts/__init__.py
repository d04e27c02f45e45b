"""Prompts: a template registry, few-shot builders and a context budget that reports every cut.

- ``templates``: ``PromptTemplate`` (``{field}`` placeholders checked when made) and the rule that
  fills a field from a data row (row column, else ``input`` / first reference aliases).
- ``registry``: ``TEMPLATES`` (builtins in ``catalog``: ``none``, ``instruction``, ``flan``, FLAN's
  SAMSum phrasings, ...), ``get_template``, ``register_template``, ``load_templates`` (YAML).
- ``shots``: selectors for in-context examples: first, explicit indices, seeded random, nearest by
  MiniLM embedding.
- ``builder``: ``build_prompt`` / ``build_prompts``: shots + query fitted to the token budget
  (drop shots, then truncate the input), recorded in ``BuiltPrompt``.
- ``chat``: the one chat path (``chat_prompt``, ``encode_conversation``, ``uses_chat``) through the
  tokenizer's chat template.
- ``config``: ``PromptConfig``, the recipe stage's view of all this.

Importing this package is cheap: no torch, transformers or sentence-transformers until a
selector embeds or a tokenizer is used.
"""

from llmcycle.prompts.budget import count_tokens, resolve_max_tokens
from llmcycle.prompts.builder import BuiltPrompt, PromptBatch, PromptSummary, build_prompt, build_prompts
from llmcycle.prompts.chat import (
    ChatMode,
    chat_messages,
    chat_prompt,
    conversation_turns,
    encode_conversation,
    has_chat_template,
    render_chat,
    resolve_chat,
    user_prompt,
    uses_chat,
)
from llmcycle.prompts.config import PromptConfig, build_prompts_from_config, prompt_template, shot_selector
from llmcycle.prompts.registry import TEMPLATES, get_template, list_templates, load_templates, register_template
from llmcycle.prompts.shots import (
    FirstShots,
    IndexShots,
    NearestShots,
    RandomShots,
    Selection,
    ShotSelector,
)
from llmcycle.prompts.templates import PromptError, PromptTemplate, available_fields, resolve_field

__all__ = [
    "TEMPLATES", "BuiltPrompt", "ChatMode", "chat_prompt", "conversation_turns", "encode_conversation",
    "resolve_chat", "user_prompt", "uses_chat", "FirstShots", "IndexShots", "NearestShots", "PromptBatch", "PromptConfig",
    "PromptError", "PromptSummary", "PromptTemplate", "RandomShots", "Selection", "ShotSelector",
    "available_fields", "build_prompt", "build_prompts", "build_prompts_from_config", "chat_messages",
    "count_tokens", "get_template", "has_chat_template", "list_templates", "load_templates", "prompt_template",
    "register_template", "render_chat", "resolve_field", "resolve_max_tokens", "shot_selector",
]
