"""Token streaming: the text of one request, sent as it is generated (server-sent events).

``DeltaStreamer`` is a transformers streamer (``BaseStreamer``: ``model.generate`` calls ``put`` with
each new token on the model thread). It decodes the tokens so far exactly as the engine decodes the
final output and queues the new text for the event loop, the way transformers'
``AsyncTextIteratorStreamer`` does. It does not reuse that class's text, which is cut at word
boundaries with its own decoding of partial caches and can differ from the final text in spacing;
here the streamed pieces always join into the very text a non-streamed request returns:

* text after a stop string is never sent, and the last ``len(stop) - 1`` characters are held back
  until they cannot begin a stop string;
* leading and trailing whitespace is held back (the final text is stripped), and so is a trailing
  U+FFFD (the bytes of a character split over several tokens);
* when generation ends, whatever the final text has beyond what was sent goes out last.

A client that disconnects sets ``cancelled``; the next ``put`` raises ``StreamCancelled``, which
ends that ``generate`` call early and frees the model thread.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator, Sequence

from transformers.generation.streamers import BaseStreamer

from llmcycle.generation.processors import trim_at_stop
from llmcycle.models.tokenizer import decode_text, is_wordpiece


class StreamCancelled(Exception):
    """The client of a streamed request went away."""


class Deltas:
    """What of a growing text may be sent yet (see the module docstring); ``sent`` is what was."""

    def __init__(self, stops: Sequence[str] = (), hold_word: bool = False):
        self.stops = list(stops)
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.hold_word = hold_word  # the last word may still change (WordPiece cleanup joins it to the next token)
        self.sent = ""

    def update(self, text: str) -> str:
        """The new piece that may go out now that the whole output so far is ``text``."""
        text, hit = trim_at_stop(text, self.stops)
        if not hit:
            text = text[:len(text) - self.hold].rstrip("\ufffd")  # U+FFFD: a character still being decoded
            if self.hold_word:
                text = text.strip()
                text = text[:max(text.rfind(" "), 0)]
        return self._advance(text.strip())

    def finish(self, final: str) -> str:
        """The rest of ``final`` (the engine's finished text) beyond what was sent."""
        return self._advance(final)

    def _advance(self, text: str) -> str:
        if len(text) <= len(self.sent) or not text.startswith(self.sent):
            return ""
        piece, self.sent = text[len(self.sent):], text
        return piece


class DeltaStreamer(BaseStreamer):
    """Feeds the event loop the new text of one generation as tokens arrive (see the module docstring)."""

    def __init__(self, tokenizer: Any, stops: Sequence[str] = ()):
        self.tokenizer = tokenizer
        self.deltas = Deltas(stops, hold_word=is_wordpiece(tokenizer))
        self.ids: list[int] = []
        self.cancelled = False
        self._prompt_seen = False
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()

    # model thread
    def put(self, value: Any) -> None:
        if self.cancelled:
            raise StreamCancelled("the client disconnected")
        if not self._prompt_seen:  # the prompt (decoder-only) or the decoder start token (seq2seq)
            self._prompt_seen = True
            return
        self.ids.extend(value.reshape(-1).tolist())  # (1,) per step: one request, one sequence
        piece = self.deltas.update(decode_text(self.tokenizer, self.ids))
        if piece:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, piece)

    def end(self) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, None)

    # event loop
    def close(self) -> None:
        """End the stream from the event loop (generation failed before ``end``)."""
        self._queue.put_nowait(None)

    async def pieces(self) -> AsyncIterator[str]:
        """The text pieces, as they come, until generation ends."""
        while (piece := await self._queue.get()) is not None:
            yield piece


def sse(data: Any) -> str:
    """One server-sent event carrying ``data`` as JSON (or the literal ``[DONE]``)."""
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"
