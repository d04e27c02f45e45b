"""The UI's JSON API (``llmcycle.ui.app``) through FastAPI's TestClient: what each route shows for good runs, and a
clear 4xx message (never a traceback) for each kind of bad input: a recipe that does not validate, a model that does
not load, settings that are invalid (named field by field), a run directory from an older version, a path that
leaves the run directory. Looking never changes anything on disk."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.ui.ui_helpers import copy_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory, finished_run) -> Path:
    """A runs directory: a finished run, a copy of it, an interrupted one, one from an 'older version', a folder
    that is not a run, and a link leading out of a run."""
    root = tmp_path_factory.mktemp("ui") / "runs"
    done = copy_run(finished_run, root, "tiny-a")
    copy_run(finished_run, root, "tiny-b")
    copy_run(finished_run, root, "tiny-stopped", interrupted=True)
    old = root / "old-20200101-000000"
    (old / "stages").mkdir(parents=True)
    recipe = json.loads((done / "recipe.json").read_text())
    recipe["stages"] = [{"summarize": {"beams": 4}}]  # a stage kind this version does not have
    (old / "recipe.json").write_text(json.dumps(recipe))
    (old / "environment.json").write_text(json.dumps({"versions": {"llmcycle": "0.0.1"}}))
    (old / "stages" / "01-summarize.done.json").write_text(json.dumps({"summary": {"seconds": 1.0}}))
    odd = copy_run(finished_run, root, "tiny-odd")  # results in a shape this version does not know
    (odd / "01-tune" / "tune_result.json").write_text(json.dumps({"loss": "low"}))
    (root / "not-a-run").mkdir()
    outside = root.parent / "secret.txt"
    outside.write_text("not for the UI")
    os.symlink(outside, done / "escape.txt")
    return root


@pytest.fixture(scope="module")
def client(runs):
    from fastapi.testclient import TestClient

    from llmcycle.ui.app import create_ui_app

    with TestClient(create_ui_app({"runs_dir": str(runs)}), base_url="http://127.0.0.1",
                    raise_server_exceptions=False) as c:
        yield c


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) <= {"error", "fields"} and body["error"], body
    assert "Traceback" not in body["error"]
    return body["error"]


def test_page_is_served_and_fetches_nothing_from_elsewhere(client):
    page = client.get("/")
    assert page.status_code == 200 and "<script src=\"/static/app.js\">" in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    error_of(client.get("/static/secrets.txt"), 404)
    texts = [page.text] + [client.get(f"/static/{n}").text for n in ("app.js", "style.css")]
    for text in texts:  # every URL the page could load is its own (the SVG namespace is a name, not a fetch)
        urls = set(re.findall(r"https?://[^\s\"'`)]+", text)) - {"http://www.w3.org/2000/svg"}
        assert urls == set(), urls
        assert "@import" not in text and "fonts.googleapis" not in text


def test_runs_table_shows_each_kind_of_run(client):
    body = client.get("/api/runs").json()
    rows = {r["name"]: r for r in body["runs"]}
    assert set(rows) == {"tiny-a", "tiny-b", "tiny-stopped", "tiny-odd", "old-20200101-000000"}  # not not-a-run
    a = rows["tiny-a"]
    assert a["status"] == "done" and a["model"] == "builtin:tiny-t5" and (a["done"], a["total"]) == (3, 3)
    assert [s["kind"] for s in a["stages"]] == ["tune", "evaluate", "estimate"]
    assert any(h.startswith("base ROUGE-1: ") for h in a["headline"]) and a["when"]
    assert rows["tiny-stopped"]["status"] == "interrupted" and rows["tiny-stopped"]["resumable"]
    assert "03-estimate started but did not finish" in rows["tiny-stopped"]["note"]
    old = rows["old-20200101-000000"]
    assert old["status"] == "unreadable" and not old["resumable"]
    assert "written by llmcycle 0.0.1" in old["note"] and "unknown stage 'summarize'" in old["note"]
    assert old["stages"] == [{"name": "01-summarize", "kind": "summarize", "state": "done", "seconds": 1.0}]
    odd = client.get("/api/runs/tiny-odd").json()
    assert odd["status"] == "done" and odd["metrics"]["tune"] == "(results unreadable by this version)"
    assert odd["metrics"]["evaluate base ROUGE-1"] == rows["tiny-a"]["metrics"]["evaluate base ROUGE-1"]


def test_one_run_its_report_models_and_files(client, runs):
    run = client.get("/api/runs/tiny-a").json()
    assert run["status"] == "done"
    assert run["models"] == [{"value": "run:tiny-a/tuned-lora", "label": "tuned-lora", "what": "lora adapter"}]
    paths = {f["path"] for f in run["files"]}
    assert {"report.html", "report.md", "recipe.json", "01-tune/tune_result.json"} <= paths
    assert "escape.txt" not in paths  # a link leading out of the run is not offered
    report = client.get("/api/runs/tiny-a/report")
    assert report.status_code == 200 and "<h1>llmcycle run: tiny</h1>" in report.text
    # text from data and models is in there: in the UI's origin it may not run scripts or load anything
    assert "default-src 'none'" in report.headers["content-security-policy"]
    assert "sandbox" in report.headers["content-security-policy"]
    got = client.get("/api/runs/tiny-a/files/01-tune/tune_result.json")
    assert got.status_code == 200 and got.content == (runs / "tiny-a" / "01-tune" / "tune_result.json").read_bytes()
    assert got.headers["content-disposition"].startswith("attachment")
    assert got.headers["content-security-policy"] == report.headers["content-security-policy"]
    assert client.get("/api/runs/tiny-a/files/report.html?inline=1").headers["content-disposition"].startswith("inline")
    stopped = client.get("/api/runs/tiny-stopped/report")  # no report.html yet: the finished sections, in memory
    assert stopped.status_code == 200 and "Fine-tuning: lora" in stopped.text and "03-estimate" in stopped.text
    assert "unknown stage" in client.get("/api/runs/old-20200101-000000/report").text


@pytest.mark.parametrize("path, status, fragment", [
    ("/api/runs/tiny-a/files/..%2F..%2Fsecret.txt", 400, "without '..'"),
    ("/api/runs/tiny-a/files/01-tune%2F..%2F..%2Ftiny-b%2Frecipe.json", 400, "without '..'"),
    ("/api/runs/tiny-a/files/%2Fetc%2Fpasswd", 400, "without '..'"),
    ("/api/runs/tiny-a/files/escape.txt", 400, "leads outside the run directory"),
    ("/api/runs/tiny-a/files/nope.json", 404, "has no file 'nope.json'"),
    ("/api/runs/not-a-run/files/x", 404, "no run 'not-a-run'"),
    ("/api/runs/..%2Ftiny-a/report", 404, "no page /api/runs/../tiny-a/report"),
    ("/api/runs/.hidden", 404, "no run"),
    ("/api/runs/missing", 404, "no run 'missing'"),
    ("/api/compare?run=tiny-a", 400, "two or more runs"),
    ("/api/compare?run=tiny-a&run=tiny-a", 400, "picked twice"),
    ("/api/compare?run=tiny-a&run=missing", 404, "no run 'missing'"),
    ("/api/compare?run=tiny-a&run=old-20200101-000000", 400, "cannot read this run"),
    ("/api/jobs/tiny-a", 404, "was started from this page"),
    ("/api/nowhere", 404, "no page /api/nowhere"),
])
def test_bad_run_requests_get_a_clear_message(client, path, status, fragment):
    assert fragment in error_of(client.get(path), status)


def test_compare_lines_up_metrics_and_overlays_curves(client):
    c = client.get("/api/compare?run=tiny-a&run=tiny-b").json()
    assert [r["name"] for r in c["runs"]] == ["tiny-a", "tiny-b"]
    metrics = {m["metric"]: m["values"] for m in c["metrics"]}
    assert "evaluate base ROUGE-1" in metrics and "evaluate tuned ROUGE-1" in metrics
    assert all(len(v) == 2 and v[0] == v[1] for v in metrics.values())  # a copy: equal figures side by side
    curves = {ch["name"]: ch["series"] for ch in c["curves"]}
    loss = curves["tune train_loss"]
    assert [s["run"] for s in loss] == ["tiny-a", "tiny-b"] and [p[0] for p in loss[0]["points"]] == [1.0, 2.0]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def test_looking_changes_nothing_on_disk(client, runs):
    before = snapshot(runs.parent)
    assert client.get("/api/options").status_code == 200
    for run in client.get("/api/runs").json()["runs"]:
        name = run["name"]
        assert client.get(f"/api/runs/{name}").status_code == 200
        assert client.get(f"/api/runs/{name}/report").status_code == 200
        for f in client.get(f"/api/runs/{name}").json()["files"]:
            assert client.get(f"/api/runs/{name}/files/{f['path']}").status_code == 200
    assert client.get("/api/compare?run=tiny-a&run=tiny-b&run=tiny-stopped").status_code == 200
    assert client.post("/api/launch/check", json={"recipe": "quickstart"}).status_code == 200
    assert client.post("/api/launch/check", json={"yaml": "name: x\nmodel: {source: builtin:tiny-t5}\n"
                                                  "stages: [{estimate: {}}]"}).status_code == 200
    assert snapshot(runs.parent) == before


def test_options_offer_builtins_templates_recipes_and_the_runs_models(client):
    o = client.get("/api/options").json()
    assert "builtin:tiny-t5" in [b["value"] for b in o["builtins"]]
    assert "quickstart" in o["recipes"] and "none" in [t["name"] for t in o["templates"]]
    assert {m["value"] for m in o["run_models"]} == {f"run:{r}/tuned-lora" for r in
                                                    ("tiny-a", "tiny-b", "tiny-stopped", "tiny-odd")}
    fields = {f["name"]: f for f in o["generation_fields"]}
    assert fields["max_new_tokens"]["type"] == "integer" and fields["max_new_tokens"]["default"] == 64
    assert fields["early_stopping"]["choices"] == [True, False, "never"] and "preset" not in fields


# ---- generation settings, field by field ---------------------------------------------------------------------


@pytest.mark.parametrize("settings, errors", [
    ({"max_new_tokens": 8}, {}),
    ({"temperature": 0.5}, {"temperature": "has no effect without sampling"}),
    ({"do_sample": True, "temperature": 0}, {"temperature": "must be > 0 when do_sample is true"}),
    ({"max_new_tokens": 0, "top_p": 3}, {"max_new_tokens": "greater than or equal to 1", "top_p": "(0, 1]"}),
    ({"max_new_tokens": "many"}, {"max_new_tokens": "valid integer"}),
    ({"early_stopping": True}, {"early_stopping": "only applies to beam search"}),
    ({"num_return_sequences": 2}, {"num_return_sequences": "must not exceed num_beams"}),
    ({"temprature": 0.7}, {"temprature": "unknown field; valid: preset, max_new_tokens"}),
    ({"stop": [""]}, {"stop": "must not be empty"}),
])
def test_settings_are_checked_field_by_field(client, settings, errors):
    got = client.post("/api/settings/check", json={"generation": settings}).json()["errors"]
    assert set(got) == set(errors)
    for field, fragment in errors.items():
        assert fragment in got[field], got


# ---- the playground ----------------------------------------------------------------------------------------------


def one(source="builtin:tiny-t5", **generation):
    return {"model": {"source": source}, "generation": {"max_new_tokens": 4, **generation}}


@pytest.mark.parametrize("body, field, fragment", [
    ({}, "columns", "Field required"),
    ({"columns": []}, "columns", "at least 1 item"),
    ({"columns": [one(), one(), one()]}, "columns", "at most 2 items"),
    ({"columns": [one(temperature=2)]}, "columns[0].generation.temperature", "no effect without sampling"),
    ({"columns": [one(), one(num_beams=0)]}, "columns[1].generation.num_beams", "greater than or equal to 1"),
    ({"columns": [one("builtin:nope")], "input": "x"}, "columns[0].model.source", "unknown builtin model"),
    ({"columns": [one("/no/such/folder")], "input": "x"}, "columns[0].model.source", "no such model directory"),
    ({"columns": [one("run:tiny-a/aligned")], "input": "x"}, "columns[0].model.source",
     "run tiny-a has no model 'aligned'; its models: tuned-lora"),
    ({"columns": [one("run:missing/tuned-lora")], "input": "x"}, "columns[0].model.source", "no run 'missing'"),
    ({"columns": [one("run:tiny-a")], "input": "x"}, "columns[0].model.source", "run:<run>/<label>"),
    ({"columns": [one("run:old-20200101-000000/x")], "input": "x"}, "columns[0].model.source",
     "cannot read this run"),
    ({"columns": [{"model": {"source": "run:tiny-a/tuned-lora", "adapter": "/x"}}]}, "columns[0].model.adapter",
     "loaded as the run made it"),
    ({"columns": [one()], "template": "nope"}, "template", "unknown"),
    ({"columns": [one()], "template": "qa", "input": "x"}, "template", "needs field 'context'"),
    ({"columns": [one()], "input": "x", "max_input_tokens": 1, "template": "instruction"}, "template",
     "more than max_input_tokens=1"),
    ({"columns": [one()], "shots": 9}, "shots", "less than or equal to 8"),
    ({"columns": [one()], "rows": 0}, "rows", "greater than or equal to 1"),
    ({"columns": [one()], "rows": 33}, "rows", "less than or equal to 32"),
    ({"columns": [one()], "start": 10_000}, "start", "split of builtin:dialogues has"),
    ({"columns": [one()], "input": "   "}, "input", "the input is empty"),
    ({"columns": [one()], "data": "/no/such/data.jsonl"}, "data", "/no/such/data.jsonl"),
    ({"columns": [one()], "input": "x", "shots": 2, "shots_split": "nope"}, "shots_split", "nope"),
    ({"columns": [one()], "input": "x", "template": "support", "shots": 1, "data": "builtin:dialogues"}, None, None),
    ({"columns": [one()], "colour": "red"}, "colour", "Extra inputs are not permitted"),
])
def test_playground_bad_input_names_the_field(client, body, field, fragment):
    r = client.post("/api/generate", json=body)
    if field is None:  # the control: a valid request streams
        assert r.status_code == 200 and r.text.strip().splitlines()[-1] == '{"type": "done"}'
        return
    error_of(r, 422)
    fields = r.json()["fields"]
    assert field in fields and fragment in fields[field], fields


def test_models_that_do_not_load_are_named(client, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text('{"model_type": "nonsense"}')
    cases = [(one(str(tmp_path / "empty")), "source", "is not a model directory: no config.json"),
             (one(str(tmp_path / "bad")), "source", "does not recognize this architecture"),
             (one("google/flan-t5-base"), "source", "cannot reach the Hugging Face hub to fetch model google/flan-t5-base"),
             ({**one(), "model": {"source": "builtin:tiny-t5", "adapter": str(tmp_path / "empty")}}, "source",
              "is not a PEFT adapter directory")]
    for column, field, fragment in cases:
        r = client.post("/api/generate", json={"columns": [column], "input": "hello"})
        error_of(r, 422)
        assert fragment in r.json()["fields"][f"columns[0].model.{field}"]


@pytest.mark.parametrize("headers, content, status, fragment", [
    ({"content-type": "application/json"}, b"{not json", 400, "not valid JSON"),
    ({"content-type": "application/json"}, b"\xff\xfe", 400, "not UTF-8"),
    ({"content-type": "application/json"}, b"[1, 2]", 400, "must be a JSON object"),
    ({"content-type": "text/plain"}, b"{}", 415, "Content-Type: application/json"),
    ({"content-type": "application/json"}, b"{" + b" " * 2_000_001 + b"}", 413, "too large"),
])
def test_malformed_bodies(client, headers, content, status, fragment):
    assert fragment in error_of(client.post("/api/generate", content=content, headers=headers), status)


def events(response) -> list[dict]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def test_one_input_streams_in_two_columns_with_rouge(client):
    sampled = {"do_sample": True, "seed": 3, "max_new_tokens": 8}
    body = {"columns": [one(**sampled), one("run:tiny-a/tuned-lora", no_repeat_ngram_size=2, max_new_tokens=6)],
            "input": "#Person1#: Can I book a table? #Person2#: Sure, for when?", "reference": "A table is booked."}
    got = events(client.post("/api/generate", json=body))
    assert [e["type"] for e in got][-1] == "done" and not [e for e in got if e["type"] == "error"]
    for col in (0, 1):
        deltas = "".join(e["text"] for e in got if e["type"] == "delta" and e["col"] == col)
        out = next(e for e in got if e["type"] == "output" and e["col"] == col)
        assert out["text"] and deltas == out["text"]  # streamed pieces join into the final text
        assert set(out["rouge"]) == {"rouge1", "rouge2", "rougeL"} and out["tokens"] >= 1
        summary = next(e for e in got if e["type"] == "summary" and e["col"] == col)
        assert summary["scored"] == 1 and summary["rouge"]["rouge1"] == out["rouge"]["rouge1"]
    prompt = next(e for e in got if e["type"] == "prompt")
    assert prompt["text"] == body["input"] and prompt["reference"] == ["A table is booked."]
    again = events(client.post("/api/generate", json=body))  # seeded: the same text again, the model kept loaded
    assert [e["text"] for e in again if e["type"] == "output"] == [e["text"] for e in got if e["type"] == "output"]


def test_rows_of_a_split_with_shots_and_beams(client):
    body = {"columns": [one(num_beams=2)], "rows": 3, "start": 1, "shots": 1, "template": "instruction"}
    got = events(client.post("/api/generate", json=body))
    prompts = [e for e in got if e["type"] == "prompt"]
    outputs = [e for e in got if e["type"] == "output"]
    assert len(prompts) == len(outputs) == 3 and not [e for e in got if e["type"] == "delta"]  # beams: batched
    for p in prompts:
        assert p["text"].count("Summarize the following conversation.") == 2  # one shot, then the query
        assert len(p["reference"]) == 1
    assert all(o["rouge"] is not None for o in outputs)
    summary = next(e for e in got if e["type"] == "summary")
    assert summary["rows"] == 3 and summary["scored"] == 3


# ---- the launcher --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body, fragment", [
    ({}, "choose a shipped recipe or upload a YAML file"),
    ({"recipe": "quickstart", "yaml": "name: x"}, "one of them"),
    ({"recipe": "nope"}, "not a shipped recipe; shipped: "),
    ({"recipe": 3}, "recipe: expected text"),
    ({"yaml": "name: [unclosed"}, "not valid YAML (line 1"),
    ({"yaml": "- a list"}, "the top level must be a mapping"),
    ({"yaml": "name: x\nmodel: {source: builtin:tiny-t5}\nstages: [{summarize: {}}]"},
     "uploaded recipe: stages[0]: unknown stage 'summarize'"),
    ({"yaml": "name: x\nstages: [{estimate: {}}]"}, "uploaded recipe: model: "),
    ({"recipe": "quickstart", "overrides": ["tune.lora.r"]}, "expected field=value"),
    ({"recipe": "quickstart", "overrides": "tune.lora.r=4"}, "overrides: a list of 'field=value' strings"),
    ({"recipe": "quickstart", "overrides": ["tune.lora.r=-1"]}, "stages[4].tune: lora.r: Input should be greater"),
    ({"recipe": "quickstart", "overrides": ["tune.lora.rank=4"]}, "lora.rank: unknown field; valid: r, alpha"),
    ({"recipe": "quickstart", "overrides": ["tune.start=recipe_model", "optimize.hand_on=int8",
                                            "serve.requests=[1"]}, "is not valid YAML"),
    ({"yaml": "name: x\nmodel: {source: builtin:tiny-t5}\nstages:\n - optimize: {methods: [int8], hand_on: int8}\n"
              " - tune: {method: lora}"}, "stages[1].tune cannot start from int8"),
])
def test_launch_check_refuses_a_recipe_that_does_not_validate(client, runs, body, fragment):
    before = snapshot(runs)
    assert fragment in error_of(client.post("/api/launch/check", json=body), 400)
    assert fragment in error_of(client.post("/api/launch", json=body), 400)  # start checks it whole again
    assert snapshot(runs) == before  # nothing started, nothing written


def test_launch_check_shows_the_plan(client):
    plan = client.post("/api/launch/check", json={"recipe": "quickstart",
                                                  "overrides": ["model.source=builtin:tiny-t5"]}).json()["plan"]
    assert plan["stages"][:2] == ["01-info", "02-estimate"] and len(plan["rows"]) == 9
    assert plan["columns"] == ["stage", "receives", "hands on", "notes", "writes"]
    assert "model builtin:tiny-t5" in plan["text"]


def test_a_run_another_process_writes_is_shown_running_and_not_resumed(finished_run, tmp_path):
    import socket

    from fastapi.testclient import TestClient

    from llmcycle.core.lock import LOCK_NAME, process_start
    from llmcycle.ui.app import create_ui_app

    busy = copy_run(finished_run, tmp_path / "runs", "busy", interrupted=True)
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "process_start": process_start(os.getpid()),
              "since": "2026-12-06T08:00:00+00:00", "argv": ["llmcycle", "run"]}
    (busy / LOCK_NAME).write_text(json.dumps(holder))
    with TestClient(create_ui_app({"runs_dir": str(tmp_path / "runs")}), base_url="http://127.0.0.1") as c:
        run = c.get("/api/runs/busy").json()
        assert run["status"] == "running" and f"being written by pid {os.getpid()}" in run["note"]
        assert [s["state"] for s in run["stages"]] == ["done", "done", "running"] and not run["resumable"]
        assert "wait for it to finish" in error_of(c.post("/api/runs/busy/resume", json={}), 400)


@pytest.mark.parametrize("name, status, fragment", [
    ("tiny-a", 400, "has finished"),
    ("old-20200101-000000", 400, "cannot read this run"),
    ("missing", 404, "no run 'missing'"),
])
def test_resume_refusals(client, name, status, fragment):
    assert fragment in error_of(client.post(f"/api/runs/{name}/resume", json={}), status)


def test_a_launched_run_can_be_cancelled_and_the_ui_goes_on(client, runs):
    yaml_text = ("name: cancelme\nmodel: {source: builtin:tiny-t5}\ndata: {source: builtin:dialogues, split: test}\n"
                 "stages: [{generate: {n_examples: 20, generation: {max_new_tokens: 64}}}]\n")
    started = client.post("/api/launch", json={"yaml": yaml_text}).json()
    name = started["run"]
    assert started["state"] == "running" and name.startswith("cancelme-")
    assert (runs / ".llmcycle-ui" / f"{name}.yaml").read_text() == yaml_text
    cancelled = client.post(f"/api/jobs/{name}/cancel", json={}).json()
    assert cancelled["state"] in ("cancelling", "cancelled")
    client.app.state.launcher.jobs[name].process.wait(timeout=60)
    status = client.get(f"/api/jobs/{name}").json()
    assert status["state"] == "cancelled" and status["log"][0].startswith("$ ") and " run " in status["log"][0]
    assert "was started from this page" not in error_of(client.post(f"/api/jobs/{name}/cancel", json={}), 400)
    assert client.get("/api/runs").status_code == 200  # the UI outlives the run it started


# ---- the guards ----------------------------------------------------------------------------------------------


def test_api_key_and_host_guard(runs):
    from fastapi.testclient import TestClient

    from llmcycle.ui.app import create_ui_app

    app = create_ui_app({"runs_dir": str(runs), "host": "0.0.0.0", "api_key": "s3cret"})
    with TestClient(app, base_url="http://192.0.2.1:7860", raise_server_exceptions=False) as c:
        assert c.get("/").status_code == 200 and c.get("/api/health").status_code == 200  # the page asks for the key
        assert "needs its key" in error_of(c.get("/api/runs"), 401)
        assert error_of(c.get("/api/runs/tiny-a/files/recipe.json"), 401)
        assert c.get("/api/runs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert "wrong key" in error_of(c.post("/api/login", json={"key": "guess"}), 401)
        assert c.post("/api/login", json={"key": "s3cret"}).status_code == 200  # sets the cookie
        assert c.get("/api/runs").status_code == 200
    local = create_ui_app({"runs_dir": str(runs)})
    with TestClient(local, base_url="http://attacker.example", raise_server_exceptions=False) as c:
        assert "answers requests to" in error_of(c.get("/api/runs"), 403)  # DNS rebinding: refused
    with TestClient(local, base_url="http://localhost:7860") as c:
        assert c.get("/api/runs").status_code == 200


def test_non_loopback_host_needs_a_key(monkeypatch, capsys):
    from llmcycle.core.errors import ConfigError
    from llmcycle.ui.config import UIConfig
    from tests.cli_helpers import run_cli

    with pytest.raises(ConfigError, match="host: 0.0.0.0 is not a loopback address.*--api-key"):
        UIConfig.from_dict({"host": "0.0.0.0"})
    assert UIConfig.from_dict({"host": "0.0.0.0", "api_key": "k"}).allowed_hosts is None
    assert UIConfig.from_dict({"host": "::1"}).api_key is None
    monkeypatch.delenv("LLMCYCLE_API_KEY", raising=False)
    code, out, err = run_cli(monkeypatch, capsys, "ui", "--host", "192.0.2.1")
    assert code == 1 and out == "" and err.startswith("error: ui: host: 192.0.2.1 is not a loopback address")
    assert len(err.strip().splitlines()) == 1 and "--api-key KEY (or set LLMCYCLE_API_KEY)" in err
