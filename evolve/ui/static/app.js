/* The evolve dashboard: draws each page from the JSON routes under /api/ (see
   evolve/ui/server.py), in plain JS with hand-made SVG charts; nothing is loaded from
   outside this server. Pages follow a live run by polling /api/run/RUN/version. */
"use strict";
(function () {
  const body = document.body;
  const main = document.getElementById("main");
  const POLL = Number(body.dataset.poll) || 2000;
  const SVGNS = "http://www.w3.org/2000/svg";
  const WAITING = "The run's driver is writing its store; this page shows the run as soon as the store can be read.";
  // drawing order of the scatter: later kinds on top (failures never hide under the front)
  const KINDS = ["earlier", "discarded", "population", "front", "infeasible", "failed"];
  const KIND_LABEL = {
    earlier: "earlier generations", discarded: "evaluated, not kept", population: "population (rank > 0)",
    front: "front (rank 0)", infeasible: "infeasible", failed: "failed / timeout / invalid",
  };

  // --- small helpers -----------------------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "onclick" || k === "onchange" || k === "oninput") el[k] = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  function s(tag, attrs, text) {
    const el = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    if (text !== undefined) el.textContent = String(text);
    return el;
  }
  function fmt(v, digits) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "boolean") return v ? "yes" : "no";
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v)) return String(v);
    return Number(v.toPrecision(digits || 4)).toString();
  }
  // an axis tick: short enough for the margin (2e7, 1.25e5 rather than 20000000, 125000)
  function tick(v) {
    const a = Math.abs(v);
    if (a >= 1e5 || (a > 0 && a < 1e-3)) return Number(v.toPrecision(3)).toExponential().replace("e+", "e");
    return fmt(v);
  }
  function runUrl(run) { return "/run/" + encodeURIComponent(run); }
  function indUrl(run, ind) { return runUrl(run) + "/individual/" + encodeURIComponent(ind); }
  function api(path) { return "/api" + path; }
  async function getJSON(url) {
    const r = await fetch(url, { cache: "no-store" });
    let data = null;
    try { data = await r.json(); } catch (e) { data = { error: r.status + " " + r.statusText }; }
    if (!r.ok) {
      const err = new Error((data && data.error) || r.statusText);
      err.status = r.status;
      err.busy = Boolean(data && data.busy);
      throw err;
    }
    return data;
  }
  function setLive(text, cls) {
    const el = document.getElementById("live");
    el.textContent = text || "";
    el.className = cls || "";
  }
  function crumbs(...parts) {
    const el = document.getElementById("crumbs");
    el.replaceChildren(...parts.map((p) => h("span", {}, " / ", p)));
  }
  function showError(err) {
    main.replaceChildren(h("p", { class: "error" }, err.message));
  }
  function objLabel(o) {
    return o.metric + (o.direction === "max" ? " (max ↑)" : " (min ↓)");
  }
  function statusBadge(status) { return h("span", { class: "badge " + status }, status); }
  function table(heads, rows, cls) {
    return h("table", { class: cls || "" }, h("thead", {}, h("tr", {}, heads.map((t) => h("th", {}, t)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))));
  }
  function section(title, ...children) {
    return h("section", {}, h("h2", {}, title), ...children);
  }
  // Poll `check` every POLL ms; it runs again only after the previous call settled.
  function every(check) {
    let stopped = false;
    async function loop() {
      if (stopped) return;
      try { await check(); } catch (e) { setLive(e.message, "warn"); }
      setTimeout(loop, POLL);
    }
    setTimeout(loop, POLL);
    return () => { stopped = true; };
  }

  // --- charts ------------------------------------------------------------------------------------
  function niceTicks(lo, hi, n) {
    const span = hi - lo;
    if (!(span > 0)) return [lo];
    const raw = span / n;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => span / st <= n) || 10 * mag;
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
    return out;
  }
  function extent(values) {
    let lo = Infinity, hi = -Infinity;
    for (const v of values) { if (v !== null && Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } }
    if (lo === Infinity) return [0, 1];
    if (lo === hi) { const d = Math.abs(lo) * 0.1 || 0.5; return [lo - d, hi + d]; }
    const pad = (hi - lo) * 0.06;
    return [lo - pad, hi + pad];
  }
  // A frame with axes: returns {svg, x(v), y(v)} mapping data to pixels.
  function axes(width, height, xdom, ydom, xlabel, ylabel, opts) {
    const m = { l: 66, r: 14, t: 12, b: 44 };
    const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart" });
    const pw = width - m.l - m.r, ph = height - m.t - m.b;
    const x = (v) => m.l + (v - xdom[0]) / (xdom[1] - xdom[0]) * pw;
    const y = (v) => m.t + ph - (v - ydom[0]) / (ydom[1] - ydom[0]) * ph;
    svg.append(s("rect", { x: m.l, y: m.t, width: pw, height: ph, class: "plot-bg" }));
    const xt = (opts && opts.integerX) ? niceTicks(xdom[0], xdom[1], 8).filter(Number.isInteger) : niceTicks(xdom[0], xdom[1], 7);
    for (const t of xt) {
      svg.append(s("line", { x1: x(t), x2: x(t), y1: m.t, y2: m.t + ph, class: "grid" }));
      svg.append(s("text", { x: x(t), y: m.t + ph + 16, class: "tick", "text-anchor": "middle" }, tick(t)));
    }
    for (const t of niceTicks(ydom[0], ydom[1], 6)) {
      svg.append(s("line", { x1: m.l, x2: m.l + pw, y1: y(t), y2: y(t), class: "grid" }));
      svg.append(s("text", { x: m.l - 6, y: y(t) + 4, class: "tick", "text-anchor": "end" }, tick(t)));
    }
    svg.append(s("text", { x: m.l + pw / 2, y: height - 8, class: "axis-label", "text-anchor": "middle" }, xlabel));
    svg.append(s("text", { x: 14, y: m.t + ph / 2, class: "axis-label", "text-anchor": "middle",
      transform: `rotate(-90 14 ${m.t + ph / 2})` }, ylabel));
    return { svg, x, y, m, pw, ph };
  }
  // Lines over generations: series [{name, ys, cls}], an optional band {lo, hi}, a marked x.
  function lineChart(title, xs, series, band, markX) {
    const all = series.flatMap((sr) => sr.ys).concat(band ? band.lo.concat(band.hi) : []);
    const xdom = xs.length > 1 ? [xs[0], xs[xs.length - 1]] : [xs[0] - 1, xs[0] + 1];
    const a = axes(460, 230, xdom, extent(all), "generation", title, { integerX: true });
    if (band) {
      const pts = xs.map((g, k) => [g, band.lo[k], band.hi[k]]).filter((p) => p[1] !== null && p[2] !== null);
      if (pts.length) {
        const d = pts.map((p, k) => (k ? "L" : "M") + a.x(p[0]) + "," + a.y(p[2])).join("")
          + pts.slice().reverse().map((p) => "L" + a.x(p[0]) + "," + a.y(p[1])).join("") + "Z";
        a.svg.append(s("path", { d, class: "band" }));
      }
    }
    if (markX !== undefined && markX !== null) {
      a.svg.append(s("line", { x1: a.x(markX), x2: a.x(markX), y1: a.m.t, y2: a.m.t + a.ph, class: "mark" }));
    }
    for (const sr of series) {
      const pts = xs.map((g, k) => [g, sr.ys[k]]).filter((p) => p[1] !== null && Number.isFinite(p[1]));
      if (!pts.length) continue;
      a.svg.append(s("path", { d: pts.map((p, k) => (k ? "L" : "M") + a.x(p[0]) + "," + a.y(p[1])).join(""),
        class: "line " + sr.cls }));
      if (pts.length <= 40) for (const p of pts) a.svg.append(s("circle", { cx: a.x(p[0]), cy: a.y(p[1]), r: 2.5, class: "dot " + sr.cls }));
    }
    const legend = h("div", { class: "legend" }, series.map((sr) => h("span", { class: "key " + sr.cls }, sr.name)),
      band ? h("span", { class: "key band" }, "min–max") : null);
    return h("figure", { class: "small" }, a.svg, legend);
  }

  // --- the runs list -------------------------------------------------------------------------------
  async function viewRuns() {
    crumbs();
    async function draw() {
      const data = await getJSON(api("/runs"));
      const rows = data.runs.map((r) => [
        h("a", { href: runUrl(r.name) }, r.name),
        h("span", { title: r.note || "" }, statusBadge(r.status || "?"), r.live ? h("span", { class: "muted" }, " (driver snapshot)") : null),
        r.species || "–",
        `${fmt(r.generations)} / ${fmt(r.planned)}`,
        r.evaluations === undefined ? "–" : `${r.evaluations}` + (r.failed ? ` (${r.failed} failed)` : ""),
        Object.entries(r.hypervolume || {}).map(([sp, v]) => (sp && Object.keys(r.hypervolume).length > 1 ? sp + " " : "") + fmt(v)).join(", ") || "–",
        fmt(r.best_validation),
        r.updated_at || "–",
      ]);
      main.replaceChildren(h("h1", {}, "Runs"),
        rows.length ? table(["run", "status", "species", "generations", "evaluations", "hypervolume",
          "best validation pass rate", "updated"], rows, "runs")
          : h("p", { class: "muted" }, "no runs here yet (start one with evolve run CONFIG)"));
      setLive("updated " + new Date().toLocaleTimeString(), "muted");
      body.dataset.ready = "1";
    }
    await draw();
    every(draw);
  }

  // --- a run ---------------------------------------------------------------------------------------
  async function viewRun() {
    const run = body.dataset.run;
    crumbs(h("a", { href: runUrl(run) }, run));
    const st = { species: null, x: 0, y: 1, gen: null, follow: true, earlier: false, data: null, points: null,
      selected: null, version: null };
    const q = new URLSearchParams(location.search);
    if (q.get("species")) st.species = q.get("species");
    const speciesQ = () => (st.species ? "?species=" + encodeURIComponent(st.species) : "");

    // the run and the generation shown, in one round trip (the latest one while following)
    async function load() {
      const latest = st.follow || st.gen === null;
      const [data, points] = await Promise.all([getJSON(api("/run/" + encodeURIComponent(run)) + speciesQ()),
        getJSON(pointsUrl(latest ? "latest" : st.gen))]);
      st.data = data;
      st.points = points;
      st.species = data.species;
      st.gen = points.generation;
      st.version = data.version;
      const gens = data.generations.map((g) => g.generation);
      const last = gens.length ? gens[gens.length - 1] : null;
      const n = data.objectives.length;
      if (st.x >= n) st.x = 0;
      if (st.y >= n) st.y = Math.min(1, n - 1);
      render();
      setLive(data.status === "running" ? `live · generation ${fmt(last)}` : data.status, data.status === "running" ? "live" : "muted");
      body.dataset.generation = last === null ? "" : String(last);
      body.dataset.generations = String(gens.length);
      body.dataset.ready = "1";
    }
    function pointsUrl(which) {
      const p = new URLSearchParams();
      if (st.species) p.set("species", st.species);
      if (st.earlier) p.set("earlier", "1");
      return api(`/run/${encodeURIComponent(run)}/generation/${which}?`) + p.toString();
    }
    async function loadPoints() {
      st.points = st.gen === null ? null : await getJSON(pointsUrl(st.gen));
    }

    function render() {
      const d = st.data;
      const gens = d.generations.map((g) => g.generation);
      const evals = d.generations.reduce((a, g) => a + g.evaluations, 0);
      const failed = d.generations.reduce((a, g) => a + g.failed, 0);
      const head = h("div", { class: "title" }, h("h1", {}, "Run " + d.run_id), statusBadge(d.status),
        d.all_species.length > 1 ? h("select", { id: "species", onchange: (e) => {
          st.species = e.target.value; st.follow = true; load().catch(showError);
        } }, d.all_species.map((sp) => h("option", { value: sp, selected: sp === d.species }, sp))) : null);
      const summary = h("p", { class: "muted" }, `species ${d.species} · ${gens.length} of ${d.planned} generations · `
        + `${evals} evaluations · ${failed} failed`);
      main.replaceChildren(head, summary, frontSection(), trendsSection(), failuresSection(), generationsSection());
      redrawScatter();
    }

    function frontSection() {
      const d = st.data;
      const objs = d.objectives;
      if (st.gen === null) return section("Front", h("p", { class: "muted" }, "no generation committed yet"));
      const gens = d.generations.map((g) => g.generation);
      const pick = (id, value, onchange) => h("select", { id, onchange }, objs.map((o, k) =>
        h("option", { value: k, selected: k === value }, objLabel(o))));
      const controls = h("div", { class: "controls" },
        h("label", {}, "x ", pick("axis-x", st.x, (e) => { st.x = Number(e.target.value); redrawScatter(); })),
        h("label", {}, "y ", pick("axis-y", st.y, (e) => { st.y = Number(e.target.value); redrawScatter(); })),
        h("label", {}, "generation ", h("input", { id: "gen", type: "range", min: gens[0], max: gens[gens.length - 1],
          step: 1, value: st.gen, oninput: (e) => {
            st.gen = Number(e.target.value); st.follow = st.gen === gens[gens.length - 1];
            document.getElementById("gen-label").textContent = String(st.gen);
            document.getElementById("follow").checked = st.follow;
            loadPoints().then(() => { redrawScatter(); redrawTrends(); }).catch(showError);
          } }), " ", h("b", { id: "gen-label" }, st.gen)),
        h("label", {}, h("input", { id: "follow", type: "checkbox", checked: st.follow, onchange: (e) => {
          st.follow = e.target.checked; if (st.follow) load().catch(showError);
        } }), " follow the latest"),
        h("label", {}, h("input", { id: "earlier", type: "checkbox", checked: st.earlier, onchange: (e) => {
          st.earlier = e.target.checked; loadPoints().then(redrawScatter).catch(showError);
        } }), " earlier evaluations"));
      return section("Front", controls, h("div", { id: "scatter-box" }), h("div", { id: "picked" }));
    }

    function redrawScatter() {
      const box = document.getElementById("scatter-box");
      if (!box || !st.points) return;
      box.replaceChildren(scatter(st.points.points, st.data.objectives, st.x, st.y));
      const gl = document.getElementById("gen-label");
      if (gl) gl.textContent = String(st.gen);
      drawPicked();
      performance.mark("scatter-drawn"); // each draw (the first is the page's first paint of the front)
    }

    // The scatter of one generation: the individuals at one point are drawn once, sized and
    // labelled with their count; kinds sharing a point are nested rings (none hides another)
    // and failures are crosses drawn last, on top of everything.
    function scatter(points, objs, xi, yi) {
      const spots = new Map();
      const unplaced = {};
      const counts = {};
      for (const p of points) {
        const [id, , vals, kind] = p;
        const xv = vals[xi], yv = vals[yi];
        if (xv === null || yv === null || xv === undefined || yv === undefined) {
          unplaced[kind] = (unplaced[kind] || 0) + 1;
          continue;
        }
        counts[kind] = (counts[kind] || 0) + 1;
        const key = xv + "|" + yv;
        if (!spots.has(key)) spots.set(key, { x: xv, y: yv, kinds: {}, n: 0, top: 0 });
        const sp = spots.get(key);
        (sp.kinds[kind] = sp.kinds[kind] || []).push(id);
        sp.n += 1;
        sp.top = Math.max(sp.top, KINDS.indexOf(kind));
      }
      const list = [...spots.values()].sort((p, q) => p.top - q.top);
      const a = axes(720, 440, extent(list.map((g) => g.x)), extent(list.map((g) => g.y)),
        objLabel(objs[xi]), objLabel(objs[yi]));
      a.svg.id = "scatter";
      // spots holding only earlier generations' evaluations (up to every evaluation of a run)
      // are context: one path of round dots, no per-spot element, counts still labelled
      let dots = "";
      const background = s("g", { class: "earlier-dots" });
      let backgroundCount = 0;
      for (const sp of list) {
        if (sp.top !== 0) continue;
        const cx = a.x(sp.x), cy = a.y(sp.y);
        dots += `M${cx.toFixed(1)},${cy.toFixed(1)}h0`;
        backgroundCount += sp.n;
        if (sp.n > 1) background.append(s("text", { x: cx + 4, y: cy - 3, class: "count" }, "×" + sp.n));
      }
      if (dots) {
        background.prepend(s("path", { d: dots }));
        background.dataset.count = String(backgroundCount);
        a.svg.append(background);
      }
      for (const sp of list) {
        if (sp.top === 0) continue;
        const cx = a.x(sp.x), cy = a.y(sp.y), n = sp.n;
        const here = KINDS.filter((k) => sp.kinds[k]);
        const rings = here.filter((k) => k !== "failed" && k !== "infeasible");
        const r = Math.min(4 + 2.2 * Math.sqrt(n - 1), 16);
        const grp = s("g", { class: "pt " + KINDS[sp.top], "data-count": n, "data-kinds": here.join(" "), tabindex: 0 });
        rings.forEach((k, i) => { // the lowest kind outermost
          grp.append(s("circle", { cx, cy, r: r + 3 * (rings.length - 1 - i), class: k }));
        });
        if (sp.kinds.infeasible) {
          const q = r + 2;
          grp.append(s("path", { d: `M${cx},${cy - q}L${cx + q},${cy}L${cx},${cy + q}L${cx - q},${cy}Z`, class: "infeasible" }));
        }
        if (sp.kinds.failed) {
          const q = Math.max(r, 5);
          grp.append(s("path", { d: `M${cx - q},${cy - q}L${cx + q},${cy + q}M${cx - q},${cy + q}L${cx + q},${cy - q}`, class: "failed" }));
        }
        if (n > 1) grp.append(s("text", { x: cx + r + 3 * rings.length, y: cy - r + 1, class: "count" }, "×" + n));
        const lines = here.map((k) => {
          const ids = sp.kinds[k];
          return `${ids.length} ${KIND_LABEL[k]}: ` + ids.slice(0, 10).join(", ") + (ids.length > 10 ? ` … +${ids.length - 10}` : "");
        });
        grp.append(s("title", {}, `${n} at (${fmt(sp.x)}, ${fmt(sp.y)})\n` + lines.join("\n")));
        grp.addEventListener("click", () => { st.selected = sp; drawPicked(); });
        a.svg.append(grp);
      }
      a.svg.dataset.markers = String(list.length); // distinct points drawn
      const legend = h("div", { class: "legend" }, KINDS.filter((k) => counts[k] || unplaced[k]).map((k) =>
        h("span", { class: "key " + k }, `${KIND_LABEL[k]} ${counts[k] || 0}`
          + (unplaced[k] ? ` (+${unplaced[k]} with no value on these axes)` : ""))));
      return h("figure", {}, a.svg, legend,
        h("figcaption", { class: "muted" }, `generation ${st.gen}: ${points.length} individuals at `
          + `${list.length} distinct points · click a point for its individuals`));
    }

    function drawPicked() {
      const el = document.getElementById("picked");
      if (!el) return;
      const sp = st.selected;
      if (!sp) { el.replaceChildren(); return; }
      el.replaceChildren(h("p", {}, h("b", {}, `${sp.n} at (${fmt(sp.x)}, ${fmt(sp.y)})`)),
        h("ul", {}, KINDS.filter((k) => sp.kinds[k]).map((k) => h("li", {}, `${KIND_LABEL[k]}: `,
          sp.kinds[k].slice(0, 200).flatMap((id, i) => [i ? ", " : "", h("a", { href: indUrl(run, id) }, id)])))));
    }

    function redrawTrends() { // the charts mark the generation shown
      const old = document.getElementById("trends");
      if (old) old.replaceWith(trendsSection());
    }

    function trendsSection() {
      const d = st.data;
      const xs = d.generations.map((g) => g.generation);
      if (!xs.length) return h("section", { id: "trends" }, h("h2", {}, "Over generations"), h("p", { class: "muted" }, "no generation yet"));
      const figs = [lineChart("hypervolume", xs, [{ name: "hypervolume", ys: d.generations.map((g) => g.hypervolume === null || typeof g.hypervolume !== "number" ? null : g.hypervolume), cls: "hv" }], null, st.gen)];
      const byGen = new Map(d.stats.map((r) => [r.generation, r]));
      d.objectives.forEach((o, k) => {
        const pick = (what) => xs.map((g) => (byGen.has(g) ? byGen.get(g)[what][k] : null));
        figs.push(lineChart(objLabel(o), xs, [{ name: "mean", ys: pick("mean"), cls: "mean" },
          { name: "min", ys: pick("min"), cls: "min" }, { name: "max", ys: pick("max"), cls: "max" }],
        { lo: pick("min"), hi: pick("max") }, st.gen));
      });
      return h("section", { id: "trends" }, h("h2", {}, "Over generations"), h("p", { class: "muted" },
        "objectives: min, mean and max over each generation's evaluations that finished ok"), h("div", { class: "charts" }, figs));
    }

    function failuresSection() {
      const f = st.data.failures;
      if (!f.length) return section("Failures by reason", h("p", { class: "muted", id: "failures" }, "no failed or infeasible evaluation"));
      return section("Failures by reason", table(["status", "reason", "count", "generations", "e.g."],
        f.map((r) => [statusBadge(r.status), h("code", {}, r.reason), r.count,
          r.first === r.last ? String(r.first) : `${r.first}–${r.last}`,
          h("span", {}, r.examples.flatMap((id, k) => [k ? ", " : "", h("a", { href: indUrl(run, id) }, id)]))]),
        "failures"));
    }

    function generationsSection() {
      const g = st.data.generations;
      return h("details", {}, h("summary", {}, `Generations table (${g.length})`),
        table(["generation", "hypervolume", "evaluations", "failed", "duplicates", "population", "front", "seconds",
          "committed"], g.slice().reverse().map((r) => [r.generation, fmt(r.hypervolume), r.evaluations, r.failed,
          r.duplicates, r.population, r.front_size, fmt(r.wall_seconds, 3), r.committed_at])));
    }

    async function poll() {
      const v = await getJSON(api(`/run/${encodeURIComponent(run)}/version`));
      if (v.busy) {
        setLive("its driver holds the store; waiting…", "warn");
        const snap = v.snapshot || {};
        const progress = snap.generations === undefined ? "" : `Its driver reports ${fmt(snap.generations)} of `
          + `${fmt(snap.planned)} generations done, hypervolume ${fmt((snap.hypervolume || {})[""])}, updated ${snap.updated_at}.`;
        if (st.data === null) main.replaceChildren(h("p", { class: "muted", id: "waiting" }, WAITING, h("br"), progress, h("br"), v.note));
        return;
      }
      setLive(v.status === "running" ? `live · generation ${fmt(v.generation)}` : v.status, v.status === "running" ? "live" : "muted");
      if (st.data === null || v.version !== st.version) await load();
    }

    try {
      await load();
    } catch (e) {
      if (e.busy) await poll().catch(showError);
      else showError(e);
    }
    every(poll);
  }

  // --- an individual -------------------------------------------------------------------------------
  async function viewIndividual() {
    const run = body.dataset.run, ind = body.dataset.ind;
    crumbs(h("a", { href: runUrl(run) }, run), h("a", { href: indUrl(run, ind) }, ind));
    let d;
    for (;;) { // while its driver holds the store, wait for it
      try {
        d = await getJSON(api(`/run/${encodeURIComponent(run)}/individual/${encodeURIComponent(ind)}`));
        break;
      } catch (e) {
        if (!e.busy) { showError(e); return; }
        main.replaceChildren(h("p", { class: "muted", id: "waiting" }, WAITING, h("br"), e.message));
        await new Promise((resolve) => setTimeout(resolve, POLL));
      }
    }
    const ev = d.evaluation;
    const link = (id) => h("a", { href: indUrl(run, id) }, id);
    const parts = [
      h("div", { class: "title" }, h("h1", {}, d.individual_id), ev ? statusBadge(ev.status) : statusBadge("unevaluated"),
        ev && !ev.feasible ? statusBadge("infeasible") : null),
      h("p", { class: "muted" }, `species ${d.species} · generation ${d.generation} · ${d.origin}`,
        d.parents.length ? h("span", {}, " of ", d.parents.flatMap((p, k) => [k ? ", " : "", link(p)])) : null,
        ` · seed ${d.seed} · hash ${String(d.hash).slice(0, 12)}`,
        d.lived.generations ? ` · in the population of ${d.lived.generations} generation(s) (${d.lived.first}–${d.lived.last}), on the front in ${d.lived.on_front}` : ""),
    ];
    if (ev) {
      parts.push(section("Evaluation",
        table(["objective", "value"], d.objectives.map((o, k) => [objLabel(o), fmt(ev.objectives[k], 6)]), "narrow"),
        h("p", {}, `wall ${fmt(ev.wall_seconds, 3)} s · attempts ${ev.attempts} · node ${String(ev.node).slice(0, 12)}`
          + (ev.isolation ? ` · isolation ${ev.isolation}` : ""), ev.reused_from ? h("span", {}, " · result of ", link(ev.reused_from)) : null),
        ev.note ? h("p", {}, "infeasible: ", h("code", {}, ev.note)) : null,
        ev.error ? h("pre", { class: "error-text" }, ev.error) : null));
    }
    if (d.held_out.length) {
      parts.push(section("Held-out splits", table(["split", "after generation", "status", "passed", "pass rate", "error"],
        d.held_out.map((r) => [r.split, r.generation, statusBadge(r.status), `${r.passed} / ${r.tasks}`, fmt(r.pass_rate), r.error || ""]), "narrow")));
    }
    if (ev && ev.trajectory) parts.push(section("Replay", h("div", { id: "replay" }, h("p", { class: "muted" }, "loading the trajectory…"))));
    parts.push(section("Lineage", h("div", { id: "lineage" }, h("p", { class: "muted" }, "loading…")),
      d.children.length ? h("p", {}, `children (${d.children.length}${d.children.length >= 50 ? "+" : ""}): `, d.children.flatMap((c, k) => [k ? ", " : "", link(c)])) : null));
    if (d.metrics.levelled.length || d.metrics.plain.length) {
      parts.push(section(d.metrics.levelled.length ? "Metrics per level" : "Metrics", h("div", { class: "side" },
        d.metrics.levelled.length ? table(["metric", ...d.metrics.levels], d.metrics.levelled.map(([name, vals]) => [name, ...vals.map((v) => fmt(v, 6))]), "narrow metrics") : null,
        d.metrics.plain.length ? table(["metric", "value"], d.metrics.plain.map(([name, v]) => [name, fmt(v, 6)]), "narrow metrics") : null)));
    }
    if (d.tasks.length) {
      const splits = [...new Set(d.tasks.map((t) => t.split))];
      parts.push(section("Tasks", splits.map((sp) => {
        const rows = d.tasks.filter((t) => t.split === sp);
        const passed = rows.filter((t) => t.passed).length;
        return h("div", {}, h("h3", {}, `${sp}: ${passed} of ${rows.length} passed`),
          table(["task", "tier", "passed", "reason", "typed", "seconds"], rows.map((t) => [t.task_id, fmt(t.tier),
            h("span", { class: t.passed ? "pass" : "fail" }, t.passed ? "✓" : "✗"), t.reason, h("code", { class: "typed" }, t.typed), fmt(t.seconds, 3)]), "tasks"));
      })));
    }
    parts.push(section("Genome", h("pre", { class: "genome" }, JSON.stringify(d.genome, null, 2))));
    main.replaceChildren(...parts);
    body.dataset.ready = "1";
    lineage(run, ind, d.objectives).catch((e) => {
      document.getElementById("lineage").replaceChildren(h("p", { class: "error" }, e.message));
    });
    if (ev && ev.trajectory) {
      replay(run, ind).catch((e) => {
        document.getElementById("replay").replaceChildren(h("p", { class: "error" }, e.message));
      });
    }
  }

  // The ancestry as a tree (parents under their child); an ancestor met twice is named, not
  // repeated; "more" fetches the ancestry above a node.
  async function lineage(run, ind, objs) {
    const box = document.getElementById("lineage");
    const nodes = {};
    const more = new Set();
    async function fetchFrom(id) {
      const data = await getJSON(api(`/run/${encodeURIComponent(run)}/individual/${encodeURIComponent(id)}/lineage`));
      Object.assign(nodes, data.nodes);
      for (const m of data.more) more.add(m);
      for (const k of Object.keys(data.nodes)) if (!data.more.includes(k)) more.delete(k);
    }
    function draw() {
      const shown = new Set();
      function item(id) {
        const n = nodes[id];
        const li = h("li", { "data-id": id });
        if (!n) { li.append(h("span", { class: "muted" }, id)); return li; }
        const vals = n.objectives.map((v, k) => `${objs[k] ? objs[k].metric : k} ${fmt(v)}`).join(", ");
        li.append(h("a", { href: indUrl(run, id), class: id === ind ? "root" : "" }, id),
          h("span", { class: "muted" }, ` g${n.generation} · ${n.origin} · `), statusBadge(n.status || "unevaluated"),
          h("span", { class: "muted small" }, " " + vals));
        if (shown.has(id)) { li.append(h("span", { class: "muted" }, " (ancestry shown above)")); return li; }
        shown.add(id);
        if (!n.parents.length) return li;
        if (more.has(id)) {
          li.append(" ", h("button", { class: "more", onclick: async (e) => {
            e.target.disabled = true;
            try { await fetchFrom(id); draw(); } catch (err) { setLive(err.message, "warn"); }
          } }, `show ${n.parents.length} parent(s)`));
          return li;
        }
        li.append(h("ul", {}, n.parents.map(item)));
        return li;
      }
      box.replaceChildren(h("ul", { class: "tree" }, item(ind)));
      box.dataset.nodes = String(shown.size);
    }
    await fetchFrom(ind);
    draw();
  }

  // The trajectory in the asciinema player, with a frame counter, steps and speeds.
  async function replay(run, ind) {
    const box = document.getElementById("replay");
    const c = await getJSON(api(`/run/${encodeURIComponent(run)}/individual/${encodeURIComponent(ind)}/cast`));
    const text = [JSON.stringify(c.header), ...c.events.map((e) => JSON.stringify(e))].join("\n") + "\n";
    const frames = c.frames;
    const term = h("div", { class: "term" });
    const counter = h("span", { id: "frame", "data-frame": "0", "data-state": "paused" }, `frame 0 / ${frames.length}`);
    const keys = h("code", { class: "keys" }, "");
    let speed = 1;
    let player = null;
    function make(startAt, autoPlay) {
      if (player) player.dispose();
      term.replaceChildren();
      player = window.AsciinemaPlayer.create({ data: text }, term, {
        cols: c.header.width, rows: c.header.height, autoPlay, speed, startAt, fit: "width",
        markers: c.markers, terminalFontSize: "small", idleTimeLimit: 2, preload: true,
      });
    }
    function index(t) { // the last frame shown at time t
      let lo = 0, hi = frames.length - 1, k = -1;
      while (lo <= hi) { const mid = (lo + hi) >> 1; if (frames[mid][0] <= t + 1e-6) { k = mid; lo = mid + 1; } else hi = mid - 1; }
      return k;
    }
    let shown = -1; // the frame on screen, as the counter says
    function update() {
      const t = player ? player.getCurrentTime() : 0;
      shown = index(typeof t === "number" ? t : 0);
      counter.dataset.frame = String(shown + 1);
      counter.textContent = `frame ${shown + 1} / ${frames.length}`;
      if (shown >= 0) {
        const f = frames[shown];
        keys.textContent = `${f[1]} #${f[2]}  ${f[3] === "text" ? JSON.stringify(f[4]) : "<" + f[4] + ">"}`;
      }
    }
    async function pause() {
      await player.pause();
      // the clock may have passed a frame the player has not drawn yet: show that frame
      const k = index(player.getCurrentTime() || 0);
      if (k >= 0) await player.seek(frames[k][0] + 0.001);
      update();
      counter.dataset.state = "paused";
    }
    async function step(delta) {
      await pause();
      const k = Math.max(0, Math.min(frames.length - 1, shown + delta));
      await player.seek(frames[k][0] + 0.001);
      update();
    }
    const speeds = [0.25, 0.5, 1, 2, 4, 8];
    const controls = h("div", { class: "controls" },
      h("button", { id: "replay-play", onclick: () => { counter.dataset.state = "playing"; player.play(); } }, "▶ play"),
      h("button", { id: "replay-pause", onclick: () => pause() }, "❚❚ pause"),
      h("button", { id: "replay-back", onclick: () => step(-1) }, "◀ key"),
      h("button", { id: "replay-next", onclick: () => step(1) }, "key ▶"),
      h("label", {}, "speed ", h("select", { id: "replay-speed", onchange: (e) => {
        speed = Number(e.target.value);
        make(player.getCurrentTime() || 0, true);
      } }, speeds.map((v) => h("option", { value: v, selected: v === 1 }, v + "×")))),
      counter, keys);
    box.replaceChildren(controls, term,
      h("p", { class: "muted" }, `${frames.length} keys over ${fmt(frames.length ? frames[frames.length - 1][0] : 0, 3)} s; `
        + `each key stays at least ${fmt(c.min_step)} s, a long pause at most ${fmt(c.max_gap)} s (at 1×)`));
    make(0, false);
    setInterval(update, 100);
  }

  const views = { runs: viewRuns, run: viewRun, individual: viewIndividual };
  const view = views[body.dataset.view];
  if (view) view().catch(showError);
}());
