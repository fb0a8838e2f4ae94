// kibitzer feature viewer. Data come as scripts (data/index.js with the
// page, data/sae-NNN.js when a run is picked) because pages opened from
// file:// may not fetch(). Everything is drawn here, boards as SVG.
(function () {
  "use strict";
  const K = window.KIBITZER;
  const DATA = window.KIBITZER_SAE;
  const $ = (id) => document.getElementById(id);
  const status = $("status");
  if (!K) {
    status.innerHTML = '<span class="error">data/index.js did not load: build the site with <code>kibitzer vis</code>.</span>';
    return;
  }
  const N = K.boardSize;
  const FILES = "abcdefghijklmnop";
  const state = { run: 0, sort: "frequency", feature: null, filter: "", hideDead: true, bsp: null, order: [] };
  const loading = {};

  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  const fmt = (x, d) => (x === null || x === undefined || !isFinite(x) ? "—" : Number(x).toFixed(d));
  const pct = (x) => (x >= 0.001 || x === 0 ? (100 * x).toFixed(x >= 0.1 ? 1 : 2) + "%" : (100 * x).toExponential(1) + "%");
  const squareName = (i) => FILES[i % N] + (Math.floor(i / N) + 1);
  const squareOf = (bspName) => {
    const at = bspName.lastIndexOf("@");
    if (at < 0) return -1;
    const s = bspName.slice(at + 1);
    const col = FILES.indexOf(s[0]);
    const row = parseInt(s.slice(1), 10) - 1;
    return col >= 0 && col < N && row >= 0 && row < N ? row * N + col : -1;
  };

  // ----- data loading -------------------------------------------------------
  function withRun(i, then) {
    const run = K.runs[i];
    if (DATA[run.name]) return then(DATA[run.name]);
    if (loading[run.name]) return loading[run.name].push(then);
    loading[run.name] = [then];
    status.textContent = "loading " + run.name + "…";
    const script = document.createElement("script");
    script.src = run.file;
    script.onload = () => {
      const waiting = loading[run.name];
      delete loading[run.name];
      if (!DATA[run.name]) {
        status.innerHTML = '<span class="error">' + esc(run.file) + " holds no data for " + esc(run.name) + "</span>";
        return;
      }
      waiting.forEach((f) => f(DATA[run.name]));
    };
    script.onerror = () => {
      delete loading[run.name];
      status.innerHTML = '<span class="error">could not load ' + esc(run.file) + "</span>";
    };
    document.head.appendChild(script);
  }

  // ----- drawing --------------------------------------------------------------
  // One board: cells, discs, the move played (red frame), flipped discs
  // (amber dots), and the square of the selected property (dashed frame).
  function boardSvg(pos, highlight) {
    const cells = pos[0], last = pos[2], flipped = pos[3];
    const c = Math.max(14, Math.min(26, Math.floor(156 / N)));
    const m = 12, size = N * c;
    const out = ['<svg class="board" xmlns="http://www.w3.org/2000/svg" width="' + (size + m) + '" height="' + (size + m) +
      '" viewBox="0 0 ' + (size + m) + " " + (size + m) + '">'];
    for (let i = 0; i < N; i++) {
      out.push('<text class="coord" x="' + (m + i * c + c / 2) + '" y="9" text-anchor="middle">' + FILES[i] + "</text>");
      out.push('<text class="coord" x="5" y="' + (m + i * c + c / 2 + 3) + '" text-anchor="middle">' + (i + 1) + "</text>");
    }
    for (let s = 0; s < N * N; s++) {
      const x = m + (s % N) * c, y = m + Math.floor(s / N) * c;
      out.push('<rect class="cell" x="' + x + '" y="' + y + '" width="' + c + '" height="' + c + '"/>');
      const ch = cells[s];
      if (ch === "X" || ch === "O") {
        out.push('<circle class="disc ' + (ch === "X" ? "black" : "white") + '" cx="' + (x + c / 2) + '" cy="' + (y + c / 2) + '" r="' + (c * 0.4) + '"/>');
      }
    }
    for (const s of flipped) {
      const x = m + (s % N) * c, y = m + Math.floor(s / N) * c;
      out.push('<circle class="flip-mark" cx="' + (x + c / 2) + '" cy="' + (y + c / 2) + '" r="' + (c * 0.12) + '"/>');
    }
    if (last >= 0) {
      out.push('<rect class="last-move" x="' + (m + (last % N) * c + 1.5) + '" y="' + (m + Math.floor(last / N) * c + 1.5) +
        '" width="' + (c - 3) + '" height="' + (c - 3) + '"/>');
    }
    if (highlight >= 0) {
      out.push('<rect class="bsp-square" x="' + (m + (highlight % N) * c + 4) + '" y="' + (m + Math.floor(highlight / N) * c + 4) +
        '" width="' + (c - 8) + '" height="' + (c - 8) + '"/>');
    }
    out.push("</svg>");
    return out.join("");
  }

  function histogramSvg(counts, max) {
    const w = 300, h = 110, l = 34, b = 18, t = 6;
    const top = Math.max(1, ...counts);
    const bw = (w - l - 4) / counts.length;
    const out = ['<svg class="histogram" xmlns="http://www.w3.org/2000/svg" width="' + w + '" height="' + h + '">'];
    counts.forEach((n, i) => {
      const bh = ((h - b - t) * n) / top;
      out.push('<rect x="' + (l + i * bw + 1) + '" y="' + (h - b - bh) + '" width="' + Math.max(1, bw - 2) + '" height="' + bh +
        '"><title>' + n + " positions in (" + fmt((max * i) / counts.length, 3) + ", " + fmt((max * (i + 1)) / counts.length, 3) + "]</title></rect>");
    });
    out.push('<line x1="' + l + '" y1="' + (h - b) + '" x2="' + w + '" y2="' + (h - b) + '" stroke="#999"/>');
    out.push('<text x="' + l + '" y="' + (h - 4) + '">0</text>');
    out.push('<text x="' + (w - 2) + '" y="' + (h - 4) + '" text-anchor="end">' + fmt(max, 3) + "</text>");
    out.push('<text x="' + (l - 4) + '" y="' + (t + 8) + '" text-anchor="end">' + top + "</text>");
    out.push('<text x="' + (l - 4) + '" y="' + (h - b) + '" text-anchor="end">0</text>');
    out.push("</svg>");
    return out.join("");
  }

  // ----- the feature list -----------------------------------------------------
  const FREQ = 0, MAX = 1, HIST = 2, TOP = 3, BSPS = 4;
  const bestF1 = (f) => (f[BSPS].length ? f[BSPS][0][1] : -1);

  function ordered(data) {
    const idx = [];
    const filter = state.filter.trim().toLowerCase();
    data.features.forEach((f, i) => {
      if (state.hideDead && f[FREQ] === 0) return;
      if (filter && !(f[BSPS].length && K.bsps[f[BSPS][0][0]].toLowerCase().includes(filter))) return;
      idx.push(i);
    });
    if (state.sort === "frequency") idx.sort((a, b) => data.features[b][FREQ] - data.features[a][FREQ] || a - b);
    else if (state.sort === "f1") idx.sort((a, b) => bestF1(data.features[b]) - bestF1(data.features[a]) || a - b);
    return idx;
  }

  function renderList(data) {
    state.order = ordered(data);
    const maxFreq = Math.max(1e-12, ...data.features.map((f) => f[FREQ]));
    const html = state.order.map((i) => {
      const f = data.features[i];
      const best = f[BSPS].length ? esc(K.bsps[f[BSPS][0][0]]) + " " + fmt(f[BSPS][0][1], 2) : "—";
      return '<li data-f="' + i + '"' + (f[FREQ] === 0 ? ' class="dead"' : "") + '><span class="fid">#' + i +
        '</span><span><span class="bar" style="width:' + Math.max(1, Math.round((24 * f[FREQ]) / maxFreq)) + 'px"></span>' +
        pct(f[FREQ]) + "</span><span>" + best + "</span></li>";
    });
    $("feature-list").innerHTML = html.join("") || '<li class="dead">no feature matches</li>';
    const run = K.runs[state.run];
    const alive = data.features.filter((f) => f[FREQ] > 0).length;
    $("sae-summary").innerHTML = "<b>" + esc(run.name) + "</b><br>" + run.dSae + " features (" + alive + " alive), " +
      esc(run.sparsity) + "<br>L0 " + fmt(run.l0, 2) + " · FVU " + fmt(run.fvu, 4) + " · MSE " + fmt(run.mse, 5) +
      "<br>coverage (board) " + fmt(run.coverage, 3) + " · reconstruction (board) " + fmt(run.reconstruction, 3) +
      "<br>" + state.order.length + " listed";
  }

  function markSelected() {
    for (const li of $("feature-list").querySelectorAll("li.selected")) li.classList.remove("selected");
    const li = $("feature-list").querySelector('li[data-f="' + state.feature + '"]');
    if (li) {
      li.classList.add("selected");
      // Scroll the list only: scrollIntoView would scroll the page too.
      const list = $("feature-list");
      const top = li.offsetTop - list.offsetTop;
      if (top < list.scrollTop || top + li.offsetHeight > list.scrollTop + list.clientHeight) {
        list.scrollTop = Math.max(0, top - list.clientHeight / 2);
      }
    }
  }

  // ----- one feature ------------------------------------------------------------
  function renderFeature(data) {
    const i = state.feature;
    const f = data.features[i];
    const run = K.runs[state.run];
    if (!f) {
      $("feature").innerHTML = '<p class="muted">' + esc(run.name) + " has no feature " + esc(i) + ".</p>";
      return;
    }
    const highlight = state.bsp === null ? (f[BSPS].length ? squareOf(K.bsps[f[BSPS][0][0]]) : -1) : squareOf(K.bsps[state.bsp]);
    const bspRows = f[BSPS].map((m) =>
      '<tr class="clickable' + (state.bsp === m[0] ? " active" : "") + '" data-bsp="' + m[0] + '"><td>' + esc(K.bsps[m[0]]) +
      "</td><td>" + fmt(m[1], 3) + "</td><td>" + fmt(m[2], 3) + "</td><td>" + fmt(m[3], 3) + "</td><td>" + fmt(m[4], 1) + "</td></tr>").join("");
    const boards = f[TOP].map((t, rank) => {
      const pos = data.positions[t[0]];
      const move = pos[2] >= 0 ? squareName(pos[2]) : "—";
      const seen = t[2] > 1 ? " · seen " + t[2] + "×" : "";
      return '<figure class="example">' + boardSvg(pos, highlight) + "<figcaption>#" + (rank + 1) + " · act <b>" + fmt(t[1], 3) +
        "</b> · move " + move + " · " + (pos[1] === "X" ? "black" : "white") + " to move<br>game " + pos[4] + ", ply " + pos[5] + seen + "</figcaption></figure>";
    }).join("");
    $("feature").innerHTML =
      "<h2>" + esc(run.name) + " · feature #" + i + "</h2>" +
      '<div class="stats">fires on ' + pct(f[FREQ]) + " of " + data.rows + " positions · max activation " + fmt(f[MAX], 3) + "</div>" +
      '<div class="row"><div><h3>Activation histogram</h3>' + histogramSvg(f[HIST], f[MAX]) + "</div>" +
      "<div><h3>Best-matching board-state properties</h3>" +
      (bspRows ? "<table><tr><th>property</th><th>F1</th><th>precision</th><th>recall</th><th>threshold</th></tr>" + bspRows + "</table>" +
        '<div class="legend">mine/yours are relative to the side to move; click a row to mark its square.</div>' : '<p class="muted">no property matches this feature.</p>') +
      "</div></div>" +
      "<h3>Top-activating positions</h3>" +
      '<div class="legend"><i style="background:#111"></i>black <i style="background:#f4f4f4;border:1px solid #999"></i>white' +
      '<i style="border:2px solid #ff3b30"></i>move played <i style="background:#ffb000;border-radius:50%"></i>flipped' +
      '<i style="border:2px dashed #00c8ff"></i>property square</div>' +
      '<div class="boards">' + (boards || '<p class="muted">this feature never fires.</p>') + "</div>";
    for (const tr of $("feature").querySelectorAll("tr[data-bsp]")) {
      tr.addEventListener("click", () => {
        const b = Number(tr.dataset.bsp);
        state.bsp = state.bsp === b ? null : b;
        renderFeature(data);
      });
    }
    markSelected();
  }

  // ----- state and events ---------------------------------------------------------
  function writeHash() {
    const h = "#run=" + encodeURIComponent(K.runs[state.run].name) + (state.feature === null ? "" : "&f=" + state.feature) +
      ($("sweep-view").hidden ? "" : "&tab=sweep");
    if (location.hash !== h) history.replaceState(null, "", h);
  }

  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    const r = K.runs.findIndex((x) => x.name === params.get("run"));
    if (r >= 0) state.run = r;
    const f = parseInt(params.get("f"), 10);
    state.feature = isFinite(f) ? f : null;
    return params.get("tab") === "sweep" ? "sweep" : "features";
  }

  function showRun(first) {
    $("sae").value = String(state.run);
    withRun(state.run, (data) => {
      renderList(data);
      if (state.feature === null || !data.features[state.feature]) state.feature = state.order.length ? state.order[0] : 0;
      state.bsp = null;
      renderFeature(data);
      writeHash();
      if (first) {
        const ms = Math.round(performance.now());
        document.body.setAttribute("data-ready-ms", String(ms));
        status.textContent = K.runs.length + " SAEs · " + K.bsps.length + " board-state properties · ready in " + ms + " ms";
      } else {
        status.textContent = K.runs[state.run].name + " loaded";
      }
    });
  }

  function fillRuns() {
    const groups = {};
    K.runs.forEach((r, i) => {
      (groups[r.family] = groups[r.family] || []).push('<option value="' + i + '">' + esc(r.name) + " · L0 " + fmt(r.l0, 1) + " · FVU " + fmt(r.fvu, 3) + "</option>");
    });
    $("sae").innerHTML = Object.keys(groups).map((g) => '<optgroup label="' + esc(g) + '">' + groups[g].join("") + "</optgroup>").join("");
    const rows = K.runs.map((r, i) =>
      '<tr class="clickable" data-run="' + i + '"><td>' + esc(r.name) + "</td><td>" + esc(r.family) + "</td><td>" + r.dSae + "</td><td>" +
      esc(r.sparsity) + "</td><td>" + fmt(r.mse, 5) + "</td><td>" + fmt(r.l0, 2) + "</td><td>" + fmt(100 * r.dead, 1) + "</td><td>" +
      fmt(r.fvu, 4) + "</td><td>" + fmt(r.coverage, 3) + "</td><td>" + fmt(r.coverageAll, 3) + "</td><td>" + fmt(r.reconstruction, 3) +
      "</td><td>" + fmt(r.reconstructionAll, 3) + "</td></tr>").join("");
    $("runs-table").innerHTML = "<p class=\"muted\">" + K.runs.length + " SAEs on " + K.evalRows + " labelled positions (store: " + K.storeRows +
      " rows of width " + K.dIn + "); grid " + esc(K.preset) + ", " + K.steps + " steps of " + K.batchSize + ", lr " + K.lr + ", seed " + K.seed + ".</p>" +
      "<table><tr><th>run</th><th>architecture</th><th>features</th><th>sparsity</th><th>MSE</th><th>L0</th><th>dead %</th><th>FVU</th>" +
      "<th>coverage (board)</th><th>coverage (all)</th><th>reconstruction (board)</th><th>reconstruction (all)</th></tr>" + rows + "</table>";
    for (const tr of $("runs-table").querySelectorAll("tr[data-run]")) {
      tr.addEventListener("click", () => {
        state.run = Number(tr.dataset.run);
        state.feature = null;
        showTab("features");
        showRun(false);
      });
    }
  }

  let chartsShown = false;
  function showTab(which) {
    $("features-view").hidden = which !== "features";
    $("sweep-view").hidden = which !== "sweep";
    $("tab-features").classList.toggle("active", which === "features");
    $("tab-sweep").classList.toggle("active", which === "sweep");
    if (DATA[K.runs[state.run].name]) writeHash();
    if (which === "sweep" && !chartsShown) {
      // Charts load only when asked for: they are not needed to browse features.
      chartsShown = true;
      $("charts").innerHTML = K.charts.map((c) => '<img loading="lazy" alt="' + esc(c) + '" src="' + esc(c) + '">').join("") ||
        '<p class="muted">no charts in this sweep.</p>';
    }
  }

  function init() {
    fillRuns();
    const tab = readHash();
    $("sae").addEventListener("change", () => {
      state.run = Number($("sae").value);
      state.feature = null;
      showRun(false);
    });
    $("sort").addEventListener("change", () => {
      state.sort = $("sort").value;
      withRun(state.run, (d) => { renderList(d); markSelected(); });
    });
    $("filter").addEventListener("input", () => {
      state.filter = $("filter").value;
      withRun(state.run, (d) => { renderList(d); markSelected(); });
    });
    $("hide-dead").addEventListener("change", () => {
      state.hideDead = $("hide-dead").checked;
      withRun(state.run, (d) => { renderList(d); markSelected(); });
    });
    $("jump").addEventListener("change", () => {
      const f = parseInt($("jump").value, 10);
      if (!isFinite(f)) return;
      state.feature = f;
      state.bsp = null;
      withRun(state.run, (d) => { renderFeature(d); writeHash(); });
    });
    $("feature-list").addEventListener("click", (e) => {
      const li = e.target.closest("li[data-f]");
      if (!li) return;
      state.feature = Number(li.dataset.f);
      state.bsp = null;
      withRun(state.run, (d) => { renderFeature(d); writeHash(); });
    });
    document.addEventListener("keydown", (e) => {
      if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
      if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
      const at = state.order.indexOf(state.feature);
      const next = state.order[at + (e.key === "ArrowDown" ? 1 : -1)];
      if (next === undefined) return;
      e.preventDefault();
      state.feature = next;
      state.bsp = null;
      withRun(state.run, (d) => { renderFeature(d); writeHash(); });
    });
    $("tab-features").addEventListener("click", () => showTab("features"));
    $("tab-sweep").addEventListener("click", () => showTab("sweep"));
    if (!K.runs.length) {
      $("feature").innerHTML = '<p class="muted">this sweep has no runs.</p>';
      return;
    }
    showTab(tab);
    showRun(true);
  }

  init();
})();
