"""The bad-input tables: every case a user could type that must end in one clear line and exit 1.

``CLI_CASES`` are command lines run in a work folder laid out by ``make_fixtures`` (data files, recipes,
broken model folders), each with the fragments its one error line must contain: the field, file, row or
value at fault. ``SERVER_CASES`` are hostile HTTP requests, each with the 4xx it must get. The test suite
(``tests/badinput``) and ``benchmarks/reliability.py`` both run these tables.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

USAGE_EXIT = 1  # README: bad input, usage errors included, prints one line and exits 1


@dataclass(frozen=True)
class Case:
    """``llmcycle ARGS`` must exit ``code`` with one ``error:`` line containing every fragment of ``says``."""

    args: tuple[str, ...]
    says: tuple[str, ...]
    code: int = 1

    @property
    def id(self) -> str:
        return " ".join(self.args)[:90]


def c(line: str | list[str], *says: str, code: int = 1) -> Case:
    import shlex

    return Case(tuple(shlex.split(line) if isinstance(line, str) else line), says, code)


GOOD_ROW = {"dialogue": "#Person1#: hi\n#Person2#: hello", "summary": "They greet."}


def _jsonl(rows: list[object]) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


def make_fixtures(root: Path, tiny_model: object | None = None) -> None:
    """Lay out the work folder the cases run in: data files, recipes, templates and model folders.

    ``tiny_model``: a loaded ``builtin:tiny-t5`` to save (loaded here when None).
    """
    root.mkdir(parents=True, exist_ok=True)
    d = root / "data"
    d.mkdir(exist_ok=True)
    (d / "good.jsonl").write_text(_jsonl([GOOD_ROW] * 3))
    (d / "empty.jsonl").write_text("")
    (d / "blank.jsonl").write_text("\n\n  \n")
    rows = [GOOD_ROW] * 99 + ['{"dialogue": "broken", ']
    (d / "badline.jsonl").write_text(_jsonl(rows))  # line 100 is not JSON: file.jsonl:100: must stay in the message
    (d / "notobject.jsonl").write_text(_jsonl([GOOD_ROW, "[1, 2]"]))
    (d / "latin1.jsonl").write_bytes(b'{"dialogue": "caf\xe9", "summary": "s"}\n')
    (d / "noref.jsonl").write_text(_jsonl([{"dialogue": "a"}]))
    (d / "emptyref.jsonl").write_text(_jsonl([GOOD_ROW, {"dialogue": "b", "summary": ""}]))
    (d / "numinput.jsonl").write_text(_jsonl([GOOD_ROW, {"dialogue": 5, "summary": "s"}]))
    (d / "x[").mkdir(exist_ok=True)  # data/x[/red].jsonl: a path holding Rich markup, and a column too
    (d / "x[" / "red].jsonl").write_text(_jsonl([{"[/red]": "a", "summary": "s"}]))
    (d / "[bold]").mkdir(exist_ok=True)
    (d / "[bold]" / "a.jsonl").write_text(_jsonl(["not json :100: [/bold]"]))
    (d / "fields.csv").write_text("dialogue,summary\na,b\nc,d,e\n")
    (d / "dupe.csv").write_text("dialogue,dialogue\na,b\n")
    (d / "header.csv").write_text("dialogue,summary\n")
    (d / "emptycsv.csv").write_text("")
    (d / "scalar.json").write_text("42")
    (d / "badjson.json").write_text('{"data": [1,')
    (d / "emptylist.json").write_text("[]")
    (d / "garbage.parquet").write_bytes(b"not parquet at all")
    (d / "nosplits").mkdir(exist_ok=True)
    (d / "nosplits" / "notes.txt").write_text("nothing here")
    (d / "prompts.txt").write_text("hello\n")
    (d / "prompts.jsonl").write_text(_jsonl([{"text": "hello"}]))
    (d / "badprompts.jsonl").write_text(_jsonl([{"input": "hi"}, "{nope"]))
    (d / "taken.jsonl").write_text("keep me\n")  # an --output that exists
    (d / "pairs-bad.jsonl").write_text(_jsonl([{"prompt": "p", "chosen": "a"}]))
    (d / "pairs-empty.jsonl").write_text("")

    r = root / "recipes"
    r.mkdir(exist_ok=True)
    base = "model: {source: builtin:tiny-t5}\ndata: {source: data/good.jsonl}\n"
    recipes = {
        "badyaml.yaml": "name: x\nstages: [\n",
        "list.yaml": "- a\n- b\n",
        "nomodel.yaml": "stages:\n  - info: {}\n",
        "nostages.yaml": base + "stages: []\n",
        "stagesmap.yaml": base + "stages: {info: {}}\n",
        "twokeys.yaml": base + "stages:\n  - {info: {}, estimate: {}}\n",
        "unknownkind.yaml": base + "stages:\n  - infos: {}\n",
        "notmapping.yaml": base + "stages:\n  - info: 3\n",
        "unknownfield.yaml": base + "bogus: 1\nstages:\n  - info: {}\n",
        "nested.yaml": base + "stages:\n  - tune: {method: lora, lora: {rr: 8}}\n",
        "deepgen.yaml": base + "stages:\n  - prompt_lab: {generation: {g: {temprature: 0.5}}}\n",
        "badtype.yaml": base + "stages:\n  - tune: {max_steps: many}\n",
        "badname.yaml": "name: 'a b'\n" + base + "stages:\n  - info: {}\n",
        "template.yaml": base + "stages:\n  - evaluate: {template: nosuch}\n",
        "baseline.yaml": base + "stages:\n  - evaluate: {baseline: nosuch}\n",
        "chain.yaml": base + "stages:\n  - optimize: {methods: [int8], hand_on: int8}\n  - tune: {max_steps: 1}\n",
        "ptmerge.yaml": base + "stages:\n  - tune: {method: prompt_tuning, max_steps: 1}\n"
                               "  - optimize: {methods: [int8]}\n",
        "dpo.yaml": base + "stages:\n  - align: {method: dpo, pairs: data/missing-pairs.jsonl}\n",
        "dpobad.yaml": base + "stages:\n  - align: {method: dpo, pairs: data/pairs-bad.jsonl}\n",
        "tplfile.yaml": base + "templates_file: recipes/badtemplates.yaml\nstages:\n  - info: {}\n",
        "servegen.yaml": base + "stages:\n  - serve: {generation: {do_sample: true}}\n",
        "smokebeam.yaml": base + "stages:\n  - serve: {generation: {num_beams: 2}}\n",
        "dtype.yaml": "model: {source: builtin:tiny-t5, dtype: fp8}\nstages:\n  - info: {}\n",
        "datan.yaml": "model: {source: builtin:tiny-t5}\ndata: {n: 0}\nstages:\n  - info: {}\n",
        "onbad.yaml": "model: {source: builtin:tiny-t5}\ndata: {on_bad_rows: maybe}\nstages:\n  - info: {}\n",
        "generate0.yaml": base + "stages:\n  - generate: {generation: {max_new_tokens: 0}}\n",
        "ppobeam.yaml": base + "stages:\n  - align: {ppo: {generation: {num_beams: 4}}}\n",
        "labelprof.yaml": base + "stages:\n  - evaluate: {toxicity_label: hate}\n",
        "alignlabel.yaml": base + "stages:\n  - align: {evaluation: {scorer_label: hate}}\n",
        "distil.yaml": base + "stages:\n  - optimize: {methods: [distil], distil: {layers: [2, 1]}}\n",
        "prune.yaml": base + "stages:\n  - optimize: {methods: [prune], prune: {sparsity: 1.5}}\n",
    }
    for name, text in recipes.items():
        (r / name).write_text(text)
    (r / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    (r / "badtemplates.yaml").write_text("- name: x\n  text: no placeholder here\n")
    (root / "afile").write_text("a file, not a folder\n")

    m = root / "models"
    good = m / "tiny"
    if not (good / "config.json").is_file():
        if tiny_model is None:
            from llmcycle.models import load_model

            tiny_model = load_model("builtin:tiny-t5")
        tiny_model.model.save_pretrained(good)  # type: ignore[attr-defined]
        tiny_model.tokenizer.save_pretrained(good)  # type: ignore[attr-defined]
    weights = (good / "model.safetensors").read_bytes()
    for name, data in (("trunc", weights[: len(weights) // 2]), ("empty", b""),
                       ("garbage", bytes((i * 7919) % 251 for i in range(4096)))):
        shutil.copytree(good, m / name, dirs_exist_ok=True)
        (m / name / "model.safetensors").write_bytes(data)
    (m / "noconfig").mkdir(exist_ok=True)
    (m / "noconfig" / "weights.bin").write_bytes(b"x")
    (m / "badconfig").mkdir(exist_ok=True)
    (m / "badconfig" / "config.json").write_text("{not json")
    shutil.copytree(good, m / "notok", dirs_exist_ok=True, ignore=shutil.ignore_patterns("tokenizer*"))
    (m / "nobase").mkdir(exist_ok=True)
    (m / "nobase" / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))


R = "recipes/"
D = "data/"
M = "models/"
T = "builtin:tiny-t5"

RECIPE_CASES = [
    c(f"run {R}missing.yaml", "missing.yaml"),
    c(f"run {R}badyaml.yaml", "badyaml.yaml", "line"),
    c(f"run {R}list.yaml", "list.yaml", "mapping"),
    c(f"run {R}latin1.yaml", "latin1.yaml", "UTF-8"),
    c(f"run {R}nomodel.yaml", "model"),
    c(f"run {R}nostages.yaml", "stages"),
    c(f"run {R}stagesmap.yaml", "stages"),
    c(f"run {R}twokeys.yaml", "stages[0]", "one key"),
    c(f"run {R}unknownkind.yaml", "infos", "valid"),
    c(f"run {R}notmapping.yaml", "stages[0].info", "mapping"),
    c(f"run {R}unknownfield.yaml", "bogus", "unknown field"),
    c(f"run {R}nested.yaml", "stages[0].tune", "lora.rr", "valid: r, alpha"),
    c(f"run {R}deepgen.yaml", "generation.g.temprature", "unknown field"),
    c(f"run {R}badtype.yaml", "max_steps", "integer"),
    c(f"run {R}badname.yaml", "name"),
    c(f"run {R}template.yaml", "stages[0].evaluate.template", "nosuch"),
    c(f"run {R}baseline.yaml", "baseline", "nosuch"),
    c(f"run {R}chain.yaml", "stages[1].tune", "int8"),
    c(f"run {R}ptmerge.yaml", "stages[1].optimize", "prompt"),
    c(f"run {R}dpo.yaml", "pairs", "missing-pairs.jsonl"),
    c(f"run {R}dpobad.yaml", "pairs-bad.jsonl", "rejected"),
    c(f"run {R}tplfile.yaml", "templates_file", "badtemplates.yaml"),
    c(f"run {R}servegen.yaml", "do_sample"),
    c(f"run {R}smokebeam.yaml", "num_beams"),
    c(f"run {R}dtype.yaml", "model.dtype", "fp8"),
    c(f"run {R}datan.yaml", "data.n"),
    c(f"run {R}onbad.yaml", "on_bad_rows", "maybe"),
    c(f"run {R}generate0.yaml", "generation.max_new_tokens"),
    c(f"run {R}ppobeam.yaml", "num_beams"),
    c(f"run {R}labelprof.yaml", "toxicity_label", "profanity-check"),
    c(f"run {R}alignlabel.yaml", "scorer_label", "profanity-check"),
    c(f"run {R}distil.yaml", "distil.layers"),
    c(f"run {R}prune.yaml", "prune.sparsity"),
    c(f"plan {R}nested.yaml", "lora.rr"),
    c(f"plan {R}chain.yaml", "stages[1].tune", "int8"),
    c(f"plan {R}missing.yaml", "missing.yaml"),
    c("run --only nosuch", "nosuch", "stages"),
    c("run --from nosuch", "nosuch", "stages"),
    c("run --runs-dir afile", "afile", "file, not a folder"),
    c("run --runs-dir afile/sub", "afile", "file"),
    c("run --run-dir afile", "afile", "file, not a folder"),
    c("run --run-dir data", "data", "not a llmcycle run directory"),
    c("run --runs-dir /sys/llmcycle-runs", "/sys/llmcycle-runs"),
]

SET_CASES = [
    c("run --set nonsense", "nonsense", "key=value"),
    c("run --set 'model.source=[unclosed'", "model.source", "YAML"),
    c("run --set 'a: [b'", "a: [b", "key=value"),
    c("run --set nosuchfield=1", "nosuchfield", "unknown field"),
    c("run --set model.nosuch=1", "model.nosuch", "unknown field"),
    c("run --set model.dtype=fp7", "model.dtype", "fp7"),
    c("run --set model.device=tpu", "model.device", "tpu"),
    c("run --set model.weights=half", "model.weights", "half"),
    c("run --set data.n=0", "data.n"),
    c("run --set data.n=-3", "data.n"),
    c("run --set data.every_k=0", "data.every_k"),
    c("run --set data.on_bad_rows=maybe", "on_bad_rows", "maybe"),
    c("run --set data.input_column=", "input_column"),
    c("run --set data.reference_columns=[]", "reference_columns"),
    c("run --set tune.max_steps=0", "tune", "max_steps"),
    c("run --set tune.max_steps=abc", "max_steps", "integer"),
    c("run --set tune.learning_rate=-1", "learning_rate"),
    c("run --set tune.learning_rate=.nan", "learning_rate"),
    c("run --set tune.method=magic", "method", "magic"),
    c("run --set tune.lora.r=0", "lora.r"),
    c("run --set tune.lora.nosuch=1", "lora.nosuch", "unknown field"),
    c("run --set tune[5].max_steps=1", "tune[5]", "stage"),
    c("run --set tune.max_steps.x=1", "max_steps", "mapping"),
    c("run --set generate.generation.max_new_tokens=0", "generation.max_new_tokens"),
    c("run --set generate.generation.temperature=-1", "temperature"),
    c("run --set generate.generation.top_p=2", "top_p"),
    c("run --set generate.generation.num_beams=0", "num_beams"),
    c("run --set generate.generation.nosuch=1", "generation.nosuch", "unknown field"),
    c("run --set prompt_lab.templates=[nosuch]", "prompt_lab.templates[0]", "nosuch"),
    c("run --set prompt_lab.shots=[-1]", "shots"),
    c("run --set evaluate.metrics=[nosuch]", "metrics", "nosuch"),
    c("run --set align.reward.source=nosuch", "reward.source", "nosuch"),
    c("run --set align.seeds=[]", "seeds"),
    c("run --set optimize.methods=[nosuch]", "methods", "nosuch"),
    c("run --set optimize.hand_on=nosuch", "hand_on", "nosuch"),
    c("run --set serve.requests=0", "requests"),
    c("run --set runs_dir=afile", "afile", "file, not a folder"),
    c("run --set templates_file=nofile.yaml", "templates_file", "nofile.yaml"),
    c("run --set name=a/b", "name"),
    c("plan --set estimate.batch_size=0", "batch_size"),
    c(f"tune {T} --set nosuch=1", "nosuch", "unknown field"),
    c(f"tune {T} --set lora.r=x", "lora.r", "integer"),
    c(f"tune {T} --set model.dtype=fp7", "model.dtype", "fp7"),
    c(f"tune {T} --set data.n=0", "data.n"),
    c(f"evaluate {T} --set generation.num_beams=0", "generation.num_beams"),
    c(f"optimize {T} --set prune.sparsity=2", "prune.sparsity"),
    c(f"optimize {T} --set distil.train.method=lora", "distil.train", "full"),
    c(f"align {T} --set method=nosuch", "method", "nosuch"),
    c(f"align {T} --set ppo.steps=0", "ppo.steps"),
    c(f"prompt-lab {T} --set generation.x.nosuchfield=1", "generation.x.nosuchfield", "unknown field"),
]

DATA_CASES = [
    c(f"data {D}missing.jsonl", "missing.jsonl"),
    c(f"data {D}empty.jsonl", "empty.jsonl", "empty"),
    c(f"data {D}blank.jsonl", "blank.jsonl", "empty"),
    c(f"data {D}badline.jsonl", "badline.jsonl:100:", "not valid JSON"),
    c(f"data {D}notobject.jsonl", "notobject.jsonl:2:", "not a JSON object"),
    c(f"data {D}latin1.jsonl", "latin1.jsonl:1:", "UTF-8"),
    c(f"data {D}noref.jsonl", "noref.jsonl", "summary"),
    c(f"data {D}emptyref.jsonl", "emptyref.jsonl:2", "reference"),
    c(f"data {D}numinput.jsonl", "numinput.jsonl:2", "dialogue"),
    c(["data", f"{D}x[/red].jsonl"], "x[/red].jsonl", "dialogue", "[/red]"),
    c(["data", f"{D}[bold]/a.jsonl"], "[bold]/a.jsonl:1:", "not valid JSON"),
    c(["data", f"{D}nofile[/red].jsonl"], "nofile[/red].jsonl"),
    c(["data", f"{D}good.jsonl", "--input-column", "[/red]"], "[/red]", "dialogue, summary"),
    c(f"data {D}fields.csv", "fields.csv:3", "fields"),
    c(f"data {D}dupe.csv", "dupe.csv:1", "duplicate"),
    c(f"data {D}header.csv", "header.csv", "no rows"),
    c(f"data {D}emptycsv.csv", "emptycsv.csv", "empty"),
    c(f"data {D}scalar.json", "scalar.json", "top level"),
    c(f"data {D}badjson.json", "badjson.json:1", "not valid JSON"),
    c(f"data {D}emptylist.json", "emptylist.json", "no rows"),
    c(f"data {D}garbage.parquet", "garbage.parquet", "Parquet"),
    c(f"data {D}nosplits", "nosplits"),
    c(f"data {D}good.jsonl --split nosuch", "nosuch"),
    c(f"data {D}good.jsonl --input-column nosuch", "nosuch", "dialogue, summary"),
    c(f"data {D}good.jsonl --reference-column nosuch", "nosuch"),
    c(f"data {D}good.jsonl --on-bad-rows maybe", "on_bad_rows", "maybe"),
    c(f"data {D}good.jsonl --n 0", "n"),
    c("data builtin:nosuch", "builtin:nosuch"),
    c("data ./no/such/dir/", "no/such/dir"),
    c(f"tune {T} --data {D}good.jsonl --max-steps 1 --set data.input_column=nosuch", "nosuch", "dialogue, summary"),
    c(f"evaluate {T} --data {D}missing.jsonl", "missing.jsonl"),
    c(f"evaluate {T} --data {D}badline.jsonl --split train", "badline.jsonl:100:"),
    c(f"prompt-lab {T} --data {D}emptyref.jsonl --split train", "emptyref.jsonl:2"),
    c(f"optimize {T} --data {D}latin1.jsonl", "latin1.jsonl:1:", "UTF-8"),
    c(f"align {T} --data {D}good.jsonl --set data.split=nosuch", "nosuch"),
]

MODEL_CASES = [
    c(f"info {M}missing", "models/missing"),
    c("info afile", "afile", "file"),
    c(f"info {M}noconfig", "models/noconfig", "config.json"),
    c(f"info {M}badconfig", "models/badconfig", "config.json"),
    c(f"info {M}trunc", "models/trunc/model.safetensors", "truncated"),
    c(f"info {M}empty", "models/empty/model.safetensors"),
    c(f"info {M}garbage", "models/garbage/model.safetensors"),
    c(f"info {M}nobase", "models/nobase", "base"),
    c(f"generate {M}trunc hello", "models/trunc/model.safetensors"),
    c(f"generate {M}garbage hello", "models/garbage/model.safetensors"),
    c(f"tune {M}empty --max-steps 1", "models/empty/model.safetensors"),
    c(f"evaluate {M}trunc --n 2", "models/trunc/model.safetensors"),
    c(f"optimize {M}garbage --n 2", "models/garbage/model.safetensors"),
    c(f"prompt-lab {M}trunc --n 1", "models/trunc/model.safetensors"),
    c(f"serve {M}trunc", "models/trunc/model.safetensors"),
    c(f"serve {M}empty", "models/empty/model.safetensors"),
    c("info builtin:nosuch", "builtin:nosuch"),
    c("info nosuch/model-offline-xyz", "nosuch/model-offline-xyz", "hub"),
    c("info 'not a model!'", "not a model!"),
    c(f"info {T} --weights half", "weights", "half"),
    c(f"info {T} --dtype fp7", "dtype", "fp7"),
    c(f"info {T} --device tpu", "device", "tpu"),
    c(f"info {T} --device cuda", "cuda"),
    c("tokenize builtin:nosuch hi", "builtin:nosuch"),
    c(f"serve {T} --adapter other={M}missing", "models/missing"),
    c(f"evaluate {T}+{M}missing --n 2", "models/missing"),
]

GEN = f"generate {T} hello"
GENERATION_CASES = [
    c(f"{GEN} --max-new-tokens 0", "max_new_tokens"),
    c(f"{GEN} --max-new-tokens -5", "max_new_tokens"),
    c(f"{GEN} --min-new-tokens 10 --max-new-tokens 5", "min_new_tokens"),
    c(f"{GEN} --sample --temperature 0", "temperature"),
    c(f"{GEN} --sample --temperature -1", "temperature"),
    c(f"{GEN} --temperature 0.5", "temperature", "sample"),
    c(f"{GEN} --sample --top-p 0", "top_p"),
    c(f"{GEN} --sample --top-p 1.5", "top_p"),
    c(f"{GEN} --sample --top-k -1", "top_k"),
    c(f"{GEN} --top-k 5", "top_k"),
    c(f"{GEN} --num-beams 0", "num_beams"),
    c(f"{GEN} --length-penalty 2", "length_penalty"),
    c(f"{GEN} --early-stopping maybe", "early_stopping", "'maybe'"),
    c(f"{GEN} --no-repeat-ngram-size -1", "no_repeat_ngram_size"),
    c(f"{GEN} --repetition-penalty 0", "repetition_penalty"),
    c(f"{GEN} --frequency-penalty 3", "frequency_penalty"),
    c(f"{GEN} --presence-penalty -3", "presence_penalty"),
    c([*GEN.split(), "--stop", ""], "stop"),
    c(f"{GEN} -n 0", "num_return_sequences"),
    c(f"{GEN} -n 3", "num_return_sequences"),
    c(f"{GEN} --preset nosuch", "preset", "nosuch"),
    c(f"{GEN} --batch-size 0", "batch_size"),
    c(f"{GEN} --max-input-tokens 0", "max_input_tokens"),
    c(f"{GEN} --dtype fp7", "dtype", "fp7"),
    c(f"generate {T}", "PROMPT", "--input-file"),
    c(f"generate {T} hello --input-file {D}prompts.txt", "PROMPT", "--input-file"),
    c(f"generate {T} hello --output out.jsonl", "--output", "--input-file"),
    c(f"generate {T} ' '", "prompt", "empty"),
    c(f"generate {T} --input-file {D}missing.txt", "missing.txt"),
    c(f"generate {T} --input-file {D}prompts.jsonl", "prompts.jsonl", "input"),
    c(f"generate {T} --input-file {D}badprompts.jsonl", "badprompts.jsonl:2"),
    c(f"generate {T} --input-file {D}prompts.txt --output {D}taken.jsonl", "taken.jsonl", "--force"),
    c(f"generate {T} --input-file {D}empty.jsonl", "empty.jsonl"),
    c(f"prompt-lab {T} --setting nosuchpreset", "nosuchpreset", "preset"),
    c(f"prompt-lab {T} --setting 'x:temperature=hot'", "temperature", "hot"),
    c(f"prompt-lab {T} --setting 'x:nosuchfield=1'", "nosuchfield", "unknown field"),
    c(f"prompt-lab {T} --setting 'x:do_sample=true,temperature=0'", "temperature"),
    c(f"prompt-lab {T} --setting ':'", "--setting"),
    c(f"evaluate {T} --max-new-tokens 0", "max_new_tokens"),
    c(f"evaluate {T} --num-beams 0", "num_beams"),
]

COMMAND_CASES = [
    c("estimate memory --params nan", "--params", "nan"),
    c("estimate memory --params inf", "--params", "inf"),
    c("estimate memory --params -5", "n_params"),
    c("estimate memory", "--params", "--model"),
    c("estimate memory --params 1e9 --model gpt2", "--params", "--model"),
    c("estimate memory --params 1e9 --dtype fp7", "dtype", "fp7"),
    c("estimate memory --params 1e9 --mode sideways", "mode", "sideways"),
    c("estimate memory --params 1e9 --optimizer nosuch", "optimizer", "nosuch"),
    c("estimate memory --params 1e9 --parallelism zero9", "parallelism", "zero9"),
    c("estimate memory --params 1e9 --n-gpus 0", "n_gpus"),
    c("estimate memory --params 1e9 --trainable-fraction 2", "trainable_fraction"),
    c("estimate memory --params 1e9 --batch-size 8", "batch"),
    c("estimate memory --model builtin:nosuch", "builtin:nosuch"),
    c("estimate compute --params nan", "n_params", "nan"),
    c("estimate compute --params -1", "n_params"),
    c("estimate compute", "--params"),
    c("estimate compute --params 1e9 --budget-flops 1e20", "--params", "budget"),
    c("estimate compute --budget-flops -1", "flops", "-1"),
    c("estimate compute --params 1e9 --mfu 0", "mfu"),
    c("estimate compute --params 1e9 --n-gpus 0", "n_gpus"),
    c(f"tune {T} --max-steps 0", "max_steps"),
    c(f"tune {T} --max-steps -1", "max_steps"),
    c(f"tune {T} --method magic", "method", "magic"),
    c(f"tune {T} --lr 0", "learning_rate"),
    c(f"tune {T} --lr nan", "learning_rate"),
    c(f"tune {T} --batch-size 0", "batch_size"),
    c(f"tune {T} --epochs 0", "epochs"),
    c(f"tune {T} --template nosuchtpl", "templates[0]", "nosuchtpl"),
    c(f"tune {T} --templates-file nofile.yaml", "templates_file", "nofile.yaml"),
    c(f"tune {T} --n 0", "data.n"),
    c(f"tune {T} --run-dir afile", "afile", "file, not a folder"),
    c(f"tune {T} --runs-dir afile", "afile", "file, not a folder"),
    c(f"tune {T} --run-dir data", "data", "not a llmcycle run directory"),
    c(f"align {T} --reward nosuch", "reward.source", "nosuch"),
    c(f"align {T} --steps 0", "ppo.steps"),
    c(f"align {T} --set method=dpo", "pairs"),
    c(f"align {T} --set method=dpo --set pairs={D}missing-pairs.jsonl", "missing-pairs.jsonl"),
    c(f"align {T} --set method=dpo --set pairs={D}pairs-empty.jsonl", "pairs-empty.jsonl"),
    c(f"align {T} --toxicity-label hate", "scorer_label", "profanity-check"),
    c(f"align {T} --run-dir afile", "afile", "file, not a folder"),
    c(f"optimize {T} --method nosuch", "methods", "nosuch"),
    c(f"optimize {T} --sparsity 1.5", "prune.sparsity"),
    c(f"optimize {T} --n 0", "measure.n"),
    c(f"optimize {T} --method bnb8 --n 2", "bnb8", "CUDA"),
    c(f"optimize {T} --set distil.layers=[2,1]", "distil.layers"),
    c(f"optimize {T} --run-dir afile", "afile", "file, not a folder"),
    c(f"evaluate {T} --metric nosuch", "metrics", "nosuch"),
    c(f"evaluate {T} --baseline nosuch --n 2", "baseline", "nosuch"),
    c(f"evaluate {T} --template nosuchtpl --n 2", "template", "nosuchtpl"),
    c(f"evaluate {T} --batch-size 0", "batch_size"),
    c(f"evaluate {T} --toxicity-label hate", "toxicity_label", "profanity-check"),
    c(f"evaluate {T} --side-by-side -1", "n_side_by_side"),
    c("evaluate 'a=+adapter'", "models", "a=+adapter"),
    c(f"prompt-lab {T} --template nosuchtpl --n 1", "templates[0]", "nosuchtpl"),
    c(f"prompt-lab {T} --n 0", "n_examples"),
    c(f"prompt-lab {T} --shots -1", "shots"),
    c(f"prompt-lab {T} --selection nosuch", "selection", "first, random or nearest"),
    c(f"prompt-lab {T} --templates-file {D}good.jsonl", "templates_file", "good.jsonl"),
    c(f"prompt-lab {T} --runs-dir afile", "afile", "file, not a folder"),
    c(f"serve {T} --port 99999", "port"),
    c(f"serve {T} --max-batch-size 0", "max_batch_size"),
    c(f"serve {T} --max-wait-ms -1", "max_wait_ms"),
    c(f"serve {T} --adapter noequals", "--adapter", "NAME=DIR"),
    c(f"serve {T} --adapter a=x --adapter a=y", "--adapter", "twice"),
    c(f"serve {T} --max-tokens 0", "max_tokens"),
    c(f"serve {T} --dtype fp7", "dtype", "fp7"),
    c("tune-compare missing-run", "missing-run"),
    c("tune-compare afile", "afile"),
    c(f"stage nosuch {T}", "nosuch", "valid"),
    c(f"stage tune {T} --set nosuch=1", "nosuch", "unknown field"),
    c("benchmark nosuchtask --model builtin:tiny-gpt2", "nosuchtask"),
    c("benchmark capitals", "--model"),
    c("benchmark capitals --model builtin:tiny-gpt2 --limit 0", "limit"),
    c("benchmark capitals --model builtin:tiny-gpt2 --num-fewshot -1", "num_fewshot"),
]

USAGE_CASES = [
    c(f"tune {T} --max-steps abc", "--max-steps", "abc", code=USAGE_EXIT),
    c(f"tune {T} --lr fast", "--lr", "fast", code=USAGE_EXIT),
    c(f"tune {T} --nosuch", "--nosuch", code=USAGE_EXIT),
    c("tune", "model", code=USAGE_EXIT),
    c("info", "model", code=USAGE_EXIT),
    c("tokenize builtin:tiny-t5", "text", code=USAGE_EXIT),
    c("estimate memory --params lots", "--params", "lots", code=USAGE_EXIT),
    c("estimate compute --n-gpus two", "--n-gpus", "two", code=USAGE_EXIT),
    c(f"generate {T} hi --max-new-tokens 1.5", "--max-new-tokens", "1.5", code=USAGE_EXIT),
    c(f"generate {T} hi --top-p high", "--top-p", "high", code=USAGE_EXIT),
    c(f"serve {T} --port http", "--port", "http", code=USAGE_EXIT),
    c(f"align {T} --seed x", "--seed", "'x'", code=USAGE_EXIT),
    c(f"evaluate {T} --n many", "--n", code=USAGE_EXIT),
    c("nosuchcommand", "nosuchcommand", code=USAGE_EXIT),
    c("estimate nosuch", "nosuch", code=USAGE_EXIT),
    c("run --only", "--only", code=USAGE_EXIT),
    c("data --show x", "--show", code=USAGE_EXIT),
]

CLI_CASES: list[Case] = (RECIPE_CASES + SET_CASES + DATA_CASES + MODEL_CASES + GENERATION_CASES + COMMAND_CASES
                         + USAGE_CASES)
"""Every CLI case, in the order the suite runs them."""


@dataclass(frozen=True)
class ServerCase:
    """A request the server must answer with ``status`` (always 4xx), in OpenAI's error shape."""

    name: str
    method: str
    path: str
    body: bytes | None
    status: int
    headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)


def _b(obj: object) -> bytes:
    return json.dumps(obj).encode()


_C, _CHAT = "/v1/completions", "/v1/chat/completions"
SERVER_CASES = [
    ServerCase("lone surrogate in a prompt", "POST", _C, b'{"model": "base", "prompt": "\\ud800 hi"}', 400),
    ServerCase("lone low surrogate in a prompt list", "POST", _C, b'{"model": "base", "prompt": ["ok", "\\udfff"]}',
               400),
    ServerCase("lone surrogate in chat content", "POST", _CHAT,
               b'{"model": "base", "messages": [{"role": "user", "content": "\\ud800"}]}', 400),
    ServerCase("lone surrogate in a content part", "POST", _CHAT,
               b'{"model": "base", "messages": [{"role": "user", "content": [{"type": "text", "text": "\\udbff"}]}]}',
               400),
    ServerCase("lone surrogate in a stop string", "POST", _C, b'{"model": "base", "prompt": "hi", "stop": "\\ud800"}',
               400),
    ServerCase("lone surrogate in the model name", "POST", _C, b'{"model": "\\ud800", "prompt": "hi"}', 400),
    ServerCase("lone surrogate in a key", "POST", _C, b'{"model": "base", "prompt": "hi", "\\ud800": 1}', 400),
    ServerCase("JSON nested 100,000 deep", "POST", _C, b'{"model": "base", "prompt": ' + b"[" * 100_000
               + b"]" * 100_000 + b"}", 400),
    ServerCase("objects nested 100,000 deep", "POST", _CHAT, b'{"a": ' * 100_000 + b"1" + b"}" * 100_000, 400),
    ServerCase("JSON nested 40 deep", "POST", _C, b'{"model": "base", "prompt": ' + b"[" * 40 + b'"x"' + b"]" * 40
               + b"}", 400),
    ServerCase("not JSON", "POST", _C, b"{not json", 400),
    ServerCase("not UTF-8", "POST", _C, b'{"model": "base", "prompt": "\xff"}', 400),
    ServerCase("empty body", "POST", _C, b"", 400),
    ServerCase("JSON array body", "POST", _C, b"[]", 400),
    ServerCase("JSON string body", "POST", _CHAT, b'"hi"', 400),
    ServerCase("NaN temperature", "POST", _C, b'{"model": "base", "prompt": "hi", "temperature": NaN}', 400),
    ServerCase("Infinity max_tokens", "POST", _C, b'{"model": "base", "prompt": "hi", "max_tokens": Infinity}', 400),
    ServerCase("huge max_tokens", "POST", _C, _b({"model": "base", "prompt": "hi", "max_tokens": 10**30}), 400),
    ServerCase("negative n", "POST", _C, _b({"model": "base", "prompt": "hi", "n": -1}), 400),
    ServerCase("seed too large", "POST", _C, _b({"model": "base", "prompt": "hi", "seed": 2**64}), 400),
    ServerCase("temperature as a string", "POST", _C, _b({"model": "base", "prompt": "hi", "temperature": "hot"}),
               400),
    ServerCase("five stop strings", "POST", _C, _b({"model": "base", "prompt": "hi", "stop": list("abcde")}), 400),
    ServerCase("empty stop string", "POST", _C, _b({"model": "base", "prompt": "hi", "stop": [""]}), 400),
    ServerCase("token-id prompt", "POST", _C, _b({"model": "base", "prompt": [[1, 2, 3]]}), 400),
    ServerCase("prompt missing", "POST", _C, _b({"model": "base"}), 400),
    ServerCase("empty prompt list", "POST", _C, _b({"model": "base", "prompt": []}), 400),
    ServerCase("more prompts than the queue holds", "POST", _C, _b({"model": "base", "prompt": ["x"] * 1025}), 400),
    ServerCase("prompt as an object", "POST", _C, _b({"model": "base", "prompt": {"a": 1}}), 400),
    ServerCase("unknown model", "POST", _C, _b({"model": "nope", "prompt": "hi"}), 404),
    ServerCase("model as a number", "POST", _C, _b({"model": 5, "prompt": "hi"}), 400),
    ServerCase("logprobs", "POST", _C, _b({"model": "base", "prompt": "hi", "logprobs": 2}), 400),
    ServerCase("logit_bias", "POST", _C, _b({"model": "base", "prompt": "hi", "logit_bias": {"1": 5}}), 400),
    ServerCase("no messages", "POST", _CHAT, _b({"model": "base", "messages": []}), 400),
    ServerCase("message role unknown", "POST", _CHAT,
               _b({"model": "base", "messages": [{"role": "robot", "content": "hi"}]}), 400),
    ServerCase("image content part", "POST", _CHAT, _b({"model": "base", "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}), 400),
    ServerCase("message not an object", "POST", _CHAT, _b({"model": "base", "messages": ["hi"]}), 400),
    ServerCase("tools", "POST", _CHAT, _b({"model": "base", "messages": [{"role": "user", "content": "hi"}],
                                           "tools": [{"type": "function"}]}), 400),
    ServerCase("json response_format", "POST", _CHAT, _b({"model": "base", "messages": [
        {"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}}), 400),
    ServerCase("top_k when greedy", "POST", _C, _b({"model": "base", "prompt": "hi", "temperature": 0, "top_k": 5}),
               400),
    ServerCase("unknown route", "GET", "/v1/nope", None, 404),
    ServerCase("wrong method", "GET", _C, None, 405),
    ServerCase("unknown model card", "GET", "/v1/models/nope", None, 404),
    ServerCase("body over the limit", "POST", _C, b'{"model": "base", "prompt": "' + b"x" * 1_100_000 + b'"}', 413),
    ServerCase("stream with n > 1 and a lone surrogate", "POST", _CHAT, b'{"model": "base", "stream": true, "n": 2, '
               b'"messages": [{"role": "user", "content": "\\ud800"}]}', 400),
]
