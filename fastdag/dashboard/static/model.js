// One run as the page holds it: the graph, task rows as typed arrays, the
// state of every task at a time t, the layout by level and lineage.
// Nothing here touches the DOM; app.js and draw.js do.

export const STATE = { waiting: 0, ready: 1, running: 2, done: 3, failed: 4, retried: 5 };
export const STATE_NAMES = ["waiting", "ready", "running", "done", "failed", "retried"];

export class Run {
  constructor(detail) {
    const g = detail.graph;
    this.names = g.names;
    this.functions = g.functions;
    this.deps = g.deps;
    this.n = g.names.length;
    this.dependents = Array.from({ length: this.n }, () => []);
    this.deps.forEach((ds, i) => ds.forEach((d) => this.dependents[d].push(i)));
    this.fnames = [...new Set(this.functions)];
    const fid = new Map(this.fnames.map((f, k) => [f, k]));
    this.fn = Int32Array.from(this.functions, (f) => fid.get(f));
    this.rows = { task: [], worker: [], start: [], end: [], input_bytes: [], output_bytes: [],
                  attempts: [], fetch_s: [], store_s: [], ready: [] };
    this.events = [];
    this.failures = {};
    this.layout();
    this.merge(detail);
  }

  merge(detail) {
    this.summary = detail.run;
    this.workers = detail.workers;
    this.memory = detail.memory || [];
    for (const [k, col] of Object.entries(this.rows)) {
      const add = unpack(detail.tasks[k]);
      for (let j = 0; j < add.length; j++) col.push(add[j]);
    }
    for (const e of detail.events.items) this.events.push(e);
    Object.assign(this.failures, detail.failures);
    this.derive();
  }

  get rowCount() { return this.rows.task.length; }

  // Per task: its row, start, end, ready time; the run's time span.
  derive() {
    const n = this.n, r = this.rows;
    this.start = new Float64Array(n).fill(Infinity);
    this.end = new Float64Array(n).fill(Infinity);
    this.row = new Int32Array(n).fill(-1);
    for (let k = 0; k < r.task.length; k++) {
      const i = r.task[k];
      this.row[i] = k; this.start[i] = r.start[k]; this.end[i] = r.end[k];
    }
    this.failedAt = new Float64Array(n).fill(Infinity);
    for (const [i, f] of Object.entries(this.failures)) {
      this.failedAt[+i] = f.time;
      if (f.worker && !this.workers.includes(f.worker)) this.workers.push(f.worker);
    }
    const t0 = this.summary.start;
    this.readyAt = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let t = t0;
      for (const d of this.deps[i]) t = Math.max(t, this.end[d]);
      this.readyAt[i] = t;
    }
    this.moves = this.events.filter((e) => e.type === "DataMoved");
    let last = t0;
    for (const e of r.end) if (e > last) last = e;
    for (const e of this.events) if (e.time > last) last = e.time;
    this.t0 = t0;
    this.t1 = this.summary.end || last;
  }

  stateAt(i, t) {
    if (this.failedAt[i] <= t) return STATE.failed;
    if (this.end[i] <= t) {
      const k = this.row[i];
      return this.rows.attempts[k] > 1 ? STATE.retried : STATE.done;
    }
    if (this.start[i] <= t) return STATE.running;
    if (this.readyAt[i] <= t) return STATE.ready;
    return STATE.waiting;
  }

  counts(t) {
    const c = new Array(STATE_NAMES.length).fill(0);
    for (let i = 0; i < this.n; i++) c[this.stateAt(i, t)]++;
    return c;
  }

  // Per function: [name, done by t, total].
  progress(t) {
    const total = new Map(), done = new Map();
    for (let i = 0; i < this.n; i++) {
      const f = this.functions[i];
      total.set(f, (total.get(f) || 0) + 1);
      if (this.end[i] <= t) done.set(f, (done.get(f) || 0) + 1);
    }
    return [...total].map(([f, n]) => [f, done.get(f) || 0, n]);
  }

  // Levels: longest path from a task without inputs; order inside a level
  // by the mean position of the inputs, so a tree draws as a tree.
  layout() {
    const n = this.n, level = new Int32Array(n), indeg = new Int32Array(n);
    const order = [];
    for (let i = 0; i < n; i++) { indeg[i] = this.deps[i].length; if (!indeg[i]) order.push(i); }
    for (let h = 0; h < order.length; h++) {
      const i = order[h];
      for (const c of this.dependents[i]) {
        level[c] = Math.max(level[c], level[i] + 1);
        if (--indeg[c] === 0) order.push(c);
      }
    }
    let depth = 0;
    for (let i = 0; i < n; i++) if (level[i] + 1 > depth) depth = level[i] + 1;
    const byLevel = Array.from({ length: depth }, () => []);
    for (const i of order) byLevel[level[i]].push(i);
    const pos = new Float64Array(n);
    byLevel.forEach((ids, l) => {
      if (l > 0) {
        const key = new Map(ids.map((i) => [i, this.deps[i].reduce((s, d) => s + pos[d], 0) /
                                                Math.max(1, this.deps[i].length)]));
        ids.sort((a, b) => key.get(a) - key.get(b) || a - b);
      }
      ids.forEach((i, k) => { pos[i] = (k + 0.5) / ids.length; });
    });
    this.level = level; this.pos = pos; this.byLevel = byLevel; this.depth = depth;
  }

  // Per task: 1 ancestor of i, 3 descendant, 2 i itself, 0 neither.
  lineage(i) {
    const seen = new Uint8Array(this.n);
    const walk = (next, mark) => {
      const stack = [i];
      while (stack.length) {
        const j = stack.pop();
        for (const k of next[j]) if (!seen[k]) { seen[k] = mark; stack.push(k); }
      }
    };
    walk(this.deps, 1);
    walk(this.dependents, 3);
    seen[i] = 2;
    return seen;
  }
}

// A run too big to draw task by task, as the server summarised it
// (aggregate.py): per (level, function) how many tasks had started and
// ended by each time-bin edge; per worker and function the busy fraction
// of each bin.
export class AggregatedRun {
  constructor(detail) {
    this.aggregated = true;
    this.events = [];
    this.moves = [];
    this.rowCount = 0;
    this.merge(detail);
  }

  merge(detail) {
    this.summary = detail.run;
    this.memory = detail.memory || [];
    this.n = detail.run.tasks;
    this.workers = detail.workers;
    this.failures = detail.failures;
    this.groups = detail.groups;
    this.lanes = detail.lanes;
    this.fnames = detail.functions;
    this.bins = detail.bins;
    this.depth = detail.depth;
    this.t0 = detail.t0;
    this.t1 = detail.t1;
    this.byLevel = Array.from({ length: this.depth }, () => []);
    for (const g of this.groups) this.byLevel[g.level].push(g);
  }

  edge(t) {
    if (!(t < this.t1)) return this.bins;
    return Math.max(0, Math.floor(((t - this.t0) / (this.t1 - this.t0)) * this.bins));
  }

  counts(t) {
    const k = this.edge(t), c = new Array(STATE_NAMES.length).fill(0);
    for (const g of this.groups) {
      c[STATE.done] += g.ended[k];
      c[STATE.running] += g.started[k] - g.ended[k];
    }
    c[STATE.failed] = Object.values(this.failures).filter((f) => f.time <= t).length;
    c[STATE.waiting] = this.n - c[STATE.done] - c[STATE.running] - c[STATE.failed];
    return c;
  }

  progress(t) {
    const k = this.edge(t), rows = new Map(this.fnames.map((f) => [f, [f, 0, 0]]));
    for (const g of this.groups) {
      const row = rows.get(g.function);
      row[1] += g.ended[k];
      row[2] += g.count;
    }
    return [...rows.values()];
  }
}

// A task column: a JSON array, or (?packed=1) base64 of little-endian float64s.
function unpack(column) {
  if (typeof column !== "string") return column;
  const text = atob(column), bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return new Float64Array(bytes.buffer);
}

export function humanBytes(n) {
  if (n == null) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let k = 0;
  while (n >= 1024 && k < units.length - 1) { n /= 1024; k++; }
  return `${k ? n.toFixed(1) : n} ${units[k]}`;
}

export function humanSeconds(s) {
  if (!isFinite(s)) return "-";
  if (s < 1e-3) return `${(s * 1e6).toFixed(0)} µs`;
  if (s < 1) return `${(s * 1e3).toFixed(1)} ms`;
  return `${s.toFixed(2)} s`;
}
