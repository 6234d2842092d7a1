// Canvas drawing of the graph by level and the task stream, and the inverse:
// which task is under a point. One fillRect per task, no DOM node per task,
// so 10,000 tasks draw in milliseconds.

import { humanBytes } from "./model.js";

export const STATE_COLOURS = ["#c9ced6", "#f2c14e", "#2f6fde", "#3fa34d", "#d64541", "#f08a24"];
const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#8c6bb1", "#76b7b2", "#edc948",
                 "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
export const functionColour = (k) => PALETTE[k % PALETTE.length];

const PAD = 14;

// Size the canvas's pixels to its CSS box; return a context in CSS pixels.
function fit(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { ctx, w, h };
}

// Levels top to bottom, tasks spread evenly across each level; a crowded
// level draws its tasks as thin bars, so 4,096 leaves still show colour.
function dagGeometry(run, w, h) {
  const rowH = run.depth > 1 ? (h - 2 * PAD) / (run.depth - 1) : 0;
  const height = Math.max(2, Math.min(10, rowH ? rowH * 0.6 : 10));
  const widths = run.byLevel.map((ids) => Math.max(1, Math.min(10, (w - 2 * PAD) / ids.length - 1)));
  return {
    x: (i) => PAD + run.pos[i] * (w - 2 * PAD),
    y: (i) => (run.depth > 1 ? PAD + run.level[i] * rowH : h / 2),
    width: (i) => widths[run.level[i]],
    height,
    size: height,
  };
}

export function drawDag(canvas, run, t, lineage) {
  const { ctx, w, h } = fit(canvas);
  const g = dagGeometry(run, w, h);
  const n = run.n;
  if (n <= 4000 || lineage) {
    ctx.lineWidth = 1;
    ctx.strokeStyle = n <= 4000 ? "rgba(80,90,100,0.25)" : "rgba(0,0,0,0)";
    ctx.beginPath();
    for (let i = 0; i < n; i++) {
      if (lineage && !lineage[i] && n > 4000) continue;
      for (const d of run.deps[i]) { ctx.moveTo(g.x(d), g.y(d)); ctx.lineTo(g.x(i), g.y(i)); }
    }
    ctx.stroke();
    if (lineage) {
      ctx.strokeStyle = "rgba(20,20,20,0.8)";
      ctx.beginPath();
      for (let i = 0; i < n; i++) {
        if (!lineage[i]) continue;
        for (const d of run.deps[i]) {
          if (lineage[d]) { ctx.moveTo(g.x(d), g.y(d)); ctx.lineTo(g.x(i), g.y(i)); }
        }
      }
      ctx.stroke();
    }
  }
  const hh = g.height / 2;
  let last = "";
  for (let i = 0; i < n; i++) {
    const colour = STATE_COLOURS[run.stateAt(i, t)];
    ctx.globalAlpha = lineage && !lineage[i] ? 0.2 : 1;
    if (colour !== last) { ctx.fillStyle = colour; last = colour; }
    const wi = g.width(i);
    ctx.fillRect(g.x(i) - wi / 2, g.y(i) - hh, wi, g.height);
  }
  ctx.globalAlpha = 1;
  if (lineage) {
    const sel = lineage.indexOf(2), wi = g.width(sel);
    ctx.strokeStyle = "#000"; ctx.lineWidth = 2;
    ctx.strokeRect(g.x(sel) - wi / 2 - 2, g.y(sel) - hh - 2, wi + 4, g.height + 4);
  }
}

// The task whose box is nearest to (px, py) in CSS pixels, or -1.
export function dagTaskAt(canvas, run, px, py) {
  const g = dagGeometry(run, canvas.clientWidth, canvas.clientHeight);
  let best = -1, bestD = Infinity;
  for (let i = 0; i < run.n; i++) {
    const d = Math.abs(g.x(i) - px) + Math.abs(g.y(i) - py);
    if (d < bestD) { bestD = d; best = i; }
  }
  return bestD <= Math.max(8, g.size) ? best : -1;
}

export function dagPoint(canvas, run, i) {
  const g = dagGeometry(run, canvas.clientWidth, canvas.clientHeight);
  return [g.x(i), g.y(i)];
}

function streamGeometry(run, w, h) {
  const lanes = Math.max(1, run.workers.length);
  const left = 90, laneH = (h - 2 * PAD) / lanes;
  const span = Math.max(1e-6, run.t1 - run.t0);
  return { left, laneH, x: (time) => left + ((time - run.t0) / span) * (w - left - PAD),
           lane: (k) => PAD + k * laneH };
}

export function drawStream(canvas, run, t, lineage) {
  const { ctx, w, h } = fit(canvas);
  const g = streamGeometry(run, w, h);
  const r = run.rows;
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#5b6570";
  run.workers.forEach((name, k) => {
    ctx.fillText(name.length > 14 ? "…" + name.slice(-13) : name, 2, g.lane(k) + g.laneH / 2 + 4,
                 g.left - 6);
  });
  const top = (k) => g.lane(r.worker[k]) + 2, height = Math.max(2, g.laneH - 4);
  startup(ctx, run, g, h);
  for (let k = 0; k < r.task.length; k++) {
    if (r.start[k] > t) continue;
    const i = r.task[k];
    ctx.globalAlpha = lineage && !lineage[i] ? 0.15 : 1;
    ctx.fillStyle = functionColour(run.fn[i]);
    const x0 = g.x(r.start[k]), x1 = g.x(Math.min(r.end[k], t));
    ctx.fillRect(x0, top(k), Math.max(1, x1 - x0), height);
  }
  ctx.globalAlpha = 1;
  ctx.fillStyle = "#111";
  const lanes = new Map(run.workers.map((name, k) => [name, k]));
  for (const m of run.moves) {
    if (m.time > t || !lanes.has(m.worker)) continue;
    ctx.fillRect(g.x(m.time) - 0.5, g.lane(lanes.get(m.worker)), 1, 4);
  }
  ctx.fillStyle = "#d64541";  // a failed task: a red mark where its worker gave up
  for (const [i, f] of Object.entries(run.failures)) {
    if (f.time > t || !lanes.has(f.worker)) continue;
    ctx.globalAlpha = lineage && !lineage[+i] ? 0.15 : 1;
    ctx.fillRect(g.x(f.time) - 3, g.lane(lanes.get(f.worker)) + 2, 6, height);
  }
  ctx.globalAlpha = 1;
  if (isFinite(t) && t < run.t1) {
    ctx.strokeStyle = "#d64541"; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(g.x(t), 0); ctx.lineTo(g.x(t), h); ctx.stroke();
  }
}

// Before the first task: the executor starting its workers (or the first
// batch being sent), labelled so, not left blank.
function startup(ctx, run, g, h) {
  let first = Infinity;
  for (const s of run.rows.start) if (s < first) first = s;
  if (!isFinite(first) || (first - run.t0) < 0.05 * (run.t1 - run.t0)) return;
  const x0 = g.x(run.t0), x1 = g.x(first);
  ctx.fillStyle = "#eef0f3";
  ctx.fillRect(x0, PAD, x1 - x0, h - 2 * PAD);
  ctx.fillStyle = "#7a848e";
  ctx.fillText("start-up: no task yet (workers starting, graph sent)", x0 + 4, PAD + 12, x1 - x0 - 8);
}

export function streamTaskAt(canvas, run, px, py) {
  const g = streamGeometry(run, canvas.clientWidth, canvas.clientHeight);
  const lane = Math.floor((py - PAD) / g.laneH);
  const r = run.rows;
  let best = -1, bestD = Infinity;
  for (let k = 0; k < r.task.length; k++) {
    if (r.worker[k] !== lane) continue;
    const x0 = g.x(r.start[k]), x1 = g.x(r.end[k]);
    const d = px < x0 ? x0 - px : px > x1 ? px - x1 : 0;
    if (d < bestD) { bestD = d; best = r.task[k]; }
  }
  return bestD <= 4 ? best : -1;
}

// -- a big run, by level and function (AggregatedRun) ---------------------

// One row per level; in it one box per function, as wide as its share of
// the level's tasks, filled green for the part done at t, blue running.
export function drawDagAggregated(canvas, run, t) {
  const { ctx, w, h } = fit(canvas);
  const rowH = (h - 2 * PAD) / Math.max(1, run.depth), k = run.edge(t);
  ctx.font = "11px system-ui, sans-serif";
  run.byLevel.forEach((groups, level) => {
    const total = groups.reduce((s, g) => s + g.count, 0);
    let x = PAD;
    const y = PAD + level * rowH, bh = Math.max(2, rowH * 0.7);
    for (const g of groups) {
      const bw = ((w - 2 * PAD) * g.count) / total;
      const done = g.ended[k] / g.count, running = (g.started[k] - g.ended[k]) / g.count;
      ctx.fillStyle = STATE_COLOURS[0];
      ctx.fillRect(x, y, bw - 1, bh);
      ctx.fillStyle = STATE_COLOURS[3];
      ctx.fillRect(x, y, (bw - 1) * done, bh);
      ctx.fillStyle = STATE_COLOURS[2];
      ctx.fillRect(x + (bw - 1) * done, y, (bw - 1) * running, bh);
      if (bw > 90 && bh >= 11) {
        ctx.fillStyle = "#1d232a";
        ctx.fillText(`${g.function} ×${g.count}`, x + 4, y + bh / 2 + 4, bw - 8);
      }
      x += bw;
    }
  });
}

// One lane per worker; per time bin, bars as tall as the busy fraction,
// stacked by function.
export function drawStreamAggregated(canvas, run, t) {
  const { ctx, w, h } = fit(canvas);
  const g = streamGeometry(run, w, h), k = run.edge(t);
  const bw = (w - g.left - PAD) / run.bins, laneH = g.laneH - 4;
  ctx.font = "11px system-ui, sans-serif";
  run.lanes.forEach((perFunction, lane) => {
    const name = run.workers[lane] || "";
    ctx.fillStyle = "#5b6570";
    ctx.fillText(name.length > 14 ? "…" + name.slice(-13) : name, 2,
                 g.lane(lane) + g.laneH / 2 + 4, g.left - 6);
    for (let b = 0; b < Math.min(k, run.bins); b++) {
      let y = g.lane(lane) + 2 + laneH;
      perFunction.forEach((busy, f) => {
        if (!busy[b]) return;
        ctx.fillStyle = functionColour(f);
        ctx.fillRect(g.left + b * bw, y - busy[b] * laneH, Math.max(1, bw), busy[b] * laneH);
        y -= busy[b] * laneH;
      });
    }
  });
}

// Resident memory of each worker over the run, up to t: one line per worker.
export function drawMemory(canvas, run, t) {
  const { ctx, w, h } = fit(canvas);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#7a848e";
  if (!run.memory.length) {
    ctx.fillText("no sample: a stored run, or a live one shorter than the 250 ms between samples",
                 PAD, h / 2, w - 2 * PAD);
    return;
  }
  let top = 1;
  for (const m of run.memory) top = Math.max(top, m[2]);
  const g = streamGeometry(run, w, h);
  const y = (v) => h - PAD - (v / top) * (h - 2 * PAD);
  ctx.fillText(humanBytes(top), 2, PAD + 4, g.left - 6);
  ctx.fillText("0", 2, h - PAD, g.left - 6);
  const lines = new Map();
  for (const m of run.memory) {
    if (m[0] > t) continue;
    if (!lines.has(m[1])) lines.set(m[1], []);
    lines.get(m[1]).push(m);
  }
  [...lines].forEach(([worker, points], k) => {
    ctx.strokeStyle = ctx.fillStyle = PALETTE[(k + 4) % PALETTE.length];
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    points.forEach(([time, , rss], j) => (j ? ctx.lineTo : ctx.moveTo).call(ctx, g.x(time), y(rss)));
    ctx.stroke();
    for (const [time, , rss] of points) ctx.fillRect(g.x(time) - 1.5, y(rss) - 1.5, 3, 3);
    const [time, , rss] = points[points.length - 1];  // the worker's name at its line's end
    ctx.fillText(worker.split(":").pop(), g.x(time) + 3, y(rss) + 4 + 11 * k);
  });
}
