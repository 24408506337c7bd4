// deepcanvas studio: the page. No build step; talks to the JSON API in deepcanvas/web/routes/.
"use strict";

const $ = (sel, el = document) => el.querySelector(sel);
const h = (tag, attrs = {}, ...kids) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined) el.append(kid);
  return el;
};

const S = {
  info: null,          // /api/info
  tech: null,          // the technique shown in the form
  picks: {},           // input name -> [image ids] (or class names)
  watching: null,      // id of the job shown on the canvas
  es: null,            // its EventSource
  jobs: [],            // /api/jobs
  classNames: null,
  pollTimer: null,
};

async function api(path, opts = {}) {
  const res = await fetch(path, opts);
  let body = null;
  try { body = await res.json(); } catch (e) { /* not JSON */ }
  if (!res.ok) throw new Error((body && body.error) || `${res.status} ${res.statusText}`);
  return body;
}

const fmtTime = (s) => {
  if (s === null || s === undefined || !isFinite(s)) return "";
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${String(s % 60).padStart(2, "0")} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
};
const fmtNum = (x) => (x === null || x === undefined) ? "" :
  (Math.abs(x) >= 1000 || (Math.abs(x) < 0.01 && x !== 0)) ? x.toExponential(2) : (+x.toPrecision(4)).toString();

// -- the form -------------------------------------------------------------------------------------
function techByName(name) { return S.info.techniques.find((t) => t.name === name); }
function modelInfo(name) { return S.info.models.find((m) => m.name === name); }

function renderTabs() {
  const tabs = $("#tabs");
  tabs.replaceChildren(...S.info.techniques.map((t) => h("button", {
    type: "button", role: "tab", class: "tab", dataset: { technique: t.name }, text: t.title,
    onclick: () => selectTechnique(t.name),
  })));
}

function selectTechnique(name, values = null) {
  const t = techByName(name);
  if (!t) return;
  S.tech = t;
  for (const b of document.querySelectorAll("#tabs .tab")) {
    const on = b.dataset.technique === name;
    b.classList.toggle("active", on);
    b.setAttribute("aria-selected", on);
  }
  $("#blurb").textContent = t.blurb;
  S.picks = {};
  for (const inp of t.inputs) {
    const given = values && values.inputs ? values.inputs[inp.name] : undefined;
    S.picks[inp.name] = given === undefined ? [...inp.default] : (given === null ? [] : [].concat(given));
  }
  renderInputs();
  renderFields(values ? values.params || {} : {});
  if (values && values.preview_every) $("#preview_every").value = values.preview_every;
  showFormError(null);
}

function renderInputs() {
  const box = $("#inputs");
  box.replaceChildren();
  for (const inp of S.tech.inputs) {
    if (inp.kind === "classes") box.append(classPicker(inp));
    else if (inp.kind === "mask") continue;  // regions: painted with the brush (the regions block below)
    else box.append(imagePicker(inp));
  }
  if (typeof regionsPanel === "function" && S.tech.inputs.some((i) => i.kind === "mask")) box.append(regionsPanel());
}

function imagePicker(inp) {
  const picked = S.picks[inp.name];
  const tiles = S.info.images.map((img) => {
    const on = picked.includes(img.id);
    return h("button", {
      type: "button", class: "tile" + (on ? " picked" : ""), title: img.name, "aria-pressed": on,
      dataset: { image: img.id, input: inp.name },
      onclick: () => {
        const cur = S.picks[inp.name];
        if (inp.multiple) S.picks[inp.name] = cur.includes(img.id) ? cur.filter((x) => x !== img.id) : [...cur, img.id];
        else S.picks[inp.name] = (cur.includes(img.id) && !inp.required) ? [] : [img.id];
        renderInputs();
      },
    }, h("img", { src: img.url, alt: img.name, loading: "lazy" }), h("span", { text: img.name }));
  });
  const file = h("input", { type: "file", accept: "image/*", dataset: { input: inp.name }, hidden: true,
    onchange: async (e) => {
      const f = e.target.files[0];
      if (f) await uploadInto(inp, f);
    } });
  const lim = `up to ${(S.info.max_upload / 1048576).toFixed(0)} MB and ${Math.round(S.info.max_upload_pixels / 1e6)} megapixels`;
  const up = h("label", { class: "tile upload", title: `Upload an image (${lim})` }, file,
    h("span", { class: "plus", text: "+" }), h("span", { text: "Upload" }));
  const hint = inp.multiple ? "pick one or more" : (inp.required ? "pick one" : "optional");
  return h("fieldset", { class: "picker", dataset: { input: inp.name } },
    h("legend", {}, inp.label, h("span", { class: "muted small", text: ` ${hint}` })),
    h("div", { class: "tiles" }, ...tiles, up),
    h("p", { class: "muted small upload-limit", text: `Uploads: JPEG, PNG, WebP… ${lim}.` }),
    h("p", { class: "error small upload-error", role: "alert", hidden: true }));
}

async function uploadInto(inp, file) {
  const box = document.querySelector(`fieldset.picker[data-input="${inp.name}"]`);
  const err = $(".upload-error", box);
  err.hidden = true;
  const limit = S.info.max_upload;
  if (file.size > limit) {
    err.textContent = `${file.name} is too large (${(file.size / 1048576).toFixed(1)} MB); the limit is ${(limit / 1048576).toFixed(0)} MB`;
    err.hidden = false;
    return;
  }
  box.classList.add("busy");
  const fd = new FormData();
  fd.append("file", file);
  try {
    const img = await api("/api/uploads", { method: "POST", body: fd });
    S.info.images.push(img);
    S.picks[inp.name] = inp.multiple ? [...S.picks[inp.name], img.id] : [img.id];
    renderInputs();
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
  } finally {
    box.classList.remove("busy");
  }
}

async function loadClassNames() {
  if (S.classNames) return;
  const m = S.info.models.find((x) => x.classifier);
  if (!m) return;
  const r = await api(`/api/classes?model=${encodeURIComponent(m.name)}`);
  S.classNames = r.classes;
  $("#class-names").replaceChildren(...r.classes.map((c) => h("option", { value: c })));
}

function classPicker(inp) {
  loadClassNames().catch(() => {});
  const chips = h("div", { class: "chips" }, ...S.picks[inp.name].map((c) => h("span", { class: "chip" }, c,
    h("button", { type: "button", class: "chip-x", "aria-label": `remove ${c}`, text: "×",
      onclick: () => { S.picks[inp.name] = S.picks[inp.name].filter((x) => x !== c); renderInputs(); } }))));
  const box = h("input", { type: "search", list: "class-names", placeholder: "search 1000 ImageNet classes…",
    dataset: { input: inp.name }, autocomplete: "off" });
  const add = () => {
    const v = box.value.trim();
    if (!v) return;
    if (!S.picks[inp.name].includes(v)) S.picks[inp.name] = [...S.picks[inp.name], v];
    renderInputs();
    const again = document.querySelector(`input[data-input="${inp.name}"]`);
    if (again) again.focus();
  };
  box.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); add(); } });
  box.addEventListener("change", () => { if (S.classNames && S.classNames.includes(box.value.trim())) add(); });
  return h("fieldset", { class: "picker", dataset: { input: inp.name } },
    h("legend", {}, inp.label, h("span", { class: "muted small", text: " one image per class" })),
    chips, h("div", { class: "row" }, box, h("button", { type: "button", class: "secondary", text: "Add", onclick: add })));
}

function currentModel() {
  const el = $("#job-form [name=model]");
  return el ? el.value : null;
}

function layerDefault(f) {
  const m = modelInfo(currentModel() || "vgg16");
  if (!m) return null;
  return m.defaults[f.name] || m.defaults[`${S.tech.name}_${f.name}`] || null;
}

function renderFields(values) {
  const main = $("#main-fields"), adv = $("#advanced-fields");
  main.replaceChildren();
  adv.replaceChildren();
  const first = ["size", "iterations"];
  const rank = (f) => (first.includes(f.name) ? first.indexOf(f.name) : first.length);
  const ordered = [...S.tech.fields].sort((a, b) => rank(a) - rank(b));  // stable: API order otherwise
  for (const f of ordered) (f.main ? main : adv).append(fieldEl(f, values[f.name]));
  refreshLayerHints();
  const changedAdvanced = S.tech.fields.some((f) => !f.main && f.name in values);
  $("#advanced").open = changedAdvanced;
}

function fieldEl(f, value) {
  const id = `f-${f.name}`;
  const v = value === undefined ? f.default : value;
  let input;
  if (f.type === "bool" && !f.optional) {
    input = h("input", { id, name: f.name, type: "checkbox", checked: !!v });
    return h("div", { class: "field check", title: f.help },
      h("label", { for: id }, input, h("span", { text: f.label })), h("small", { text: f.help }));
  }
  if (f.type === "bool") {  // optional: unset means the preset decides
    input = h("select", { id, name: f.name }, h("option", { value: "", text: "default" }),
      ...[["true", "on"], ["false", "off"]].map(([val, text]) => h("option", { value: val, text, selected: v === (val === "true") })));
  } else if (f.choices) {
    input = h("select", { id, name: f.name }, ...(f.optional ? [h("option", { value: "", text: "default" })] : []),
      ...f.choices.map((c) => h("option", { value: c, text: c, selected: c === v })));
    if (f.name === "model") input.addEventListener("change", refreshLayerHints);
  } else if (f.slider) {  // e.g. style strength: 0 (the photo) .. 1 (the painting)
    const [min, max, step] = f.slider;
    input = h("input", { id, name: f.name, type: "range", min, max, step, value: v === null ? (min + max) / 2 : v });
    const shown = h("output", { for: id, text: String(input.value) });
    input.addEventListener("input", () => { shown.textContent = input.value; });
    const wrap = h("div", { class: "field", dataset: { field: f.name } },
      h("label", { for: id, text: f.label }), input, shown, h("small", { class: "help", text: f.help }));
    return wrap;
  } else if (f.type === "int" || f.type === "float") {
    input = h("input", { id, name: f.name, type: "number", step: f.type === "int" ? "1" : "any",
      value: v === null ? "" : v, placeholder: f.optional ? "default" : "" });
  } else {
    input = h("input", { id, name: f.name, type: "text", value: v === null ? "" : v,
      placeholder: f.optional ? "default" : "", autocomplete: "off", spellcheck: "false" });
  }
  const wrap = h("div", { class: "field" + (f.layers ? " layers" : ""), dataset: { field: f.name } },
    h("label", { for: id, text: f.label }), input, h("small", { class: "help", text: f.help }));
  if (f.layers) wrap.append(h("div", { class: "layer-chips" }));
  return wrap;
}

function refreshLayerHints() {
  const m = modelInfo(currentModel() || "vgg16");
  for (const wrap of document.querySelectorAll(".field.layers")) {
    const f = S.tech.fields.find((x) => x.name === wrap.dataset.field);
    const input = $("input", wrap);
    const def = layerDefault(f);
    input.placeholder = def ? `default: ${def}` : "default";
    // Chips for the layers people pick (VGG: the ReLUs); any other layer can be typed.
    const all = m ? m.layers : [];
    const names = all.some((n) => n.startsWith("relu")) ? all.filter((n) => n.startsWith("relu")) : all;
    const box = $(".layer-chips", wrap);
    const current = () => (input.value || "").split(",").map((s) => s.trim()).filter(Boolean);
    const sync = () => {
      const have = current().map((s) => s.split(":")[0]);
      for (const b of box.children) b.classList.toggle("on", have.includes(b.textContent));
    };
    box.replaceChildren(...names.map((n) => h("button", { type: "button", class: "lchip", text: n,
      onclick: () => {
        let items = current();
        if (!items.length && def && f.name.endsWith("s")) items = def.split(",");
        const i = items.findIndex((s) => s.split(":")[0] === n);
        if (f.name.endsWith("s")) { if (i >= 0) items.splice(i, 1); else items.push(n); }
        else items = i >= 0 ? [] : [n];
        input.value = items.join(",");
        sync();
      } })));
    input.oninput = sync;
    sync();
  }
}

function collect() {
  const params = {};
  for (const f of S.tech.fields) {
    const el = $(`#job-form [name="${f.name}"]`);
    if (!el) continue;
    let v;
    if (f.type === "bool" && !f.optional) v = el.checked;
    else if (f.type === "bool") v = el.value === "" ? null : el.value === "true";
    else if (el.value.trim() === "") v = null;
    else if (f.type === "int" || f.type === "float") v = Number(el.value);
    else v = el.value.trim();
    if (v === null && f.optional && f.default === null) continue;
    if (v === f.default) continue;
    if (v === null) { params[f.name] = ""; continue; }
    params[f.name] = v;
  }
  const inputs = {};
  for (const inp of S.tech.inputs) {
    const p = S.picks[inp.name] || [];
    inputs[inp.name] = inp.multiple ? p : (p[0] || null);
  }
  return { technique: S.tech.name, inputs, params, preview_every: Number($("#preview_every").value) || 5 };
}

function showFormError(msg) {
  const el = $("#form-error");
  el.textContent = msg || "";
  el.hidden = !msg;
}

async function submit(e) {
  e.preventDefault();
  showFormError(null);
  const btn = $("#run");
  btn.disabled = true;
  try {
    if (typeof regionsBeforeSubmit === "function") await regionsBeforeSubmit();  // regions: upload the painting
    const job = await api("/api/jobs", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(collect()) });
    watch(job.id, job);
    refreshJobs();
    if (window.innerWidth < 900) $(".canvas-card").scrollIntoView({ behavior: "smooth", block: "start" });
  } catch (err) {
    showFormError(err.message);
  } finally {
    btn.disabled = false;
  }
}

// -- the canvas: one job, followed by server-sent events ------------------------------------------
function watch(id, snapshot = null) {
  if (S.es) { S.es.close(); S.es = null; }
  S.watching = id;
  const img = $("#preview");
  img.dataset.previewCount = "0";
  img.dataset.lastPreview = "-1";
  if (snapshot) showJob(snapshot);
  const es = new EventSource(`/api/jobs/${id}/events`);
  S.es = es;
  es.onmessage = (ev) => {
    const job = JSON.parse(ev.data);
    if (S.watching !== job.id) return;
    showJob(job);
    if (["done", "failed", "cancelled", "interrupted"].includes(job.state)) { es.close(); S.es = null; refreshJobs(); }
  };
  es.onerror = () => { /* the browser reconnects by itself; the stream resends the job */ };
}

function showJob(job) {
  const img = $("#preview"), stage = $("#stage");
  const terminal = ["done", "failed", "cancelled", "interrupted"].includes(job.state);
  if (job.results && job.results.length && terminal) {
    const src = job.results.length === 1 ? job.results[0].url : null;
    if (src && img.dataset.src !== src) { img.src = src; img.dataset.src = src; }
    else if (!src && job.preview) img.src = job.preview;
    stage.classList.remove("empty");
  } else if (job.preview && String(job.preview_count) !== img.dataset.lastPreview) {
    img.src = job.preview;
    img.dataset.src = "";
    img.dataset.lastPreview = String(job.preview_count);
    img.dataset.previewCount = String(Number(img.dataset.previewCount || 0) + 1);
    stage.classList.remove("empty");
  } else if (!job.preview && !terminal && job.state === "queued") {
    stage.classList.add("empty");
  }
  stage.dataset.state = job.state;
  const pct = job.total ? Math.round(100 * job.iteration / job.total) : 0;
  $("#bar").style.width = `${job.state === "done" ? 100 : pct}%`;
  $(".progress").setAttribute("aria-valuenow", job.state === "done" ? 100 : pct);
  $(".progress").dataset.state = job.state;
  const badge = $("#job-state");
  badge.textContent = job.state === "cancelled" && job.partial ? "cancelled · partial" : job.state;
  badge.dataset.state = job.state;
  let status = "";
  if (job.state === "queued") status = job.position > 1 ? `position ${job.position} in the queue` : "next in the queue";
  else if (job.state === "running") status = job.total ? `${job.iteration} / ${job.total} · ${job.stage}` : "loading the network…";
  else if (job.state === "done") status = `done in ${fmtTime(job.elapsed)}`;
  else if (job.state === "interrupted") status = job.error || "interrupted by a restart";
  else if (job.state === "cancelled") status = job.partial ? `stopped at ${job.iteration} / ${job.total}; the best image so far is kept` : "removed from the queue";
  $("#job-status").textContent = `${job.title} · ${status}`;
  const stats = [];
  if (job.state === "running" && job.eta !== null) stats.push(["time left", fmtTime(job.eta)]);
  if (job.elapsed && job.state === "running") stats.push(["elapsed", fmtTime(job.elapsed)]);
  if (job.loss !== null && job.loss !== undefined) stats.push(["loss", fmtNum(job.loss)]);
  for (const [k, v] of Object.entries(job.parts || {})) stats.push([k, fmtNum(v)]);
  $("#job-stats").replaceChildren(...stats.map(([k, v]) => h("span", { class: "stat" }, h("b", { text: v }), ` ${k}`)));
  const err = $("#job-error");
  err.textContent = job.error || "";
  err.hidden = !job.error;
  $("#cancel").hidden = terminal;
  $("#cancel").disabled = job.stage === "cancelling";
  const dl = $("#download");
  const n = job.results ? job.results.length : 0;
  dl.hidden = n === 0;
  if (n) {
    dl.href = `${job.results[0].url}?download=1`;
    dl.textContent = n > 1 ? `Download PNG 1 of ${n}` : "Download PNG";
  }
  $("#more-downloads").replaceChildren(...(n > 1 ? job.results.slice(1).map((r, i) => h("a", {
    class: "button secondary", href: `${r.url}?download=1`, download: "", text: `${i + 2}` })) : []));
  $("#rerun-current").hidden = !terminal;
  $("#print-current").hidden = !(typeof canPrint === "function" && canPrint(job));
  S.current = job;
}

// -- queue and gallery ------------------------------------------------------------------------------
async function refreshJobs() {
  try { S.jobs = await api("/api/jobs"); } catch (e) { return; }
  renderQueue();
  renderGallery();
  const active = S.jobs.some((j) => j.state === "queued" || j.state === "running");
  clearTimeout(S.pollTimer);
  S.pollTimer = setTimeout(refreshJobs, active ? 1500 : 10000);
}

function renderQueue() {
  const live = S.jobs.filter((j) => j.state === "queued" || j.state === "running")
    .sort((a, b) => (a.state === "running" ? -1 : b.state === "running" ? 1 : a.position - b.position));
  $("#queue-card").hidden = live.length === 0;
  $("#queue").replaceChildren(...live.map((j) => h("li", { class: "qitem" + (j.id === S.watching ? " watching" : ""), dataset: { job: j.id } },
    h("span", { class: "badge", dataset: { state: j.state }, text: j.state === "running" ? "running" : `#${j.position}` }),
    h("button", { type: "button", class: "link", text: `${j.title} · ${summary(j)}`, onclick: () => watch(j.id, j) }),
    h("span", { class: "muted small", text: j.state === "running" && j.total ? `${Math.round(100 * j.iteration / j.total)}%` : "" }),
    h("button", { type: "button", class: "secondary small", text: "Cancel", onclick: () => cancelJob(j.id) }))));
}

function summary(j) {
  const bits = [];
  for (const [k, v] of Object.entries(j.params)) bits.push(`${k.replace(/_/g, " ")} ${v}`);
  return bits.slice(0, 4).join(", ") || "defaults";
}

function renderGallery() {
  const done = S.jobs.filter((j) => ["done", "failed", "cancelled", "interrupted"].includes(j.state)
    && (j.results.length || j.state === "failed" || j.state === "interrupted"));
  $("#gallery-empty").hidden = done.length > 0;
  const key = JSON.stringify(done.map((j) => [j.id, j.state, j.results.length, S.info.images.length]));
  if (key === S.galleryKey) return;  // unchanged: keep the DOM (no image reloads)
  S.galleryKey = key;
  $("#gallery").replaceChildren(...done.map((j) => {
    const thumb = j.results.length
      ? h("button", { type: "button", class: "thumb", onclick: () => watch(j.id, j), title: "show" },
        h("img", { src: `${j.results[0].url}?thumb=1`, alt: j.title, loading: "lazy" }))
      : h("div", { class: "thumb failed", text: j.state });
    const params = Object.entries(j.params);
    const inputs = Object.entries(j.inputs).filter(([, v]) => v !== null && !(Array.isArray(v) && !v.length))
      .map(([k, v]) => [k, [].concat(v).map(imageName).join(", ")]);
    return h("article", { class: "gitem", dataset: { job: j.id, state: j.state } }, thumb,
      h("div", { class: "gbody" },
        h("div", { class: "gtitle" }, h("b", { text: j.title }), h("span", { class: "badge", dataset: { state: j.state },
          text: j.state === "cancelled" ? "partial" : j.state })),
        j.results.length ? h("div", { class: "muted small", text: `${j.results[0].width}×${j.results[0].height} · ${fmtTime(j.elapsed)}` }) : null,
        j.error ? h("div", { class: "error small", text: j.error }) : null,
        h("dl", { class: "params" }, ...[...inputs, ...params].map(([k, v]) => [h("dt", { text: k.replace(/_/g, " ") }), h("dd", { text: String(v) })])),
        h("div", { class: "gactions" },
          j.results.length ? h("a", { class: "button secondary small", href: `${j.results[0].url}?download=1`, download: "", text: "Download" }) : null,
          j.state === "interrupted" ? h("button", { type: "button", class: "small resubmit", text: "Resubmit", onclick: () => resubmit(j.id) }) : null,
          typeof printButton === "function" ? printButton(j) : null,
          h("button", { type: "button", class: "secondary small rerun", text: "Rerun with changes", onclick: () => rerun(j) }))));
  }));
}

function imageName(id) {
  const img = S.info.images.find((x) => x.id === id);
  if (img) return img.name;
  return String(id).replace(/^bundled:(.*)\.jpg$/, "$1").replace(/^upload:(\w{6}).*/, "upload $1");
}

function rerun(job) {
  selectTechnique(job.technique, job);
  $(".form-card").scrollIntoView({ behavior: "smooth", block: "start" });
}

async function resubmit(id) {
  try { const j = await api(`/api/jobs/${id}/resubmit`, { method: "POST" }); watch(j.id, j); }
  catch (e) { showFormError(e.message); }
  refreshJobs();
}

async function cancelJob(id) {
  try { const j = await api(`/api/jobs/${id}/cancel`, { method: "POST" }); if (id === S.watching) showJob(j); }
  catch (e) { /* already finished */ }
  refreshJobs();
}

// == regions (issue 11): paint a mask, or regions with a style each, over the photo ====================
// The painting lives in one canvas at the photo's preview size; on Run it is uploaded as black-and-white
// PNGs (one for a mask; one per colour for regions, each colour's style image going with it) and the job's
// mask / style_masks / styles inputs point at the uploads. The server stretches them over the photo.
const REGION_COLORS = ["#ff3b30", "#2f7bff", "#2fc26b", "#ffc400"];
const RG = { mode: "off", size: 28, color: 0, eraser: false, undo: [], painted: false, photo: null,
  canvas: null, ctx: null, styles: {}, node: null, reuse: false };

function regionsPhotoId() {
  const first = S.tech.inputs.find((i) => i.kind === "image");
  return first ? (S.picks[first.name] || [])[0] : null;
}

function regionsModes() {
  const modes = [["off", "off: everywhere"], ["mask", "mask: paint where it goes"]];
  if (S.tech.inputs.some((i) => i.name === "style_masks")) modes.push(["styles", "regions: a style per colour"]);
  if (RG.reuse) modes.push(["reuse", "as in the earlier job"]);
  return modes;
}

function regionsPanel() {
  const photo = regionsPhotoId();
  const maskPicked = S.tech.inputs.some((i) => i.kind === "mask" && (S.picks[i.name] || []).length);
  if (maskPicked && !RG.painted && RG.mode === "off") { RG.reuse = true; RG.mode = "reuse"; }
  if (!maskPicked && RG.mode === "reuse") { RG.reuse = false; RG.mode = "off"; }
  if (RG.mode === "styles" && !S.tech.inputs.some((i) => i.name === "style_masks")) RG.mode = "mask";
  if (!RG.node) RG.node = regionsBuild();
  if (photo !== RG.photo) regionsLoadPhoto(photo);
  regionsRefresh();
  return RG.node;
}

function regionsBuild() {
  const canvas = h("canvas", { class: "regions-canvas", width: 8, height: 8, "aria-label": "paint the regions" });
  RG.canvas = canvas;
  RG.ctx = canvas.getContext("2d", { willReadFrequently: true });
  let drawing = false, last = null;
  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
  };
  const dab = (from, to) => {
    const ctx = RG.ctx;
    ctx.globalCompositeOperation = RG.eraser ? "destination-out" : "source-over";
    ctx.strokeStyle = ctx.fillStyle = RG.mode === "mask" ? REGION_COLORS[0] : REGION_COLORS[RG.color];
    ctx.lineWidth = RG.size * canvas.width / Math.max(1, canvas.getBoundingClientRect().width);
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(...from);
    ctx.lineTo(...to);
    ctx.stroke();
  };
  canvas.addEventListener("pointerdown", (e) => {
    if (RG.mode !== "mask" && RG.mode !== "styles") return;
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    RG.undo.push(RG.ctx.getImageData(0, 0, canvas.width, canvas.height));
    if (RG.undo.length > 30) RG.undo.shift();
    drawing = true;
    last = at(e);
    dab(last, last);
    RG.painted = true;
    regionsRefresh();
  });
  canvas.addEventListener("pointermove", (e) => { if (drawing) { const p = at(e); dab(last, p); last = p; } });
  const stop = () => { drawing = false; regionsRefresh(); };
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);
  const mode = h("select", { class: "regions-mode", "aria-label": "regions", onchange: (e) => {
    RG.mode = e.target.value;
    if (RG.mode !== "reuse" && RG.reuse) { RG.reuse = false; for (const i of S.tech.inputs) if (i.kind === "mask") S.picks[i.name] = []; }
    regionsRefresh();
  } });
  const size = h("input", { type: "range", class: "regions-size", min: 4, max: 120, value: RG.size, "aria-label": "brush size",
    oninput: (e) => { RG.size = Number(e.target.value); } });
  const eraser = h("button", { type: "button", class: "secondary small regions-eraser", text: "Eraser",
    onclick: () => { RG.eraser = !RG.eraser; regionsRefresh(); } });
  const undo = h("button", { type: "button", class: "secondary small regions-undo", text: "Undo", onclick: () => {
    const prev = RG.undo.pop();
    if (prev) RG.ctx.putImageData(prev, 0, 0);
    RG.painted = regionsColorsUsed().length > 0;
    regionsRefresh();
  } });
  const clear = h("button", { type: "button", class: "secondary small regions-clear", text: "Clear", onclick: () => {
    RG.undo.push(RG.ctx.getImageData(0, 0, canvas.width, canvas.height));
    RG.ctx.clearRect(0, 0, canvas.width, canvas.height);
    RG.painted = false;
    regionsRefresh();
  } });
  const swatches = h("div", { class: "regions-swatches" }, ...REGION_COLORS.map((c, i) => h("button", {
    type: "button", class: "regions-swatch", style: `background:${c}`, "aria-label": `colour ${i + 1}`,
    dataset: { color: String(i) }, onclick: () => { RG.color = i; RG.eraser = false; regionsRefresh(); } })));
  return h("fieldset", { class: "picker regions", dataset: { input: "regions" } },
    h("legend", {}, "Regions", h("span", { class: "muted small", text: " optional: paint where it goes" })),
    mode,
    h("div", { class: "regions-tools" }, h("label", { class: "small" }, "brush ", size), swatches, eraser, undo, clear),
    h("div", { class: "regions-wrap" }, h("img", { class: "regions-photo", alt: "" }), canvas),
    h("div", { class: "regions-styles" }),
    h("p", { class: "muted small regions-hint" }));
}

function regionsLoadPhoto(id) {
  RG.photo = id;
  const img = $(".regions-photo", RG.node);
  RG.ctx.clearRect(0, 0, RG.canvas.width, RG.canvas.height);
  RG.undo = [];
  RG.painted = false;
  if (!id) { img.removeAttribute("src"); return; }
  img.onload = () => {  // the canvas takes the preview's own size (up to 512 px)
    RG.canvas.width = img.naturalWidth;
    RG.canvas.height = img.naturalHeight;
    RG.node.dataset.ready = "1";
  };
  RG.node.dataset.ready = "0";
  img.src = `/api/images/${encodeURIComponent(id)}`;
}

function regionsColorsUsed() {
  if (!RG.canvas || !RG.canvas.width) return [];
  const d = RG.ctx.getImageData(0, 0, RG.canvas.width, RG.canvas.height).data;
  const rgb = REGION_COLORS.map((c) => [1, 3, 5].map((k) => parseInt(c.slice(k, k + 2), 16)));
  const used = new Set();
  for (let p = 0; p < d.length; p += 4) {
    if (d[p + 3] < 128) continue;
    used.add(regionsNearest(rgb, d[p], d[p + 1], d[p + 2]));
    if (used.size === rgb.length) break;
  }
  return [...used].sort();
}

function regionsNearest(rgb, r, g, b) {
  let best = 0, bd = Infinity;
  rgb.forEach(([R, G, B], i) => { const dd = (R - r) ** 2 + (G - g) ** 2 + (B - b) ** 2; if (dd < bd) { bd = dd; best = i; } });
  return best;
}

function regionsRefresh() {
  const n = RG.node;
  if (!n) return;
  const modeSel = $(".regions-mode", n);
  modeSel.replaceChildren(...regionsModes().map(([v, t]) => h("option", { value: v, text: t, selected: v === RG.mode })));
  const painting = RG.mode === "mask" || RG.mode === "styles";
  n.dataset.mode = RG.mode;
  $(".regions-tools", n).hidden = !painting;
  $(".regions-wrap", n).hidden = !painting;
  $(".regions-swatches", n).hidden = RG.mode !== "styles";
  $(".regions-eraser", n).classList.toggle("on", RG.eraser);
  for (const b of n.querySelectorAll(".regions-swatch")) b.classList.toggle("on", Number(b.dataset.color) === RG.color && !RG.eraser);
  const box = $(".regions-styles", n);
  box.replaceChildren();
  if (RG.mode === "styles") {
    const picked = S.picks.styles || [];
    for (const i of regionsColorsUsed()) {
      if (!RG.styles[i]) RG.styles[i] = picked[i] || picked[0] || "bundled:swirls.jpg";
      box.append(h("label", { class: "regions-style small" }, h("span", { class: "regions-dot", style: `background:${REGION_COLORS[i]}` }),
        " style ", h("select", { dataset: { color: String(i) }, onchange: (e) => { RG.styles[i] = e.target.value; } },
          ...S.info.images.map((img) => h("option", { value: img.id, text: img.name, selected: img.id === RG.styles[i] })))));
    }
  }
  const hint = { off: "The whole picture is painted.", mask: "Paint where the effect goes; the rest keeps the photo.",
    styles: "Paint each region in a colour, then pick its style.", reuse: "The earlier job's regions are used; pick a mode to paint new ones." };
  $(".regions-hint", n).textContent = hint[RG.mode] || "";
}

async function regionsUpload(keep) {  // keep(r, g, b, a) -> painted here? ; a black-and-white PNG, uploaded
  const w = RG.canvas.width, ht = RG.canvas.height;
  const src = RG.ctx.getImageData(0, 0, w, ht).data;
  const out = document.createElement("canvas");
  out.width = w; out.height = ht;
  const octx = out.getContext("2d");
  const img = octx.createImageData(w, ht);
  for (let p = 0; p < src.length; p += 4) {
    const v = keep(src[p], src[p + 1], src[p + 2], src[p + 3]) ? 255 : 0;
    img.data[p] = img.data[p + 1] = img.data[p + 2] = v;
    img.data[p + 3] = 255;
  }
  octx.putImageData(img, 0, 0);
  const blob = await new Promise((resolve) => out.toBlob(resolve, "image/png"));
  const fd = new FormData();
  fd.append("file", blob, "region.png");
  const up = await api("/api/uploads", { method: "POST", body: fd });
  return up.id;
}

async function regionsBeforeSubmit() {
  if (!RG.node || !S.tech.inputs.some((i) => i.kind === "mask")) return;
  if (RG.mode === "reuse") return;
  for (const i of S.tech.inputs) if (i.kind === "mask") S.picks[i.name] = [];
  if (RG.mode === "off") return;
  const used = regionsColorsUsed();
  if (!used.length) throw new Error("paint a region first, or set regions to off");
  if (RG.mode === "mask") {
    S.picks.mask = [await regionsUpload((r, g, b, a) => a >= 128)];
    return;
  }
  const rgb = REGION_COLORS.map((c) => [1, 3, 5].map((k) => parseInt(c.slice(k, k + 2), 16)));
  const ids = [], styles = [];
  for (const i of used) {
    ids.push(await regionsUpload((r, g, b, a) => a >= 128 && regionsNearest(rgb, r, g, b) === i));
    styles.push(RG.styles[i] || (S.picks.styles || [])[0] || "bundled:swirls.jpg");
  }
  S.picks.style_masks = ids;
  S.picks.styles = styles;
}
// == end of regions ===================================================================================

// -- start ------------------------------------------------------------------------------------------
async function start() {
  S.info = await api("/api/info");
  renderTabs();
  selectTechnique(S.info.techniques[0].name);
  $("#job-form").addEventListener("submit", submit);
  $("#cancel").addEventListener("click", () => S.watching && cancelJob(S.watching));
  $("#rerun-current").addEventListener("click", () => S.current && rerun(S.current));
  await refreshJobs();
  // Reopened page: follow the job that is running (or next) instead of showing nothing.
  const live = S.jobs.find((j) => j.state === "running") || S.jobs.find((j) => j.state === "queued");
  if (live && !S.watching) watch(live.id, live);
  document.body.dataset.ready = "1";
}

start().catch((e) => {
  document.body.prepend(h("p", { class: "error banner", text: `The studio could not start: ${e.message}` }));
});
