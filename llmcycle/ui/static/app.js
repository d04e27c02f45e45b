// llmcycle ui: the page's script. No framework and nothing loaded from elsewhere; every figure comes from
// the JSON API of llmcycle.ui.app. Text from the server is always set as text, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { options: null, runs: [], jobs: {}, jobTimer: null, runsTimer: null, checked: null, settingsTimers: {} };
const COLOURS = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#1b7c83"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// ---------------------------------------------------------------------------------------------- API and messages

class ApiError extends Error {
  constructor(message, status, fields) { super(message); this.status = status; this.fields = fields || null; }
}

async function api(path, body) {
  const opts = body === undefined ? {} :
    { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const res = await fetch(path, opts);
  if (!res.ok) throw await apiError(res);
  return res.json();
}

async function apiError(res) {
  let message = `${res.status} ${res.statusText}`, fields = null;
  try {
    const data = await res.json();
    if (data && data.error) message = data.error;
    fields = data && data.fields;
  } catch (e) { /* not JSON: keep the status line */ }
  if (res.status === 401) showLogin();
  return new ApiError(message, res.status, fields);
}

function banner(message) {
  const b = $("banner");
  b.textContent = message || "";
  b.hidden = !message;
}

function showLogin() { $("login").hidden = false; }

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    await api("/api/login", { key: $("login-key").value });
    $("login").hidden = true;
    banner("");
    await loadOptions();
    document.body.dataset.ready = "true";
    route();
  } catch (e) { banner(e.message); }
});

// ---------------------------------------------------------------------------------------------- tabs

function route() {
  const hash = decodeURIComponent(location.hash.slice(1)) || "playground";
  const cut = hash.indexOf("/");
  const tab = cut < 0 ? hash : hash.slice(0, cut), arg = cut < 0 ? "" : hash.slice(cut + 1);
  const name = ["playground", "runs", "run", "compare", "launch"].includes(tab) ? tab : "playground";
  const shown = name === "run" || name === "compare" ? "runs" : name;
  for (const t of ["playground", "runs", "launch"]) {
    $(`tab-${t}`).hidden = t !== shown;
    $(`nav-${t}`).classList.toggle("active", t === shown);
  }
  if (shown === "runs") {
    loadRuns();
    $("run-detail").hidden = name !== "run";
    $("compare").hidden = name !== "compare";
    if (name === "run") openRun(arg);
    if (name === "compare") openCompare(arg.split(","));
  }
}
window.addEventListener("hashchange", route);

// ---------------------------------------------------------------------------------------------- options

async function loadOptions() {
  const o = await api("/api/options");
  state.options = o;
  const tpl = $("pg-template");
  tpl.replaceChildren(...o.templates.map((t) => el("option", { value: t.name, text: `${t.name}: ${t.description}` })));
  tpl.value = "none";
  $("model-options").replaceChildren(...[...o.builtins, ...o.run_models].map(
    (m) => el("option", { value: m.value, text: m.label })));
  $("ln-recipe").replaceChildren(...o.recipes.map((r) => el("option", { value: r, text: r })));
  $("runs-dir").textContent = o.runs_dir;
  if (!$("pg-columns").children.length) {
    $("pg-columns").append(column(0), column(1));
    $("pg-columns").children[1].hidden = true;
  }
}

// ---------------------------------------------------------------------------------------------- playground

function fieldInput(f, col) {
  const id = `pg-c${col}-${f.name}`;
  let input;
  if (f.type === "boolean") {
    input = el("input", { type: "checkbox", id });
    input.checked = Boolean(f.default);
  } else if (f.type === "choice") {
    input = el("select", { id }, f.choices.map((c) => el("option", { value: String(c), text: String(c) })));
    input.value = String(f.default);
  } else if (f.type === "array") {
    input = el("textarea", { id, rows: "2", placeholder: "one per line (\\n for a newline)" });
  } else {
    input = el("input", { id, type: f.type === "string" ? "text" : "number", step: "any" });
    input.value = f.default === null || f.default === undefined ? "" : String(f.default);
  }
  input.dataset.field = f.name;
  input.dataset.kind = f.type;
  input.addEventListener("input", () => checkSettings(col));
  input.addEventListener("change", () => checkSettings(col));
  return el("label", { class: "field" + (f.type === "boolean" ? " check" : ""), title: f.description,
    "data-path": `columns[${col}].generation.${f.name}` }, f.name, " ", input, el("span", { class: "field-error" }));
}

function column(col) {
  const fields = state.options.generation_fields;
  const presets = el("select", { id: `pg-c${col}-preset` }, el("option", { value: "", text: "(fill from a preset)" }),
    Object.keys(state.options.presets).map((p) => el("option", { value: p, text: p })));
  presets.addEventListener("change", () => applyPreset(col, presets.value));
  const model = el("input", { id: `pg-c${col}-model`, list: "model-options", value: "builtin:tiny-t5",
    placeholder: "builtin:NAME, a folder, a hub id, run:RUN/LABEL" });
  return el("div", { class: "column", id: `pg-col-${col}` },
    el("h3", { text: `Column ${col + 1}` }),
    el("label", { class: "field wide", "data-path": `columns[${col}].model.source` }, "model", model,
      el("span", { class: "field-error" })),
    el("label", { class: "field wide", "data-path": `columns[${col}].model.adapter` }, "adapter folder (optional)",
      el("input", { id: `pg-c${col}-adapter`, placeholder: "a PEFT adapter folder" }), el("span", { class: "field-error" })),
    el("label", { class: "field wide" }, "preset", presets),
    el("details", { open: true }, el("summary", { text: "generation settings" }),
      el("div", { class: "grid" }, fields.map((f) => fieldInput(f, col)))));
}

function applyPreset(col, name) {
  if (!name) return;
  const values = state.options.presets[name];
  for (const f of state.options.generation_fields) {
    const input = $(`pg-c${col}-${f.name}`);
    const v = f.name in values ? values[f.name] : f.default;
    if (f.type === "boolean") input.checked = Boolean(v);
    else if (f.type === "array") input.value = (v || []).join("\n");
    else input.value = v === null || v === undefined ? "" : String(v);
  }
  checkSettings(col);
}

function settingsOf(col) {
  const out = {};
  for (const f of state.options.generation_fields) {
    const input = $(`pg-c${col}-${f.name}`);
    if (f.type === "boolean") out[f.name] = input.checked;
    else if (f.type === "choice") out[f.name] = input.value === "true" ? true : input.value === "false" ? false : input.value;
    else if (f.type === "array") {
      const lines = input.value.split("\n").filter((s) => s !== "").map((s) => s.replace(/\\n/g, "\n"));
      if (lines.length) out[f.name] = lines;
    } else if (f.type === "string") { if (input.value !== "") out[f.name] = input.value; }
    else if (input.value.trim() !== "") out[f.name] = Number(input.value);
  }
  return out;
}

function checkSettings(col) {
  clearTimeout(state.settingsTimers[col]);
  state.settingsTimers[col] = setTimeout(async () => {
    try {
      const r = await api("/api/settings/check", { generation: settingsOf(col) });
      showFieldErrors(Object.fromEntries(Object.entries(r.errors).map(([k, v]) => [`columns[${col}].generation.${k}`, v])),
        `columns[${col}].generation.`);
    } catch (e) { banner(e.message); }
  }, 250);
}

// Show ``errors`` ({data-path: message}) beside their fields; clear the others under ``prefix`` ("" = all).
function showFieldErrors(errors, prefix) {
  const unplaced = [];
  for (const box of document.querySelectorAll("[data-path]")) {
    const path = box.dataset.path;
    if (!path.startsWith(prefix)) continue;
    const msg = errors[path] || "";
    box.classList.toggle("invalid", Boolean(msg));
    const span = box.querySelector(".field-error");
    if (span) span.textContent = msg;
  }
  for (const [path, msg] of Object.entries(errors)) {
    if (!document.querySelector(`[data-path="${CSS.escape(path)}"]`)) unplaced.push(`${path}: ${msg}`);
  }
  return unplaced;
}

function playgroundRequest() {
  const two = $("pg-two").checked;
  const columns = [0, 1].slice(0, two ? 2 : 1).map((c) => ({
    model: { source: $(`pg-c${c}-model`).value.trim(), adapter: $(`pg-c${c}-adapter`).value.trim() || null },
    generation: settingsOf(c),
  }));
  const req = { columns, template: $("pg-template").value, shots: Number($("pg-shots").value || 0),
    shot_selection: $("pg-shot-selection").value, shots_split: $("pg-shots-split").value.trim(),
    data: $("pg-data").value.trim() };
  if ($("pg-budget").value.trim()) req.max_input_tokens = Number($("pg-budget").value);
  if ($("pg-mode-text").checked) {
    req.input = $("pg-input").value;
    req.reference = $("pg-reference").value.trim() || null;
  } else {
    req.split = $("pg-split").value.trim();
    req.rows = Number($("pg-rows").value || 1);
    req.start = Number($("pg-start").value || 0);
  }
  return req;
}

function fmtRouge(r) {
  return r ? `ROUGE-1 ${r.rouge1.toFixed(3)} · ROUGE-2 ${r.rouge2.toFixed(3)} · ROUGE-L ${r.rougeL.toFixed(3)}` : "";
}

async function generate() {
  const button = $("pg-generate");
  const req = playgroundRequest();
  showFieldErrors({}, "");
  banner("");
  $("pg-results").replaceChildren();
  $("pg-summary").replaceChildren();
  $("pg-status").textContent = "loading the model(s) and building prompts…";
  button.disabled = true;
  const rows = [];
  const cell = (row, col) => {
    if (!rows[row]) {
      rows[row] = { outputs: el("div", { class: "row-outputs" }), prompt: el("pre"), ref: el("p", { class: "reference" }),
        cells: [] };
      $("pg-results").append(el("div", { class: "row", id: `pg-row-${row}` }, el("h3", { text: `Row ${row + 1}` }),
        el("details", {}, el("summary", { text: "prompt" }), rows[row].prompt), rows[row].ref, rows[row].outputs));
    }
    const r = rows[row];
    if (!r.cells[col]) {
      r.cells[col] = { text: el("div", { class: "text" }), meta: el("div", { class: "meta" }) };
      r.outputs.append(el("div", { class: "output", id: `pg-out-${row}-${col}` },
        el("strong", { text: req.columns[col].model.source }), r.cells[col].text, r.cells[col].meta));
    }
    return r;
  };
  try {
    const res = await fetch("/api/generate", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(req) });
    if (!res.ok) throw await apiError(res);
    $("pg-status").textContent = "generating…";
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.trim()) onEvent(JSON.parse(line), cell, req);
      }
    }
  } catch (e) {
    $("pg-status").textContent = "";
    const unplaced = e.fields ? showFieldErrors(e.fields, "") : [e.message];
    if (unplaced.length) banner(unplaced.join("\n"));
    else banner("Some fields are not valid: see the messages beside them.");
  } finally {
    button.disabled = false;
  }
}

function onEvent(ev, cell, req) {
  if (ev.type === "prompt") {
    const r = cell(ev.row, ev.col);
    if (ev.col === 0) {
      r.prompt.textContent = ev.text + (ev.note ? `\n\n(${ev.note})` : "") + `\n\n[${ev.tokens} tokens]`;
      r.ref.textContent = ev.reference.length ? `reference: ${ev.reference[0]}` : "no reference: no ROUGE";
    }
  } else if (ev.type === "delta") {
    cell(ev.row, ev.col).cells[ev.col].text.textContent += ev.text;
  } else if (ev.type === "output") {
    const c = cell(ev.row, ev.col).cells[ev.col];
    c.text.textContent = ev.text;
    const more = ev.more.length ? ` · ${ev.more.length} more output(s): ${ev.more.join(" | ")}` : "";
    c.meta.textContent = [fmtRouge(ev.rouge), `${ev.tokens} tokens, ended by ${ev.finish}`,
      ev.truncated ? "input truncated" : ""].filter(Boolean).join(" · ") + more;
    c.text.parentElement.classList.add("finished");
  } else if (ev.type === "summary") {
    const label = req.columns[ev.col].model.source;
    $("pg-summary").append(el("p", { class: "summary", id: `pg-summary-${ev.col}` },
      el("strong", { text: `Column ${ev.col + 1} (${label})` }),
      `: ${ev.rows} row(s) in ${ev.seconds.toFixed(2)} s` + (ev.rouge ? `; mean ${fmtRouge(ev.rouge)} over ${ev.scored} row(s)` : "")));
  } else if (ev.type === "error") {
    banner(ev.message);
    $("pg-status").textContent = "stopped: see the message above";
  } else if (ev.type === "done") {
    $("pg-status").textContent = "done";
  }
}

$("pg-generate").addEventListener("click", generate);
$("pg-two").addEventListener("change", () => { $("pg-col-1").hidden = !$("pg-two").checked; });
for (const id of ["pg-mode-text", "pg-mode-rows"]) {
  $(id).addEventListener("change", () => {
    $("pg-text-input").hidden = !$("pg-mode-text").checked;
    $("pg-rows-input").hidden = $("pg-mode-text").checked;
  });
}

// ---------------------------------------------------------------------------------------------- runs

function badge(status) { return el("span", { class: `badge ${status}`, text: status }); }

async function loadRuns() {
  try {
    const data = await api("/api/runs");
    state.runs = data.runs;
    $("runs-dir").textContent = data.runs_dir;
    $("runs-status").textContent = data.exists ? `${data.runs.length} run(s)` : "the runs directory does not exist yet";
    const body = $("runs-table").querySelector("tbody");
    const picked = new Set([...body.querySelectorAll(".pick:checked")].map((c) => c.value));
    body.replaceChildren(...data.runs.map((r) => el("tr", { "data-run": r.name },
      el("td", {}, el("input", { type: "checkbox", class: "pick", value: r.name, "aria-label": `select ${r.name}`,
        checked: picked.has(r.name) })),
      el("td", {}, el("button", { type: "button", class: "open-run", text: r.name,
        onclick: () => { location.hash = `run/${r.name}`; } })),
      el("td", { text: r.model }),
      el("td", {}, el("span", { class: "dots", title: r.stages.map((s) => `${s.name}: ${s.state}`).join("\n") },
        r.stages.map((s) => el("span", { class: `dot ${s.state}` }))), ` ${r.done}/${r.total}`),
      el("td", {}, badge(r.job === "running" ? "running" : r.status)),
      el("td", {}, r.headline.map((h) => el("div", { text: h }))),
      el("td", { text: r.when }))));
    // while a run is being written, the table follows it (only while the runs tab is shown)
    clearTimeout(state.runsTimer);
    if (data.runs.some((r) => r.status === "running" || r.job === "running")) {
      state.runsTimer = setTimeout(() => { if (!$("tab-runs").hidden) loadRuns(); }, 2000);
    }
  } catch (e) { banner(e.message); }
}

async function openRun(name) {
  banner("");
  try {
    const r = await api(`/api/runs/${encodeURIComponent(name)}`);
    $("run-title").replaceChildren(`Run ${r.name} `, badge(r.job === "running" ? "running" : r.status));
    $("run-note").textContent = [`model ${r.model}, data ${r.data}, recipe ${r.recipe}`,
      r.llmcycle_version ? `llmcycle ${r.llmcycle_version}` : "", r.note].filter(Boolean).join(" · ");
    $("run-stages").replaceChildren(...r.stages.map((s) =>
      el("span", { class: `stage ${s.state}`, text: `${s.name}: ${s.state}` + (s.seconds ? ` (${s.seconds} s)` : "") })));
    const actions = [];
    if (r.resumable && r.job !== "running") actions.push(el("button", { type: "button", id: "run-resume",
      text: "Resume", onclick: () => resumeRun(r.name) }));
    if (r.job === "running") actions.push(el("button", { type: "button", text: "Cancel",
      onclick: () => cancelJob(r.name).then(() => openRun(r.name)) }));
    $("run-actions").replaceChildren(...actions);
    $("run-models").replaceChildren(...(r.models.length ? [el("p", {}, "Models this run made: ",
      r.models.map((m) => el("button", { type: "button", class: "use-model", "data-model": m.value,
        text: `${m.label} (${m.what}): try it in the playground`,
        onclick: () => { $("pg-c0-model").value = m.value; location.hash = "playground"; } })))] : []));
    const frame = $("run-report");
    frame.onload = () => {
      try { frame.style.height = `${frame.contentDocument.documentElement.scrollHeight + 20}px`; } catch (e) { /* */ }
    };
    frame.src = `/api/runs/${encodeURIComponent(r.name)}/report`;
    $("run-log-box").hidden = !r.log.length;
    $("run-log").textContent = r.log.join("\n");
    $("run-files-count").textContent = String(r.files.length);
    $("run-files").replaceChildren(...r.files.map((f) => el("li", {},
      el("a", { href: `/api/runs/${encodeURIComponent(r.name)}/files/${f.path.split("/").map(encodeURIComponent).join("/")}`,
        download: f.path.split("/").pop(), text: f.path }), ` (${f.bytes.toLocaleString()} bytes)`)));
  } catch (e) {
    $("run-detail").hidden = true;
    banner(e.message);
  }
}

async function resumeRun(name) {
  try {
    const job = await api(`/api/runs/${encodeURIComponent(name)}/resume`, {});
    location.hash = "launch";
    watchJob(job);
  } catch (e) { banner(e.message); }
}

$("runs-refresh").addEventListener("click", loadRuns);
$("runs-compare").addEventListener("click", () => {
  const picked = [...document.querySelectorAll("#runs-table .pick:checked")].map((c) => c.value);
  if (picked.length < 2) { banner("Tick two or more runs to compare them."); return; }
  location.hash = `compare/${picked.join(",")}`;
});

async function openCompare(names) {
  banner("");
  try {
    const q = names.map((n) => `run=${encodeURIComponent(n)}`).join("&");
    const c = await api(`/api/compare?${q}`);
    $("compare-names").textContent = c.runs.map((r) => r.name).join(", ");
    $("compare-table").querySelector("thead").replaceChildren(el("tr", {}, el("th", { text: "metric" }),
      c.runs.map((r) => el("th", { text: r.name }))));
    $("compare-table").querySelector("tbody").replaceChildren(...c.metrics.map((m) => el("tr", {},
      el("td", { text: m.metric }), m.values.map((v) => el("td", { text: v })))));
    $("compare-curves").replaceChildren(...(c.curves.length ? c.curves.map((ch) => chart(ch, c.runs.map((r) => r.name)))
      : [el("p", { class: "note", text: "No curves in these runs." })]));
  } catch (e) {
    $("compare").hidden = true;
    banner(e.message);
  }
}

// One SVG line chart: one line (and its points) per run, the runs' colours fixed by their order.
function chart(ch, order) {
  const W = 480, H = 260, L = 70, R = 14, T = 14, B = 34;
  const pts = ch.series.flatMap((s) => s.points);
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
  const sx = (x) => L + (x - x0) / (x1 - x0) * (W - L - R);
  const sy = (y) => H - B - (y - y0) / (y1 - y0) * (H - T - B);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    svg.append(n);
    return n;
  };
  add("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#8c959f" });
  add("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#8c959f" });
  const fmt = (v) => Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : String(+v.toFixed(3));
  add("text", { x: L - 6, y: T + 12, "text-anchor": "end", "font-size": 18 }, fmt(y1));
  add("text", { x: L - 6, y: H - B, "text-anchor": "end", "font-size": 18 }, fmt(y0));
  add("text", { x: L, y: H - 8, "font-size": 18 }, fmt(x0));
  add("text", { x: W - R, y: H - 8, "text-anchor": "end", "font-size": 18 }, fmt(x1));
  for (const s of ch.series) {
    const colour = COLOURS[order.indexOf(s.run) % COLOURS.length];
    add("polyline", { points: s.points.map((p) => `${sx(p[0])},${sy(p[1])}`).join(" "), fill: "none",
      stroke: colour, "stroke-width": 3, class: "series", "data-run": s.run });
    for (const p of s.points) add("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 4, fill: colour });
  }
  const legend = el("div", { class: "legend" }, ch.series.map((s) =>
    el("span", { style: `--c:${COLOURS[order.indexOf(s.run) % COLOURS.length]}`, text: s.run })));
  return el("div", { class: "chart", "data-curve": ch.name }, el("strong", { text: ch.name }), svg, legend);
}

// ---------------------------------------------------------------------------------------------- launcher

function overrideRow(key, value) {
  const row = el("div", { class: "override" },
    el("input", { class: "ov-key", placeholder: "field (e.g. model.source)", value: key || "", "aria-label": "field" }),
    el("span", { text: "=" }),
    el("input", { class: "ov-value", placeholder: "value (YAML)", value: value || "", "aria-label": "value" }),
    el("button", { type: "button", text: "Remove", onclick: () => { row.remove(); invalidatePlan(); } }));
  row.addEventListener("input", invalidatePlan);
  $("ln-overrides").append(row);
  return row;
}

function invalidatePlan() { $("ln-start").disabled = true; state.checked = null; }

async function launchBody() {
  const overrides = [...document.querySelectorAll("#ln-overrides .override")]
    .map((r) => [r.querySelector(".ov-key").value.trim(), r.querySelector(".ov-value").value])
    .filter(([k]) => k).map(([k, v]) => `${k}=${v}`);
  if ($("ln-kind-upload").checked) {
    const file = $("ln-file").files[0];
    if (!file) throw new ApiError("Choose a YAML file to upload first.");
    return { yaml: await file.text(), overrides };
  }
  return { recipe: $("ln-recipe").value, overrides };
}

async function checkLaunch() {
  banner("");
  $("ln-status").textContent = "checking…";
  try {
    const body = await launchBody();
    const r = await api("/api/launch/check", body);
    state.checked = body;
    $("ln-plan").hidden = false;
    $("ln-plan-text").textContent = r.plan.text;
    $("ln-plan-table").querySelector("thead").replaceChildren(el("tr", {}, r.plan.columns.map((c) => el("th", { text: c }))));
    $("ln-plan-table").querySelector("tbody").replaceChildren(...r.plan.rows.map((row) =>
      el("tr", {}, row.map((v) => el("td", { text: v })))));
    $("ln-status").textContent = `checked: ${r.plan.stages.length} stages, every field valid`;
    $("ln-start").disabled = false;
  } catch (e) {
    $("ln-plan").hidden = true;
    $("ln-status").textContent = "";
    banner(e.message);
  }
}

async function startLaunch() {
  if (!state.checked) return;
  banner("");
  $("ln-start").disabled = true;
  try {
    watchJob(await api("/api/launch", state.checked));
  } catch (e) { banner(e.message); }
}

// One card per run started (or resumed) from this page, polled every second while any is running.
function jobCard(name) {
  if (state.jobs[name]) return state.jobs[name];
  const c = {
    badge: el("span", { class: "badge" }), progress: el("progress", { max: "1", value: "0" }),
    stages: el("div", { class: "stages" }), error: el("p", { class: "message error", hidden: true }),
    log: el("pre", { class: "log" }),
    cancel: el("button", { type: "button", class: "cancel", text: "Cancel", onclick: () => cancelJob(name) }),
    resume: el("button", { type: "button", class: "resume", text: "Resume", hidden: true, onclick: () => resumeRun(name) }),
    open: el("a", { href: `#run/${name}`, class: "open", text: "Open the run", hidden: true }),
  };
  c.box = el("div", { class: "card job", id: `job-${name}`, "data-run": name },
    el("h3", {}, `${name} `, c.badge), c.progress, c.stages, c.error,
    el("div", { class: "actions" }, c.cancel, c.resume, c.open),
    el("details", { open: true }, el("summary", { text: "log" }), c.log));
  $("ln-jobs").prepend(c.box);
  $("ln-jobs-title").hidden = false;
  state.jobs[name] = c;
  return c;
}

function watchJob(job) {
  showJob(job);
  if (state.jobTimer) return;
  state.jobTimer = setInterval(async () => {
    const live = Object.keys(state.jobs).filter((n) => ["running", "cancelling"].includes(state.jobs[n].state));
    if (!live.length) { clearInterval(state.jobTimer); state.jobTimer = null; return; }
    for (const name of live) {
      try { showJob(await api(`/api/jobs/${encodeURIComponent(name)}`)); } catch (e) { banner(e.message); }
    }
  }, 1000);
}

function showJob(j) {
  const c = jobCard(j.run);
  c.state = j.state;
  c.box.dataset.state = j.state;
  c.badge.className = `badge ${j.state}`;
  c.badge.textContent = j.state;
  c.progress.max = Math.max(1, j.stages.length);
  c.progress.value = j.stages.filter((x) => x.state === "done").length;
  c.stages.replaceChildren(...j.stages.map((x) => el("span", { class: `stage ${x.state}`, text: `${x.name}: ${x.state}` })));
  c.log.textContent = j.log.join("\n");
  c.log.scrollTop = c.log.scrollHeight;
  c.error.hidden = !j.error;
  c.error.textContent = j.error || "";
  c.cancel.hidden = !["running", "cancelling"].includes(j.state);
  c.resume.hidden = !j.resumable;
  c.open.hidden = ["running", "cancelling"].includes(j.state);
}

async function cancelJob(name) {
  try { showJob(await api(`/api/jobs/${encodeURIComponent(name)}/cancel`, {})); } catch (e) { banner(e.message); }
}

$("ln-add").addEventListener("click", () => overrideRow());
$("ln-check").addEventListener("click", checkLaunch);
$("ln-start").addEventListener("click", startLaunch);
$("ln-recipe").addEventListener("change", invalidatePlan);
$("ln-file").addEventListener("change", invalidatePlan);
for (const id of ["ln-kind-shipped", "ln-kind-upload"]) {
  $(id).addEventListener("change", () => {
    $("ln-shipped-box").hidden = !$("ln-kind-shipped").checked;
    $("ln-upload-box").hidden = $("ln-kind-shipped").checked;
    invalidatePlan();
  });
}

// ---------------------------------------------------------------------------------------------- start

(async () => {
  overrideRow("model.source", "builtin:tiny-t5");
  try {
    await loadOptions();
    for (const job of (await api("/api/jobs")).jobs) watchJob(job);  // runs started before this page was loaded
    document.body.dataset.ready = "true";
  } catch (e) {
    banner(e.message);
  }
  route();
})();
