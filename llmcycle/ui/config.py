"""``UIConfig``: what ``llmcycle ui`` needs, checked before anything listens.

Local only by default: the UI starts recipes (processes on this machine) and reads every file of the
runs directory, so listening on an address other machines reach needs an API key, and says so.
"""

from __future__ import annotations

import ipaddress

from pydantic import Field, model_validator

from llmcycle.core.config import StageConfig

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable from this machine only."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class UIConfig(StageConfig):
    """The local web UI: playground, runs and reports, recipe launcher."""

    runs_dir: str = Field("runs", min_length=1, description="The runs directory the UI lists, and where it starts "
                          "new runs.")
    host: str = Field("127.0.0.1", min_length=1, description="Interface to listen on; anything but a loopback "
                      "address needs api_key.")
    port: int = Field(7860, ge=0, le=65535, description="TCP port (0: any free port, printed at start).")
    api_key: str | None = Field(None, description="When set, the UI's data and actions need this key (the page asks "
                                "for it once); required on a non-loopback host. The CLI also reads LLMCYCLE_API_KEY.")

    @model_validator(mode="after")
    def _remote_needs_key(self) -> "UIConfig":
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("api_key: empty; pass a key or leave it out")
        if not is_loopback(self.host) and not self.api_key:
            raise ValueError(f"host: {self.host} is not a loopback address, so other machines could start recipes "
                             "and read every run through this UI; pass --api-key KEY (or set LLMCYCLE_API_KEY) to "
                             "require a key, or listen on --host 127.0.0.1")
        return self

    @property
    def allowed_hosts(self) -> set[str] | None:
        """Host names a request may address (DNS rebinding guard) when listening on loopback; None: any (a key is
        required then)."""
        if not is_loopback(self.host):
            return None
        return {"127.0.0.1", "localhost", "::1", self.host.strip("[]").lower()}
