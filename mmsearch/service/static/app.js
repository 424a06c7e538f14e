// The search page: builds a query from the form, calls the same API a program does, and shows
// the hits as cards with their photo, title, score and per-signal breakdown. No framework.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { photo: null, photoUrl: null, weights: {}, signals: [], blobs: [] };

function apiKey() {
  return $("key").value.trim() || localStorage.getItem("mmsearch-key") || "";
}

function headers(extra = {}) {
  const key = apiKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function call(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers || {}) });
  if (response.status === 401) {
    $("key-box").hidden = false;
  }
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    const error = body?.error || { status: response.status, message: response.statusText };
    throw error;
  }
  return body;
}

function showError(error) {
  const box = $("error");
  if (!error) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.hidden = false;
  const field = error.field ? ` (field: ${error.field})` : "";
  box.textContent = `${error.status || ""} ${error.message || error}${field}`.trim();
}

function fmt(value, digits = 3) {
  return value === null || value === undefined ? "-" : Number(value).toFixed(digits);
}

// ------------------------------------------------------------------ the form

function weightRow(signal) {
  const row = document.createElement("label");
  row.className = "weight auto";
  row.dataset.signal = signal.name;
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = signal.name;
  name.title = [signal.name, ...signal.aliases].join(", ");
  const slider = document.createElement("input");
  slider.type = "range";
  slider.min = "0";
  slider.max = "1";
  slider.step = "0.05";
  slider.value = "0.5";
  slider.setAttribute("aria-label", `weight of ${signal.name}`);
  const out = document.createElement("output");
  out.textContent = "auto";
  slider.addEventListener("input", () => {
    state.weights[signal.name] = Number(slider.value);
    row.classList.remove("auto");
    out.textContent = Number(slider.value).toFixed(2);
  });
  row.append(name, slider, out);
  return row;
}

function resetWeights() {
  state.weights = {};
  for (const row of $("weights").children) {
    row.classList.add("auto");
    row.querySelector("output").textContent = "auto";
  }
}

async function loadSignals() {
  try {
    const ready = await call("/readyz");
    $("status").textContent =
      `collection ${ready.collection}: ${ready.items} items, models ${ready.models.join(", ")}` +
      (ready.cf ? ", CF" : "");
  } catch (error) {
    $("status").textContent = `not ready: ${error.message || error}`;
  }
  try {
    const { signals } = await call("/signals");
    state.signals = signals;
    $("weights").replaceChildren(...signals.map(weightRow));
  } catch (error) {
    if (error.status !== 401) showError(error);
  }
}

function setPhoto(file) {
  if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
  state.photo = file || null;
  state.photoUrl = file ? URL.createObjectURL(file) : null;
  const img = $("query-photo");
  img.hidden = !file;
  $("clear-photo").hidden = !file;
  $("drop-hint").hidden = Boolean(file);
  if (file) img.src = state.photoUrl;
  else img.removeAttribute("src");
}

function filters() {
  // Expressions are separated by commas before a new field name: "price<20, color=red,blue".
  const text = $("filters").value.trim();
  if (!text) return null;
  return text.split(/,\s*(?=[A-Za-z_][\w.\-\[\]]*\s*(?:<=|>=|!=|=|<|>))/).map((s) => s.trim()).filter(Boolean);
}

function options() {
  const out = { limit: Number($("limit").value), fusion: $("fusion").value, explain: true };
  const flt = filters();
  if (flt) out.filter = flt;
  if (Object.keys(state.weights).length) out.weights = { ...state.weights };
  return out;
}

function history() {
  const ids = $("history").value.split(",").map((s) => s.trim()).filter(Boolean);
  return ids.length ? ids : null;
}

function searchQuery() {
  const query = options();
  for (const field of ["text", "user", "item"]) {
    const value = $(field).value.trim();
    if (value) query[field] = value;
  }
  if (history()) query.history = history();
  if ($("exclude-seen").checked) query.exclude_seen = true;
  return query;
}

async function runSearch(kind) {
  showError(null);
  const results = $("results");
  results.setAttribute("aria-busy", "true");
  try {
    let body;
    if (kind === "recommend") {
      const user = $("user").value.trim();
      if (!user && !history()) throw { message: "type a user id or a history to recommend for", field: "user" };
      const request = { ...options(), exclude_seen: true };
      if (user) request.user = user;
      if (history()) request.history = history();
      body = await call("/recommend", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request) });
    } else if (state.photo) {
      const form = new FormData();
      form.append("image", state.photo);
      form.append("query", JSON.stringify(searchQuery()));
      body = await call("/search", { method: "POST", body: form });
    } else {
      body = await call("/search", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(searchQuery()) });
    }
    if (apiKey()) localStorage.setItem("mmsearch-key", apiKey());
    render(body);
  } catch (error) {
    showError(error);
  } finally {
    results.removeAttribute("aria-busy");
  }
}

// ------------------------------------------------------------------ the results

async function photoFor(hit, img) {
  const images = hit.payload.images;
  const first = Array.isArray(images) ? images[0] : images;
  if (!first) {
    img.replaceWith(Object.assign(document.createElement("div"), { className: "photo none", textContent: "no photo" }));
    return;
  }
  if (/^https?:\/\//i.test(first)) {
    img.src = first;
    return;
  }
  try {
    // Fetched (not an <img src>) so the API key goes along when the server needs one.
    const response = await fetch(`/images/${encodeURIComponent(hit.id)}?n=0`, { headers: headers() });
    if (!response.ok) throw new Error(response.statusText);
    const url = URL.createObjectURL(await response.blob());
    state.blobs.push(url);
    img.src = url;
  } catch {
    img.replaceWith(Object.assign(document.createElement("div"), { className: "photo none", textContent: first }));
  }
}

function breakdown(hit) {
  // Five columns that fit a phone-wide card: the contribution cell carries its share as a bar.
  const table = document.createElement("table");
  table.className = "breakdown";
  table.innerHTML =
    "<thead><tr><th>signal</th><th title='raw score'>raw</th><th title='normalised score'>norm</th>" +
    "<th title='weight'>weight</th><th title='contribution to the score'>+</th></tr></thead>";
  const body = document.createElement("tbody");
  for (const [name, s] of Object.entries(hit.signals || {})) {
    const row = document.createElement("tr");
    const share = hit.score > 0 ? Math.max(0, Math.min(1, s.contribution / hit.score)) : 0;
    const cells = [name, fmt(s.raw), fmt(s.normalized, 2), fmt(s.weight, 2), fmt(s.contribution, 3)];
    for (const [i, text] of cells.entries()) {
      const cell = document.createElement("td");
      cell.textContent = text;
      if (i === 0) cell.title = s.raw === null ? `${name}: missing, its weight moved to the others` : name;
      row.append(cell);
    }
    const plus = row.lastChild;
    plus.className = "share";
    plus.style.setProperty("--share", `${(share * 100).toFixed(0)}%`);
    body.append(row);
  }
  table.append(body);
  return table;
}

function card(hit) {
  const el = document.createElement("article");
  el.className = "card";
  el.dataset.id = hit.id;
  const img = document.createElement("img");
  img.className = "photo";
  img.alt = hit.payload.title || hit.id;
  const head = document.createElement("div");
  head.className = "head";
  const title = document.createElement("span");
  title.className = "title";
  title.textContent = `#${hit.rank} ${hit.payload.title || hit.payload.name || hit.id}`;
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = fmt(hit.score, 4);
  head.append(title, score);
  const id = document.createElement("span");
  id.className = "id";
  id.textContent = hit.id;
  el.append(img, head, id, breakdown(hit));
  photoFor(hit, img);
  return el;
}

function render(body) {
  for (const url of state.blobs.splice(0)) URL.revokeObjectURL(url);
  const used = body.signals.map((s) => `${s.name} ${s.weight.toFixed(2)}`).join(", ");
  $("summary").textContent =
    `${body.results.length} results in ${body.took_ms.toFixed(0)} ms; fusion ${body.fusion} (${body.engine}), ` +
    `${body.candidates} candidates; signals: ${used}`;
  $("notes").replaceChildren(...body.notes.map((n) => Object.assign(document.createElement("li"), { textContent: n })));
  const results = $("results");
  results.replaceChildren(...body.results.map(card));
  if (!body.results.length) results.textContent = "no results";
}

// ------------------------------------------------------------------ wiring

document.addEventListener("DOMContentLoaded", () => {
  $("query").addEventListener("submit", (event) => {
    event.preventDefault();
    runSearch("search");
  });
  $("recommend").addEventListener("click", () => runSearch("recommend"));
  $("photo").addEventListener("change", (event) => setPhoto(event.target.files[0]));
  $("clear-photo").addEventListener("click", (event) => {
    event.preventDefault();
    $("photo").value = "";
    setPhoto(null);
  });
  $("reset-weights").addEventListener("click", resetWeights);
  const drop = $("drop");
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const name of ["dragleave", "drop"]) drop.addEventListener(name, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = [...event.dataTransfer.files].find((f) => f.type.startsWith("image/"));
    if (file) setPhoto(file);
  });
  $("key").addEventListener("change", () => {
    localStorage.setItem("mmsearch-key", apiKey());
    loadSignals();
  });
  loadSignals();
});
