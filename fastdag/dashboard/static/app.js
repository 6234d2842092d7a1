// The page: the list of runs, the current run (live or replayed at time t),
// the controls, the details of the selected task. Data comes from the JSON
// API; the live channel (/api/live, server-sent events) says which runs
// changed, and the page then fetches only what is new. Task data is shown
// with textContent only: the page never interprets it as HTML.

import { AggregatedRun, Run, STATE_NAMES, humanBytes, humanSeconds } from "./model.js";
import { STATE_COLOURS, dagPoint, dagTaskAt, drawDag, drawDagAggregated, drawMemory,
         drawStream, drawStreamAggregated, functionColour, streamTaskAt } from "./draw.js";

const $ = (id) => document.getElementById(id);
const ui = {
  run: null,        // Run being shown
  runId: null,
  follow: true,     // show the newest run as it arrives
  live: true,       // t follows the run (else: replay at ui.t)
  t: Infinity,
  playing: false,
  selected: -1,
  lineage: null,
  versions: {},
  summaries: new Map(), // run id -> its entry in /api/runs
  fetching: false,
};

// A report saved by `fastdag report --html` carries its one run in the page.
const EMBEDDED = document.getElementById("fastdag-run");
let embedded = null;

async function getJSON(url) {
  if (EMBEDDED) {
    embedded = embedded || JSON.parse(EMBEDDED.textContent);
    return url.startsWith("api/runs/") ? embedded : { runs: [embedded.run] };
  }
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

// -- runs ----------------------------------------------------------------
async function refreshRuns() {
  const { runs } = await getJSON("api/runs");
  ui.summaries = new Map(runs.map((r) => [r.id, r]));
  const list = $("runs");
  list.replaceChildren(...runs.slice().reverse().map((r) => {
    const button = el("button", r.name || r.id);
    button.dataset.run = r.id;
    if (r.id === ui.runId) button.className = "current";
    button.append(el("span", `${r.executor} · ${r.state} · ${r.done}/${r.tasks} tasks`, "sub"));
    button.addEventListener("click", () => { ui.follow = false; openRun(r.id); });
    const item = el("li");
    item.append(button);
    return item;
  }));
  if (ui.follow && runs.length && runs[runs.length - 1].id !== ui.runId) {
    await openRun(runs[runs.length - 1].id);
  }
}

async function openRun(id) {
  const big = ui.summaries.get(id)?.aggregate;
  const detail = await getJSON(`api/runs/${encodeURIComponent(id)}?` +
                               (big ? "aggregate=1" : "packed=1"));
  ui.run = big ? new AggregatedRun(detail) : new Run(detail);
  ui.runId = id;
  ui.selected = -1;
  ui.lineage = null;
  ui.live = ui.run.summary.state === "running";
  ui.t = ui.live ? Infinity : ui.run.t1;
  document.querySelectorAll("#runs button").forEach((b) => {
    b.className = b.dataset.run === id ? "current" : "";
  });
  showDetails();
  legend();
  redraw();
}

async function pullRun() {
  if (!ui.run || ui.fetching) return;
  ui.fetching = true;
  try {
    const run = ui.run;
    const detail = await getJSON(`api/runs/${encodeURIComponent(ui.runId)}` + (run.aggregated
      ? "?aggregate=1"
      : `?packed=1&rows_from=${run.rowCount}&events_from=${run.events.length}`));
    if (run === ui.run) {
      run.merge(detail);
      if (run.summary.state !== "running" && ui.live) { ui.live = false; ui.t = run.t1; }
      showDetails();
      redraw();
    }
  } finally {
    ui.fetching = false;
  }
}

function listen() {
  const source = new EventSource("api/live");
  source.onmessage = async (message) => {
    const { runs } = JSON.parse(message.data);
    const changed = Object.keys(runs).some((id) => runs[id] !== ui.versions[id]) ||
                    Object.keys(ui.versions).length !== Object.keys(runs).length;
    const mine = ui.runId && runs[ui.runId] !== ui.versions[ui.runId];
    ui.versions = runs;
    if (changed) await refreshRuns();
    if (mine) await pullRun();
  };
}

// -- time and drawing -----------------------------------------------------
function now() {
  return ui.live ? Infinity : ui.t;
}

let frame = 0;
function redraw() {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    paint();
  });
}

function paint() {
  const run = ui.run;
  if (!run) return;
  const t = now();
  if (run.aggregated) {
    drawDagAggregated($("dag"), run, t);
    drawStreamAggregated($("stream"), run, t);
  } else {
    drawDag($("dag"), run, t, ui.lineage);
    drawStream($("stream"), run, t, ui.lineage);
  }
  drawMemory($("memory"), run, t);
  const counts = run.counts(t);
  const done = counts[3] + counts[5];
  const s = run.summary;
  $("title").textContent = `${s.name || s.id} · ${s.executor} · ${run.n} tasks on ` +
                           `${run.workers.length} workers`;
  const state = ui.live ? s.state : (t >= run.t1 ? s.state : "replay");
  $("status").textContent = `${state}: ${done}/${run.n} done, ${counts[2]} running, ` +
                            `${counts[4]} failed`;
  $("status").dataset.done = String(done);
  $("status").dataset.state = state;
  const elapsed = Math.min(isFinite(t) ? t : run.t1, run.t1) - run.t0;
  $("clock").textContent = `t = ${humanSeconds(Math.max(0, elapsed))} of ` +
                           `${humanSeconds(run.t1 - run.t0)}`;
  $("scrub").value = String(Math.round(1000 * Math.max(0, elapsed) /
                                       Math.max(1e-9, run.t1 - run.t0)));
  $("play").textContent = ui.playing ? "Pause" : "Play";
  progress(t);
  if (ui.selected >= 0) showDetails();
}

function progress(t) {
  const run = ui.run;
  const bars = run.progress(t).map(([f, done, n]) => {
    const bar = el("div", undefined, "bar");
    const track = el("div", undefined, "track");
    const fill = el("div", undefined, "fill");
    fill.style.width = `${(100 * done) / n}%`;
    fill.style.background = functionColour(run.fnames.indexOf(f));
    track.append(fill);
    bar.append(el("span", f, "name"), track, el("span", `${done}/${n}`, "count"));
    return bar;
  });
  $("progress").replaceChildren(...bars, el("p", moved(t), "moved"));
}

// Bytes that left their worker by time t, per medium (DataMoved events).
function moved(t) {
  if (ui.run.aggregated) return `Data moved: ${humanBytes(ui.run.summary.bytes_moved)} (whole run)`;
  const by = new Map();
  for (const m of ui.run.moves) {
    if (m.time > t) continue;
    const [count, bytes] = by.get(m.via) || [0, 0];
    by.set(m.via, [count + 1, bytes + m.nbytes]);
  }
  const names = { shm: "shared memory", spill: "spilled to disk", redis: "Redis" };
  const parts = [...by].map(([via, [count, bytes]]) =>
    `${humanBytes(bytes)} in ${count} results to ${names[via] || via}`);
  return `Data moved: ${parts.length ? parts.join(", ") : "none (results stayed where they were made)"}`;
}

function legend() {
  $("legend").replaceChildren(...STATE_NAMES.map((name, k) => {
    const item = el("li");
    const swatch = el("i");
    swatch.style.background = STATE_COLOURS[k];
    item.append(swatch, el("span", name));
    return item;
  }));
}

// -- replay ---------------------------------------------------------------
let lastTick = 0;
function tick(stamp) {
  if (!ui.playing || !ui.run) return;
  const speed = Number($("speed").value);
  const dt = lastTick ? (stamp - lastTick) / 1000 : 0;
  lastTick = stamp;
  ui.t = Math.min(ui.run.t1, ui.t + dt * speed);
  if (ui.t >= ui.run.t1) ui.playing = false;
  paint();
  if (ui.playing) requestAnimationFrame(tick);
}

function play() {
  if (!ui.run) return;
  if (ui.playing) { ui.playing = false; redraw(); return; }
  ui.live = false;
  if (!isFinite(ui.t) || ui.t >= ui.run.t1) ui.t = ui.run.t0;
  ui.playing = true;
  lastTick = 0;
  requestAnimationFrame(tick);
}

function scrubTo(fraction) {
  if (!ui.run) return;
  ui.live = false;
  ui.playing = false;
  ui.t = ui.run.t0 + fraction * (ui.run.t1 - ui.run.t0);
  paint();
}

// -- selection --------------------------------------------------------------
function select(i) {
  ui.selected = i;
  ui.lineage = i >= 0 ? ui.run.lineage(i) : null;
  showDetails();
  redraw();
}

function showDetails() {
  const run = ui.run, i = ui.selected;
  const fields = $("fields"), tb = $("traceback");
  $("hint").hidden = i >= 0;
  $("hint").textContent = run && run.aggregated
    ? `${run.n} tasks: too many to draw one by one, shown by level and function.`
    : "Click a task in the graph or the stream: its ancestors and descendants light up.";
  if (!run || i < 0 || run.aggregated) { fields.replaceChildren(); tb.hidden = true; return; }
  const k = run.row[i], r = run.rows, fail = run.failures[String(i)];
  const marks = ui.lineage || run.lineage(i);
  let ancestors = 0, descendants = 0;
  for (let j = 0; j < run.n; j++) {
    if (marks[j] === 1) ancestors++;
    else if (marks[j] === 3) descendants++;
  }
  const rows = [
    ["task", run.names[i]], ["function", run.functions[i]],
    ["state", STATE_NAMES[run.stateAt(i, now())]],
    ["worker", k >= 0 ? run.workers[r.worker[k]] : fail ? fail.worker : "-"],
    ["started", k >= 0 ? `+${humanSeconds(r.start[k] - run.t0)}` : "-"],
    ["duration", k >= 0 ? humanSeconds(r.end[k] - r.start[k]) : "-"],
    ["input", k >= 0 ? humanBytes(r.input_bytes[k]) : "-"],
    ["output", k >= 0 ? humanBytes(r.output_bytes[k]) : "-"],
    ["retries", k >= 0 ? String(r.attempts[k] - 1) : "-"],
    ["inputs", String(run.deps[i].length)],
    ["lineage", `${ancestors} upstream, ${descendants} downstream`],
  ];
  if (fail) rows.push(["error", fail.error]);
  fields.replaceChildren(...rows.flatMap(([name, value]) => [el("dt", name), el("dd", value)]));
  tb.hidden = !fail;
  tb.textContent = fail ? fail.traceback : "";
}

function clickOn(canvas, find) {
  canvas.addEventListener("click", (e) => {
    if (!ui.run || ui.run.aggregated) return;
    const box = canvas.getBoundingClientRect();
    select(find(canvas, ui.run, e.clientX - box.left, e.clientY - box.top));
  });
}

// For tests and scripts: where a task is drawn, and what the page shows.
window.fastdagDashboard = {
  taskPoint(i) {
    const canvas = $("dag"), box = canvas.getBoundingClientRect();
    const [x, y] = dagPoint(canvas, ui.run, i);
    return { x: box.left + x, y: box.top + y };
  },
  failures() { return ui.run ? ui.run.failures : {}; },
  findTask(name) { return ui.run ? ui.run.names.indexOf(name) : -1; },
  state() {
    if (!ui.run) return null;
    const counts = ui.run.counts(now());
    return { run: ui.runId, live: ui.live, n: ui.run.n, selected: ui.selected,
             aggregated: Boolean(ui.run.aggregated), memorySamples: ui.run.memory.length,
             counts: Object.fromEntries(STATE_NAMES.map((s, k) => [s, counts[k]])) };
  },
  paintMs() { const t = performance.now(); paint(); return performance.now() - t; },
};

function start() {
  $("play").addEventListener("click", play);
  $("scrub").addEventListener("input", (e) => scrubTo(Number(e.target.value) / 1000));
  $("live").addEventListener("click", () => {
    ui.follow = true; ui.playing = false;
    if (ui.run && ui.run.summary.state === "running") ui.live = true; else if (ui.run) ui.t = ui.run.t1;
    refreshRuns();
    redraw();
  });
  clickOn($("dag"), dagTaskAt);
  clickOn($("stream"), streamTaskAt);
  window.addEventListener("resize", redraw);
  legend();
  refreshRuns().then(() => { if (!EMBEDDED) listen(); });
}

start();
