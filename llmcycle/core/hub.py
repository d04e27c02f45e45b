"""Is the Hugging Face hub reachable? One quick answer shared by the model and data loaders.

Offline, transformers and datasets retry for ~25 s before failing; a TCP connect that fails at
once (no DNS, no route) lets llmcycle say so in one sentence instead, and lets the libraries use
their local caches only.
"""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator
from urllib.parse import urlparse


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the Hugging Face hub answers a TCP connect (False when HF_HUB_OFFLINE is set).

    A connect that fails at once (no DNS, no route) spares the user transformers' ~25 s of retries
    before the same failure.
    """
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # behind a proxy a direct connect proves nothing: let the hub client decide
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextmanager
def offline_unless_reachable() -> Iterator[bool]:
    """Within the block, ``datasets`` and ``huggingface_hub`` use local caches only when the hub is
    unreachable (they read HF_HUB_OFFLINE once, at import, so their module constants are switched).
    Yields whether the hub is reachable."""
    online = hub_reachable()
    if online:
        yield True
        return
    import datasets.config
    import huggingface_hub.constants as hub_constants

    before = (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
    try:
        yield False
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = before
