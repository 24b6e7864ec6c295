"""The live view's one page (runtime.view serves it): inline HTML, CSS and JavaScript, no CDN, so
that it works from a robot with no internet. It polls /state.json (with the number of the last plot
sample it has, so each answer carries only what is new) and loads /frame/N.jpg when a stream has a
newer picture, one request at a time per stream: a slow browser sees fewer frames, never stale ones.

Element ids the tests read: sN-card, sN-img (data-shown: pictures loaded), sN-label, sN-score,
sN-stats, sN-changes (the labels this page has shown, newest first), status (with the view's problem, if any)."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>socket-edge live view</title>
<style>
body{font:14px system-ui,sans-serif;margin:12px;background:#15171a;color:#e8e8e8}
h1{font-size:16px;font-weight:600;margin:0 0 4px}
#status{color:#9aa0a6;margin-bottom:10px}
#status.lost{color:#f28b82}
#streams{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
.card{background:#202327;border-radius:8px;padding:10px;width:380px}
.card.ended{opacity:.6}
.src{color:#9aa0a6;font-size:12px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.frame{width:100%;aspect-ratio:4/3;object-fit:contain;background:#000;image-rendering:pixelated;display:block;
margin:6px 0;border-radius:4px}
.label{font-size:24px;font-weight:700}
.score{font-size:18px;color:#9aa0a6;margin-left:8px}
.stats{color:#9aa0a6;font-size:12px;margin:4px 0}
.bar{display:flex;align-items:center;gap:6px;font-size:12px;margin:2px 0}
.bar span{width:90px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.bar div{height:8px;border-radius:2px}
canvas{width:100%;height:110px;background:#181a1d;border-radius:4px;margin-top:6px}
.legend{font-size:11px;color:#9aa0a6}
.changes{font-size:12px;color:#c8c8c8;margin:4px 0 0;padding-left:16px;max-height:96px;overflow:hidden}
</style></head>
<body>
<h1>socket-edge live view</h1>
<div id="status">connecting…</div>
<div id="streams"></div>
<script>
"use strict";
const PALETTE = ["#4e79a7","#f28e2b","#e15759","#76b7b2","#59a14f","#edc948","#b07aa1","#ff9da7","#9c755f","#bab0ac"];
const WINDOW_S = 20, POLL_MS = 100;
let since = -1, cards = [], classes = [];
const colour = (label) => PALETTE[Math.max(classes.indexOf(label), 0) % PALETTE.length];
const el = (tag, attrs, text) => { const e = document.createElement(tag); Object.assign(e, attrs || {});
  if (text !== undefined) e.textContent = text; return e; };

function card(i, source) {
  const c = {history: [], shown: null, pending: false, seq: -1, changes: []};
  c.root = el("div", {className: "card", id: `s${i}-card`});
  c.root.append(el("div", {className: "src"}, `stream ${i} · ${source}`));
  c.img = el("img", {className: "frame", id: `s${i}-img`, alt: `stream ${i}`});
  c.img.dataset.shown = "0";
  c.img.onload = () => { c.pending = false; c.img.dataset.shown = String(+c.img.dataset.shown + 1); };
  c.img.onerror = () => { c.pending = false; };
  const head = el("div");
  c.label = el("span", {className: "label", id: `s${i}-label`}, "–");
  c.score = el("span", {className: "score", id: `s${i}-score`});
  head.append(c.label, c.score);
  c.stats = el("div", {className: "stats", id: `s${i}-stats`});
  c.bars = el("div");
  c.canvas = el("canvas", {width: 360, height: 110});
  c.legend = el("div", {className: "legend"});
  c.list = el("ol", {className: "changes", id: `s${i}-changes`});
  c.root.append(c.img, head, c.stats, c.bars, c.canvas, c.legend,
                el("div", {className: "stats"}, "labels shown:"), c.list);
  document.getElementById("streams").append(c.root);
  return c;
}

function plot(c, now) {
  const g = c.canvas.getContext("2d"), w = c.canvas.width, h = c.canvas.height;
  g.clearRect(0, 0, w, h);
  g.strokeStyle = "#33373c"; g.lineWidth = 1;
  for (const y of [0.25, 0.5, 0.75]) { g.beginPath(); g.moveTo(0, h - y * h); g.lineTo(w, h - y * h); g.stroke(); }
  const x = (t) => w - (now - t) / WINDOW_S * w, seen = new Set();
  for (const label of classes) {
    g.strokeStyle = colour(label); g.lineWidth = 2; g.beginPath();
    let drawing = false;
    for (const [, t, top] of c.history) {
      const hit = top.find((p) => p[0] === label);
      if (!hit) { drawing = false; continue; }
      seen.add(label);
      const px = x(t), py = h - hit[1] * (h - 4) - 2;
      if (drawing) g.lineTo(px, py); else g.moveTo(px, py);
      drawing = true;
    }
    g.stroke();
  }
  c.legend.innerHTML = "";
  c.legend.append(`top scores, last ${WINDOW_S} s: `);
  for (const label of classes.filter((l) => seen.has(l)))
    c.legend.append(el("span", {style: `color:${colour(label)}`}, `■ ${label} `));
}

function update(state) {
  classes = state.classes;
  state.streams.forEach((s, i) => {
    const c = cards[i] || (cards[i] = card(i, s.source));
    c.root.classList.toggle("ended", s.ended);
    c.history.push(...s.history);
    c.history = c.history.filter((p) => p[1] > state.time - WINDOW_S);
    if (s.label !== null) {
      c.label.textContent = s.label; c.label.style.color = colour(s.label);
      c.score.textContent = s.score.toFixed(3);
      if (s.label !== c.shown) {
        c.shown = s.label;
        c.list.prepend(el("li", {}, `${s.label} at frame ${s.frame}`));
        while (c.list.children.length > 6) c.list.lastChild.remove();
      }
      c.bars.innerHTML = "";
      for (const t of s.top_k) {
        const row = el("div", {className: "bar"});
        const width = Math.round(t.score * 240);
        row.append(el("span", {}, t.label), el("div", {style: `width:${width}px;background:${colour(t.label)}`}),
                   t.score.toFixed(2));
        c.bars.append(row);
      }
    }
    c.stats.textContent = `frame ${s.frame ?? "–"} · ${s.fps.toFixed(1)} FPS` +
      ` · latency ${s.latency_ms.toFixed(1)} ms` +
      ` · ${s.frames} frames` + (s.ended ? " · ended" : "");
    if (s.jpeg >= 0 && s.jpeg !== c.seq && !c.pending) {
      c.pending = true; c.seq = s.jpeg; c.img.src = `/frame/${i}.jpg?n=${s.jpeg}`;
    }
    plot(c, state.time);
  });
  since = state.sample;
}

async function poll() {
  const status = document.getElementById("status");
  try {
    const answer = await fetch(`/state.json?since=${since}`, {cache: "no-store"});
    const state = await answer.json();
    update(state);
    status.className = state.problem ? "lost" : "";
    status.textContent = `${state.model} · ${state.modality} · ${state.streams.length} stream(s)` +
      (state.problem ? ` · ${state.problem}` : "");
    setTimeout(poll, POLL_MS);
  } catch (err) {
    status.className = "lost";
    status.textContent = "not connected: the run has ended or the connection was lost; retrying…";
    setTimeout(poll, 1000);
  }
}
poll();
</script></body></html>
"""
