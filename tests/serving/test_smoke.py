"""The serving smoke test behind the recipe's serve stage: real HTTP, outputs checked against offline generation."""

from __future__ import annotations

import json

from llmcycle.serving.smoke import SmokeConfig, smoke_test
from llmcycle.stages.serve import smoke_section


def test_smoke_test_serves_batches_and_matches_offline_generation(load_builtin, tmp_path):
    loaded = load_builtin("tiny-t5")
    prompts = [f"#Person1#: Is the shop open on day {i}? #Person2#: Yes, until six." for i in range(6)]
    result = smoke_test(loaded, prompts, SmokeConfig(requests=6, clients=3, max_wait_ms=200,
                                                         generation={"max_new_tokens": 6}),
                        tmp_path)
    assert result.ok == 6 and result.failed == 0
    assert result.matches_offline == 6 and result.stream_matches and result.stream_chunks >= 1
    assert all(400 <= code < 500 for code in result.bad_requests.values())
    assert sum(k * v for k, v in result.batches.items()) == 6 and max(result.batches) > 1  # it did batch
    assert result.passed
    saved = json.loads((tmp_path / "serve_smoke.json").read_text())
    assert saved["passed"] is True and saved["requests"] == 6
    section = smoke_section(result, "builtin:tiny-t5")
    assert "## Serving smoke test: passed" in section and "6 of 6" in section
