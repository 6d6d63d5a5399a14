// The gradcam explorer: upload an image, see the top-5 classes, click one to see its map.
// The server returns each map alone (JET colours, PNG); it is blended over the photo with CSS
// opacity, so the slider is instant. "Download overlay" asks the server for its own overlay.
"use strict";

const $ = (id) => document.getElementById(id);
const ui = {
  stage: $("stage"), file: $("file"), empty: $("empty"), pick: $("pick"), limits: $("limits"),
  figure: $("figure"), photo: $("photo"), heat: $("heat"), box: $("box"), boxLabel: $("box-label"),
  busy: $("busy"), opacity: $("opacity"), opacityValue: $("opacity-value"), showBox: $("show-box"),
  replace: $("replace"), download: $("download"), status: $("status"), modelInfo: $("model-info"),
  top5: $("top5"), extra: $("extra"), search: $("class-search"), suggestions: $("suggestions"),
  method: $("method"), layer: $("layer"), target: $("target"), counterfactual: $("counterfactual"),
  details: $("details"), concepts: $("concepts"),
};

const state = {
  info: null,          // GET /v1/models
  classes: null,       // GET /v1/classes (on first search)
  file: null,          // the uploaded Blob
  stem: "image",
  url: null,           // object URL of the upload
  image: null,         // {width, height} as the server decoded it
  top5: [],
  extra: [],           // classes picked with the search: {class, label, score?}
  selected: null,      // the class shown
  shown: null,         // the explanation shown
  cache: new Map(),    // method|layer|target|counterfactual|class -> explanation
  fileId: 0,           // which upload (cache keys and stale answers)
  gen: 0,              // bumped by each new analysis; older answers are not shown
  pending: 0,          // requests in flight (the spinner)
  combined: null,      // deepfeaturefactorization's picture of all concepts (base64 PNG)
};

const fmt = (x, d = 1) => Number(x).toFixed(d);

function setStatus(text, error = false) {
  ui.status.textContent = text;
  ui.status.classList.toggle("error", error);
}

function setBusy(delta) {
  state.pending = Math.max(0, state.pending + delta);
  ui.busy.hidden = state.pending === 0;
}

// Explanations are cached per image, method, layer, target, counterfactual and class.
function prefix() {
  return [state.fileId, ui.method.value, ui.layer.value, ui.target.value, ui.counterfactual.checked].join("|");
}

// Methods that find concepts (deepfeaturefactorization) instead of a map per class.
function findsConcepts() {
  const row = state.info && state.info.method_details.find((m) => m.name === ui.method.value);
  return Boolean(row && row.concepts);
}

async function explain(extra) {
  const query = new URLSearchParams({ method: ui.method.value });
  if (ui.layer.value) query.set("layer", ui.layer.value);
  if (!findsConcepts() && ui.target.value !== "logit") query.set("target", ui.target.value);
  if (!findsConcepts() && ui.counterfactual.checked) query.set("counterfactual", "true");
  for (const [k, v] of Object.entries(extra)) query.set(k, String(v));
  const form = new FormData();
  form.append("image", state.file, state.stem);
  const response = await fetch("/v1/explain?" + query, { method: "POST", body: form });
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  if (!response.ok) throw new Error((body && body.error) || `HTTP ${response.status}`);
  return body;
}

function remember(response, pre) {
  for (const e of response.explanations) {
    state.cache.set(pre + "|" + e.class, { ...e, layers: response.layers, method: response.method, timings: response.timings });
  }
}

// Explain the top-5 at once (one forward pass, five backward passes); clicks are then instant.
async function analyze() {
  if (!state.file) return;
  if (findsConcepts()) return analyzeConcepts();
  const gen = ++state.gen;
  const pre = prefix();
  setBusy(1);
  setStatus("Explaining…");
  try {
    // At most the model's classes (two for a binary target).
    const model = state.info && state.info.models[0];
    const classes = ui.target.value === "binary" ? 2 : (model ? model.num_classes : 5);
    const r = await explain({ top_k: Math.min(5, classes), overlay: false });
    remember(r, pre);
    if (gen !== state.gen) return;
    state.image = r.image;
    ui.figure.style.setProperty("--ratio", r.image.width / r.image.height);
    state.top5 = r.top5;
    const picked = (p) => p.class === state.selected;
    const keep = state.selected !== null && (state.top5.some(picked) || state.extra.some(picked));
    setStatus("");
    await select(keep ? state.selected : r.top5[0].class);
  } catch (err) {
    if (gen === state.gen) setStatus(err.message, true);
  } finally {
    setBusy(-1);
  }
}

// The concepts of the photo: one labelled overlay each and all of them in their colours.
async function analyzeConcepts() {
  const gen = ++state.gen;
  setBusy(1);
  setStatus("Finding concepts…");
  try {
    const r = await explain({ concepts: 4, image_weight: fmt(1 - ui.opacity.value / 100, 2) });
    if (gen !== state.gen) return;
    state.image = r.image;
    state.top5 = r.top5;
    state.selected = null;
    state.shown = null;
    state.combined = r.combined_png;
    ui.heat.removeAttribute("src");
    ui.box.hidden = true;
    renderClasses();
    const figure = (png, caption) => {
      const f = document.createElement("figure");
      const img = document.createElement("img");
      img.src = "data:image/png;base64," + png;
      img.alt = caption;
      const c = document.createElement("figcaption");
      c.textContent = caption;
      f.append(img, c);
      return f;
    };
    ui.concepts.replaceChildren(
      figure(r.combined_png, `${r.concepts.length} concepts at ${r.layers[0]}`),
      ...r.concepts.map((c) => figure(c.overlay_png, `concept ${c.index}: ${c.label}`)),
    );
    ui.concepts.hidden = false;
    const rows = [["Method", `${r.method} at ${r.layers[0]}`], ["Time", `${fmt(r.timings.total, 0)} ms`]];
    ui.details.replaceChildren(...rows.flatMap(([k, v]) => {
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = v;
      return [dt, dd];
    }));
    ui.download.disabled = false;
    setStatus("");
  } catch (err) {
    if (gen === state.gen) setStatus(err.message, true);
  } finally {
    setBusy(-1);
  }
}

async function select(cls) {
  // A concept method explains no class: its concepts name their own.
  if (findsConcepts()) return;
  state.selected = cls;
  renderClasses();
  const gen = state.gen;
  const pre = prefix();
  let e = state.cache.get(pre + "|" + cls);
  if (!e) {
    setBusy(1);
    try {
      const r = await explain({ class: cls, overlay: false });
      remember(r, pre);
      e = state.cache.get(pre + "|" + cls);
    } catch (err) {
      if (gen === state.gen && state.selected === cls) setStatus(err.message, true);
      return;
    } finally {
      setBusy(-1);
    }
  }
  if (gen !== state.gen || state.selected !== cls || !e) return;
  show(e);
}

function show(e) {
  state.shown = e;
  ui.concepts.hidden = true;
  ui.heat.src = "data:image/png;base64," + e.heatmap_png;
  const extra = state.extra.find((p) => p.class === e.class);
  if (extra) extra.score = e.score;
  renderBox();
  renderClasses();
  renderDetails();
  ui.download.disabled = false;
}

function renderBox() {
  const e = state.shown;
  const b = e && e.box;
  if (!b || !ui.showBox.checked || !state.image) {
    ui.box.hidden = true;
    return;
  }
  const { width, height } = state.image;
  ui.box.style.left = (100 * b.x1 / width) + "%";
  ui.box.style.top = (100 * b.y1 / height) + "%";
  ui.box.style.width = (100 * (b.x2 - b.x1 + 1) / width) + "%";
  ui.box.style.height = (100 * (b.y2 - b.y1 + 1) / height) + "%";
  ui.box.classList.toggle("inside", b.y1 < 0.06 * height);
  ui.boxLabel.textContent = e.label || (e.class !== null ? `class ${e.class}` : "target");
  ui.box.hidden = false;
}

function classButton(p, rank, right, fraction) {
  const li = document.createElement("li");
  const b = document.createElement("button");
  b.type = "button";
  b.className = "cls" + (p.class === state.selected ? " selected" : "");
  b.dataset.class = p.class;
  b.setAttribute("aria-pressed", p.class === state.selected);
  const r = document.createElement("span"); r.className = "rank"; r.textContent = rank;
  const n = document.createElement("span"); n.className = "name"; n.textContent = p.label; n.title = `${p.class} · ${p.label}`;
  const v = document.createElement("span"); v.className = "pct"; v.textContent = right;
  b.append(r, n, v);
  if (fraction !== null) {
    const bar = document.createElement("span"); bar.className = "bar";
    const fill = document.createElement("i"); fill.style.width = Math.max(1, 100 * fraction) + "%";
    bar.append(fill);
    b.append(bar);
  }
  b.addEventListener("click", () => select(p.class));
  li.append(b);
  return li;
}

function renderClasses() {
  ui.top5.replaceChildren(...state.top5.map((p, i) => classButton(p, i + 1, fmt(100 * p.probability) + "%", p.probability)));
  const extra = state.extra.filter((p) => !state.top5.some((q) => q.class === p.class));
  ui.extra.replaceChildren(...extra.map((p) => classButton(p, "·", p.score === undefined ? "…" : "logit " + fmt(p.score, 2), null)));
}

function renderDetails() {
  const e = state.shown;
  if (!e) { ui.details.replaceChildren(); return; }
  const rows = [
    ["Class", e.class !== null ? `${e.class} · ${e.label}` : "target"],
    [`Score (${ui.counterfactual.checked ? "−" : ""}${ui.target.value === "softmax" ? "probability" : "logit"})`, fmt(e.score, 3)],
    ["Box", e.box ? `x ${e.box.x1}–${e.box.x2}, y ${e.box.y1}–${e.box.y2}` : "none (empty map)"],
    ["Map", `${e.method} at ${e.layers.join(" + ")}`],
    ["Time", `${fmt(e.timings.total, 0)} ms (forward ${fmt(e.timings.forward, 0)}, backward ${fmt(e.timings.backward, 0)})`],
  ];
  ui.details.replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    return [dt, dd];
  }));
}

// Uploads

function useFile(file) {
  if (!file) return;
  const limit = state.info && state.info.limits.max_body_bytes;
  if (limit && file.size > limit) {
    setStatus(`This file is ${fmt(file.size / 1048576)} MB; the server takes up to ${fmt(limit / 1048576, 0)} MB.`, true);
    return;
  }
  state.file = file;
  state.fileId += 1;
  state.stem = (file.name || "image").replace(/\.[^.]+$/, "") || "image";
  state.cache.clear();
  state.extra = [];
  state.selected = null;
  state.shown = null;
  state.top5 = [];
  renderClasses();
  renderDetails();
  if (state.url) URL.revokeObjectURL(state.url);
  state.url = URL.createObjectURL(file);
  ui.heat.removeAttribute("src");
  ui.box.hidden = true;
  ui.photo.src = state.url;
  ui.empty.hidden = true;
  ui.figure.hidden = false;
  ui.stage.classList.add("loaded");
  ui.replace.disabled = false;
  ui.download.disabled = true;
  ui.search.disabled = false;
  analyze();
}

ui.photo.addEventListener("load", () => {
  ui.figure.style.setProperty("--ratio", ui.photo.naturalWidth / ui.photo.naturalHeight);
});

ui.pick.addEventListener("click", () => ui.file.click());
ui.replace.addEventListener("click", () => ui.file.click());
ui.file.addEventListener("change", () => { useFile(ui.file.files[0]); ui.file.value = ""; });
ui.stage.addEventListener("click", (ev) => { if (!state.file && ev.target === ui.stage) ui.file.click(); });
ui.stage.addEventListener("keydown", (ev) => { if ((ev.key === "Enter" || ev.key === " ") && ev.target === ui.stage) { ev.preventDefault(); ui.file.click(); } });
for (const name of ["dragenter", "dragover"]) {
  ui.stage.addEventListener(name, (ev) => { ev.preventDefault(); ui.stage.classList.add("dragging"); });
}
for (const name of ["dragleave", "drop"]) {
  ui.stage.addEventListener(name, (ev) => { ev.preventDefault(); ui.stage.classList.remove("dragging"); });
}
ui.stage.addEventListener("drop", (ev) => useFile(ev.dataTransfer.files[0]));
document.addEventListener("paste", (ev) => {
  const item = [...ev.clipboardData.items].find((i) => i.kind === "file" && i.type.startsWith("image/"));
  if (item) useFile(item.getAsFile());
});

// Controls

ui.opacity.addEventListener("input", () => {
  ui.heat.style.opacity = ui.opacity.value / 100;
  ui.opacityValue.textContent = ui.opacity.value + "%";
});
ui.showBox.addEventListener("change", renderBox);
for (const el of [ui.method, ui.layer, ui.target, ui.counterfactual]) {
  el.addEventListener("change", () => { renderDetails(); analyze(); });
}

function download(png, name) {
  const a = document.createElement("a");
  a.href = "data:image/png;base64," + png;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
}

ui.download.addEventListener("click", async () => {
  if (findsConcepts() && state.combined) return download(state.combined, `${state.stem}.dff.png`);
  if (!state.shown) return;
  const cls = state.selected;
  ui.download.disabled = true;
  setBusy(1);
  try {
    const r = await explain({
      class: cls, heatmap: false, overlay: true,
      image_weight: fmt(1 - ui.opacity.value / 100, 2), box: ui.showBox.checked,
    });
    download(r.explanations[0].overlay_png, `${state.stem}.${r.method}.c${cls}.png`);
  } catch (err) {
    setStatus(err.message, true);
  } finally {
    setBusy(-1);
    ui.download.disabled = false;
  }
});

// Class search

let active = 0;
async function loadClasses() {
  if (state.classes) return state.classes;
  const r = await fetch("/v1/classes");
  state.classes = (await r.json()).classes;
  return state.classes;
}

function matches(query) {
  const q = query.trim().toLowerCase().replace(/_/g, " ");
  if (!q || !state.classes) return [];
  const exact = [], starts = [], contains = [];
  for (const c of state.classes) {
    const label = c.label.toLowerCase();
    const names = (c.names || "").toLowerCase();
    if (String(c.class) === q || label === q) exact.push(c);
    else if (label.startsWith(q)) starts.push(c);
    else if (label.includes(q) || names.includes(q)) contains.push(c);
  }
  return [...exact, ...starts, ...contains].slice(0, 8);
}

function renderSuggestions() {
  const list = matches(ui.search.value);
  active = Math.min(active, Math.max(0, list.length - 1));
  ui.suggestions.replaceChildren(...list.map((c, i) => {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = i === active ? "active" : "";
    b.dataset.class = c.class;
    const idx = document.createElement("span"); idx.className = "idx"; idx.textContent = c.class;
    const name = document.createElement("span"); name.className = "label"; name.textContent = c.label;
    b.append(idx, name);
    if (c.names && c.names.toLowerCase() !== c.label.toLowerCase()) {
      const syn = document.createElement("span"); syn.className = "syn"; syn.textContent = c.names;
      b.append(syn);
    }
    b.addEventListener("mousedown", (ev) => ev.preventDefault());
    b.addEventListener("click", () => pickClass(c));
    li.append(b);
    return li;
  }));
  ui.suggestions.hidden = list.length === 0;
  return list;
}

function pickClass(c) {
  ui.search.value = "";
  ui.suggestions.hidden = true;
  if (!state.top5.some((p) => p.class === c.class) && !state.extra.some((p) => p.class === c.class)) {
    state.extra.push({ class: c.class, label: c.label });
  }
  select(c.class);
}

ui.search.addEventListener("focus", () => loadClasses().then(renderSuggestions).catch(() => {}));
ui.search.addEventListener("input", () => { active = 0; loadClasses().then(renderSuggestions).catch(() => {}); });
ui.search.addEventListener("blur", () => { ui.suggestions.hidden = true; });
ui.search.addEventListener("keydown", (ev) => {
  const list = matches(ui.search.value);
  if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
    ev.preventDefault();
    active = (active + (ev.key === "ArrowDown" ? 1 : list.length - 1)) % Math.max(1, list.length);
    renderSuggestions();
  } else if (ev.key === "Enter" && list.length) {
    ev.preventDefault();
    pickClass(list[active] || list[0]);
  } else if (ev.key === "Escape") {
    ui.suggestions.hidden = true;
  }
});

// Start: what the server offers.

async function init() {
  try {
    const r = await fetch("/v1/models");
    const info = await r.json();
    state.info = info;
    const m = info.models[0];
    const more = document.createElement("span");
    more.className = "more";
    more.textContent = ` · ${m.input_size[0]}×${m.input_size[1]} · ${m.num_classes} classes`;
    ui.modelInfo.replaceChildren(m.name, more);
    ui.method.replaceChildren(...info.methods.map((name) => new Option(name, name, name === info.default_method, name === info.default_method)));
    // A one-output model's logit reads as two classes with the binary target.
    const targets = m.num_classes === 1 ? ["logit", "binary"] : ["logit", "softmax"];
    ui.target.replaceChildren(...targets.map((t) => new Option(t, t)));
    const def = new Option(`default (${m.default_layer})`, "");
    ui.layer.replaceChildren(def, ...m.layers.map((l) => new Option(`${l.name}  ${l.shape.join("×")}`, l.name)));
    ui.limits.textContent = `JPEG, PNG, BMP or WebP · up to ${fmt(info.limits.max_body_bytes / 1048576, 0)} MB`;
  } catch (err) {
    setStatus("Cannot reach the server: " + err.message, true);
  }
}

init();
