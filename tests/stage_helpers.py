"""Watching registered stages in tests: which ran, or what they do instead."""

from __future__ import annotations


def spy_on(monkeypatch, kind, replacement=None, calls=None):
    """Record in ``calls`` (and optionally replace) what the registered stage ``kind`` runs."""
    from llmcycle.stages import get_stage

    stage = get_stage(kind)
    real = stage.run

    def run(ctx, cfg, out):
        if calls is not None:
            calls.append(kind)
        return (replacement or real)(ctx, cfg, out)

    monkeypatch.setattr(stage, "run", run)
