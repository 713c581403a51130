// The live view's browser side: an anywidget ES module (no build step).
//
// The kernel sets two traits: `positions` (node coordinates from networkx,
// unit circle, y up) and `frame` (one state frame: raftkit/viz/frames.py
// documents it). This module draws the ring, the links, the messages in
// flight and the logs as SVG, and between two frames it moves the display
// time on at the frame's `rate` with requestAnimationFrame: messages glide
// along their links and timers drain at the display's frame rate, whatever
// the kernel's. It sends the kernel small action messages (model.send):
//   {action: "crash" | "restart" | "timeout" | "disconnect" | "connect" | "submit", node}
//   {action: "drop", message}            drop the message with this id
//   {action: "partition", groups}        drag a box around some nodes: they and the rest are two groups
//   {action: "play"} | {action: "step"} | {action: "tick"}
// Keyboard (the view has focus once clicked): space plays / pauses, the right
// arrow steps to the next visible event, shift + right arrow one tick.

const SVG_NS = "http://www.w3.org/2000/svg";
const W = 880, H = 360, RING = 360;            // viewBox; the ring is the left RING x RING square
const ROLE_FILL = {Follower: "#c6dbef", Candidate: "#fdd49e", Leader: "#a1d99b", Dead: "#d9d9d9"};
const ROLE_EDGE = {Follower: "#3182bd", Candidate: "#e6550d", Leader: "#238b45", Dead: "#969696"};
const METHOD = {request_vote: "#d95f02", append_entries: "#1b9e77", install_snapshot: "#7570b3",
                kv_request: "#e7298a"};
// ColorBrewer Set3 without its grey, as in draw.py's term_color
const TERMS = ["#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69",
               "#fccde5", "#bc80bd", "#ccebc5", "#ffed6f"];
const CUT = "#d62728";

function el(tag, attrs, parent) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}

function termColor(t) { return t <= 0 ? "#ffffff" : TERMS[(t - 1) % TERMS.length]; }

function clamp(x, lo, hi) { return Math.min(hi, Math.max(lo, x)); }

// An arc around (cx, cy) of radius r from 12 o'clock, clockwise, `frac` of the way round.
function arcPath(cx, cy, r, frac) {
  frac = clamp(frac, 0, 0.9999);
  if (frac <= 0) return "";
  const a = 2 * Math.PI * frac;
  const x = cx + r * Math.sin(a), y = cy - r * Math.cos(a);
  return `M ${cx} ${cy - r} A ${r} ${r} 0 ${frac > 0.5 ? 1 : 0} 1 ${x.toFixed(2)} ${y.toFixed(2)}`;
}

// Which frames bracket display time t: a = the last frame at or before t, b = the next one.
function bracket(frames, t) {
  let a = frames[0], b = null;
  for (const f of frames) {
    if (f.t <= t) a = f; else { b = f; break; }
  }
  return [a, b];
}

// The messages in the air at display time t: those of a not yet arrived, and
// those of b already sent (b's picture has them; a's did not yet).
function messagesAt(a, b, t) {
  const out = new Map();
  for (const m of a.messages) if (m.arrive > t || a.t >= t) out.set(m.key, m);
  if (b) for (const m of b.messages) if (m.sent <= t && !out.has(m.key)) out.set(m.key, m);
  return out;
}

function render({ model, el: host }) {
  const root = document.createElement("div");
  root.className = "raftkit-liveview";
  root.tabIndex = 0;
  root.setAttribute("data-lm-suppress-shortcuts", "true");   // JupyterLab: our keys, not the notebook's
  root.style.cssText = "position:relative;outline:none;max-width:100%;font-family:sans-serif";
  const svg = el("svg", {viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img"});
  svg.style.cssText = "max-height:380px;display:block;user-select:none";
  root.appendChild(svg);
  const title = el("text", {x: W / 2, y: 14, "text-anchor": "middle", "font-size": 12, class: "rk-title"}, svg);
  const linksG = el("g", {class: "rk-links"}, svg);
  const nodesG = el("g", {class: "rk-nodes"}, svg);
  const msgsG = el("g", {class: "rk-messages"}, svg);
  const logsG = el("g", {class: "rk-logs"}, svg);
  const menu = document.createElement("div");
  menu.className = "rk-menu";
  menu.style.cssText = "position:absolute;display:none;background:white;border:1px solid #999;" +
    "border-radius:4px;box-shadow:0 2px 6px rgba(0,0,0,.25);padding:3px;z-index:10;font-size:12px";
  root.appendChild(menu);
  host.appendChild(root);

  let frames = [];            // recent frames, oldest first
  let t = 0;                  // display time (cluster seconds)
  let last = null;            // rAF timestamp of the previous animation frame
  let drawnStatic = null;     // the frame whose nodes / links / logs are drawn
  let drawnKey = null;        // what they showed: redrawn only when it changes
  let stale = true;           // paused: draw only after a new frame (a still picture costs nothing)
  let closed = false;
  let nodeSpec = [];          // [{x, y, r}] in viewBox units
  const dots = new Map();     // message key -> its <g>
  const arcs = [];            // node id -> timer arc <path>
  root.rk = {frames: 0, animated: 0, clicks: 0};   // counters, for tests

  function layout() {
    const pos = model.get("positions") || [];
    const n = pos.length;
    const r = n === 1 ? 40 : Math.min(34, 0.7 * Math.sin(Math.PI / n) * 140);
    const c = RING / 2, R = RING / 2 - r - 22;
    nodeSpec = pos.map(([x, y]) => ({x: c + R * x, y: c + 8 - R * y, r}));
  }

  function send(content) {
    root.rk.clicks += 1;
    model.send(content);
  }

  function hideMenu() { menu.style.display = "none"; }

  function showMenu(node, evt) {
    const f = frames[frames.length - 1];
    const ns = f && f.nodes[node];
    if (!ns) return;
    menu.innerHTML = "";
    const head = document.createElement("div");
    head.textContent = `S${node} · ${ns.alive ? ns.role : "crashed"} · term ${ns.term}`;
    head.style.cssText = "font-weight:bold;padding:2px 6px";
    menu.appendChild(head);
    const items = [
      [ns.alive ? "crash" : "restart", ns.alive ? "Crash" : "Restart"],
      ["timeout", "Time out now"],
      [ns.connected ? "disconnect" : "connect", ns.connected ? "Disconnect" : "Connect"],
      ["submit", "Submit the command"],
    ];
    for (const [action, label] of items) {
      const b = document.createElement("button");
      b.textContent = label;
      b.className = `rk-action rk-${action}`;
      b.style.cssText = "display:block;width:100%;text-align:left;margin:1px 0;font-size:12px;cursor:pointer";
      b.onclick = (e) => { e.stopPropagation(); hideMenu(); send({action, node}); root.focus(); };
      menu.appendChild(b);
    }
    const box = root.getBoundingClientRect();
    menu.style.left = `${evt.clientX - box.left + 6}px`;
    menu.style.top = `${evt.clientY - box.top + 6}px`;
    menu.style.display = "block";
  }

  // Everything drawStatic shows but the timers' positions (animate moves those).
  function staticKey(f) {
    return JSON.stringify([f.nodes.map((n) => [n.role, n.term, n.alive, n.connected, n.votes, n.timer && n.timer[2]]),
                           f.logs, f.cut, nodeSpec.length]);
  }

  function drawStatic(f) {
    drawnStatic = f;
    title.textContent = f.title;
    const key = staticKey(f);
    if (key === drawnKey) return;
    drawnKey = key;
    root.rk.redrawn = (root.rk.redrawn || 0) + 1;
    linksG.replaceChildren();
    nodesG.replaceChildren();
    logsG.replaceChildren();
    arcs.length = 0;
    const n = f.nodes.length;
    if (nodeSpec.length !== n) layout();
    const cut = new Set(f.cut.map(([a, b]) => `${a},${b}`));
    for (let a = 0; a < n; a++) {
      for (let b = a + 1; b < n; b++) {
        const p = nodeSpec[a], q = nodeSpec[b];
        const isCut = cut.has(`${a},${b}`);
        const down = !f.nodes[a].alive || !f.nodes[b].alive;
        el("line", {x1: p.x, y1: p.y, x2: q.x, y2: q.y, class: isCut ? "rk-link rk-cut" : "rk-link",
          stroke: isCut ? CUT : "#9e9e9e", "stroke-width": 1, "stroke-opacity": isCut ? 0.7 : 0.45,
          "stroke-dasharray": isCut ? "6 4" : down ? "2 3" : "none"}, linksG);
      }
    }
    for (const ns of f.nodes) {
      const s = nodeSpec[ns.id];
      const g = el("g", {class: `rk-node rk-${ns.role}`, "data-node": ns.id, cursor: "pointer"}, nodesG);
      el("circle", {cx: s.x, cy: s.y, r: s.r + 7, fill: "none", stroke: "#eeeeee", "stroke-width": 5}, g);
      const arc = el("path", {d: "", fill: "none", stroke: "#525252", "stroke-width": 5,
        "stroke-dasharray": ns.timer && !ns.timer[2] ? "3 2" : "none", class: "rk-timer"}, g);
      arcs[ns.id] = arc;
      const disconnected = ns.alive && !ns.connected;
      el("circle", {cx: s.x, cy: s.y, r: s.r, fill: ROLE_FILL[ns.role],
        stroke: disconnected ? CUT : ROLE_EDGE[ns.role], "stroke-width": ns.role === "Leader" ? 3 : 1.6,
        "stroke-dasharray": disconnected ? "5 3" : "none"}, g);
      const txt = (y, s2, size, bold) => {
        const e = el("text", {x: s.x, y, "text-anchor": "middle", "dominant-baseline": "central",
          "font-size": size, "font-weight": bold ? "bold" : "normal", fill: ns.alive ? "black" : "#757575",
          "pointer-events": "none"}, g);
        e.textContent = s2;
      };
      txt(s.y - s.r * 0.3, `S${ns.id}`, Math.max(9, s.r * 0.45), true);
      txt(s.y + s.r * 0.32, `T${ns.term}`, Math.max(8, s.r * 0.38), false);
      if (ns.role === "Candidate") {
        for (const peer of f.nodes) {
          if (peer.id === ns.id) continue;
          const q = nodeSpec[peer.id];
          const dx = q.x - s.x, dy = q.y - s.y, d = Math.hypot(dx, dy) || 1;
          el("circle", {cx: s.x + dx / d * s.r * 0.78, cy: s.y + dy / d * s.r * 0.78, r: 3,
            fill: ns.votes.includes(peer.id) ? "black" : "white", stroke: "black", "stroke-width": 0.7,
            "pointer-events": "none"}, g);
        }
      }
      g.addEventListener("click", (e) => { e.stopPropagation(); showMenu(ns.id, e); });
    }
    drawLogs(f);
  }

  function drawLogs(f) {
    const x0 = RING + 20, y0 = 40, n = f.nodes.length;
    const rowH = Math.min(34, (H - y0 - 10) / Math.max(n, 5));
    let lo = Infinity, hi = 0;
    for (const row of f.logs) {
      lo = Math.min(lo, row.first);
      hi = Math.max(hi, row.first + row.terms.length - 1);
    }
    if (!isFinite(lo) || hi < 1) { lo = 1; hi = 10; }
    hi = Math.max(hi, lo + 9);
    lo = Math.max(lo, hi - 19);
    const colW = Math.min(34, (W - x0 - 40) / (hi - lo + 1));
    const head = el("g", {class: "rk-log-index"}, logsG);
    for (let k = lo; k <= hi; k += hi - lo >= 20 ? 2 : 1) {
      const e = el("text", {x: x0 + 34 + (k - lo + 0.5) * colW, y: y0 - 8, "text-anchor": "middle",
        "font-size": 9, fill: "#616161"}, head);
      e.textContent = k;
    }
    f.logs.forEach((row, y) => {
      const ns = f.nodes[y];
      const cy = y0 + y * rowH;
      const label = el("text", {x: x0, y: cy + rowH * 0.4, "font-size": 11, "font-weight": "bold",
        "dominant-baseline": "central", fill: !ns.alive ? "#757575" : ns.connected ? "black" : CUT}, logsG);
      label.textContent = `S${y}`;
      el("circle", {cx: x0 - 8, cy: cy + rowH * 0.4, r: 4, fill: ROLE_FILL[ns.role], stroke: ROLE_EDGE[ns.role]},
         logsG);
      if (row.snapshot >= lo) {
        const w = (Math.min(row.snapshot, hi) - lo + 1) * colW;
        el("rect", {x: x0 + 34, y: cy, width: w - 3, height: rowH * 0.8, fill: "#e0e0e0", stroke: "#757575"},
           logsG);
      }
      row.terms.forEach((term, k) => {
        const index = row.first + k;
        if (index < lo || index > hi) return;
        const committed = index <= row.commit;
        const g = el("g", {class: committed ? "rk-entry rk-committed" : "rk-entry"}, logsG);
        el("rect", {x: x0 + 34 + (index - lo) * colW + 1, y: cy, width: colW - 3, height: rowH * 0.8,
          fill: termColor(term), "fill-opacity": committed ? 1 : 0.45, stroke: ns.alive ? "black" : "#9e9e9e",
          "stroke-width": committed ? 1.2 : 0.8, "stroke-dasharray": committed ? "none" : "4 3"}, g);
        const e = el("text", {x: x0 + 34 + (index - lo + 0.5) * colW - 0.5, y: cy + rowH * 0.4,
          "text-anchor": "middle", "dominant-baseline": "central", "font-size": Math.min(11, colW * 0.45)}, g);
        e.textContent = term;
      });
      if (row.next !== undefined) {
        const xn = x0 + 34 + (clamp(row.next, lo - 0.5, hi + 1) - lo + 0.5) * colW;
        el("path", {d: `M ${xn} ${cy + rowH * 0.82} l -4 6 l 8 0 z`, fill: "black"}, logsG);
        if (row.match >= lo) {
          el("circle", {cx: x0 + 34 + (Math.min(row.match, hi) - lo + 0.5) * colW, cy: cy + rowH * 0.92,
            r: 2.2, fill: "black"}, logsG);
        }
      }
    });
  }

  function messageShape(m) {
    const g = el("g", {class: `rk-message rk-${m.phase}`, "data-message": m.id, cursor: "pointer"});
    const color = METHOD[m.method] || "#666666";
    const reply = m.phase === "reply";
    el("line", {x1: 0, y1: 0, x2: 0, y2: 0, stroke: color, "stroke-width": 2.5, "stroke-opacity": 0.5,
      "stroke-linecap": "round"}, g);
    el("circle", {r: 6, fill: reply ? "white" : color, stroke: color, "stroke-width": 2,
      "fill-opacity": m.doomed ? 0.35 : 1, "stroke-opacity": m.doomed ? 0.35 : 1}, g);
    if (reply && m.ok !== null && m.ok !== undefined) {
      const e = el("text", {"text-anchor": "middle", "dominant-baseline": "central", "font-size": 10,
        "font-weight": "bold", "pointer-events": "none"}, g);
      e.textContent = m.ok ? "+" : "\u2212";
    }
    const tip = el("title", {}, g);
    tip.textContent = `${m.label} (${m.phase} ${m.src}\u2192${m.dst}); click to drop`;
    g.addEventListener("click", (e) => { e.stopPropagation(); hideMenu(); send({action: "drop", message: m.id}); });
    return g;
  }

  function where(id, n) {
    if (id < n) return nodeSpec[id];
    return {x: 18 + 22 * ((id - n) % 6), y: H - 18 - 22 * Math.floor((id - n) / 6), r: 8};  // clients
  }

  function animate(a, b) {
    const n = a.nodes.length;
    // Timer arcs drain (fill) smoothly.
    for (const ns of a.nodes) {
      const arc = arcs[ns.id];
      if (!arc) continue;
      const s = nodeSpec[ns.id];
      arc.setAttribute("d", ns.timer ? arcPath(s.x, s.y, s.r + 7, (t - ns.timer[0]) / ns.timer[1]) : "");
    }
    const live = messagesAt(a, b, t);
    for (const [key, g] of dots) {
      if (!live.has(key)) { g.remove(); dots.delete(key); }
    }
    for (const [key, m] of live) {
      let g = dots.get(key);
      if (!g) { g = messageShape(m); dots.set(key, g); msgsG.appendChild(g); }
      const p = where(m.src, n), q = where(m.dst, n);
      const dx = q.x - p.x, dy = q.y - p.y, d = Math.hypot(dx, dy) || 1;
      const ux = dx / d, uy = dy / d, sx = uy * 6, sy = -ux * 6;     // keep right: two lanes
      const span = m.arrive - m.sent;
      const frac = span <= 0 ? 1 : clamp((t - m.sent) / span, 0, 1);
      const x1 = p.x + ux * p.r + sx, y1 = p.y + uy * p.r + sy;
      const x2 = q.x - ux * q.r + sx, y2 = q.y - uy * q.r + sy;
      const x = x1 + (x2 - x1) * frac, y = y1 + (y2 - y1) * frac;
      const tail = Math.min(16, Math.hypot(x - x1, y - y1));
      const [line, circle, label] = g.children;
      line.setAttribute("x1", x - ux * tail); line.setAttribute("y1", y - uy * tail);
      line.setAttribute("x2", x); line.setAttribute("y2", y);
      circle.setAttribute("cx", x); circle.setAttribute("cy", y);
      if (label && label.tagName === "text") { label.setAttribute("x", x); label.setAttribute("y", y); }
    }
  }

  function onFrame() {
    const f = model.get("frame");
    if (!f || !f.nodes) return;
    root.rk.frames += 1;
    const prev = frames[frames.length - 1];
    if (!prev || !f.playing || f.t < prev.t || f.nodes.length !== prev.nodes.length) {
      frames = [f];              // a step, a click, a rewind: show it as it is
      t = f.t;
    } else {
      frames.push(f);
      while (frames.length > 2 && frames[1].t <= t) frames.shift();
    }
    if (f.nodes.length !== nodeSpec.length) layout();
    stale = true;
  }

  function tick(ts) {
    if (closed) return;
    const newest = frames[frames.length - 1];
    if (newest && (newest.playing || stale)) {
      stale = false;
      if (newest.playing && last !== null) {
        const dt = Math.min(0.25, (ts - last) / 1000);
        t += dt * (newest.rate || 0);
        const oldest = frames[0].t;
        const span = frames.length > 1 ? newest.t - frames[frames.length - 2].t : 0;
        if (t > newest.t) t = newest.t;                                 // never ahead of the kernel
        if (newest.t - t > 3 * span && span > 0) t = newest.t - span;   // fell behind: catch up
        if (t < oldest) t = oldest;
        while (frames.length > 2 && frames[1].t <= t) frames.shift();
        root.rk.animated += 1;
      }
      const [a, b] = bracket(frames, t);
      if (a !== drawnStatic) drawStatic(a);
      animate(a, b);
      root.dataset.time = t.toFixed(6);
    }
    last = ts;
    requestAnimationFrame(tick);
  }

  // Drag a box on the empty picture: the nodes inside and the others become two partition groups.
  let drag = null;
  const box = el("rect", {fill: "rgba(214,39,40,0.08)", stroke: CUT, "stroke-dasharray": "4 3",
    visibility: "hidden", class: "rk-select", "pointer-events": "none"}, svg);
  function svgPoint(e) {
    const m = svg.getScreenCTM();
    if (!m) return {x: 0, y: 0};
    const p = new DOMPoint(e.clientX, e.clientY).matrixTransform(m.inverse());
    return {x: p.x, y: p.y};
  }
  function boxOf(a, b) {
    return {x: Math.min(a.x, b.x), y: Math.min(a.y, b.y), width: Math.abs(a.x - b.x), height: Math.abs(a.y - b.y)};
  }
  svg.addEventListener("mousedown", (e) => {
    if (e.button !== 0 || e.target.closest("g.rk-node, g.rk-message")) return;
    drag = svgPoint(e);
  });
  svg.addEventListener("mousemove", (e) => {
    if (!drag) return;
    const r = boxOf(drag, svgPoint(e));
    for (const k in r) box.setAttribute(k, r[k]);
    box.setAttribute("visibility", r.width > 4 || r.height > 4 ? "visible" : "hidden");
  });
  window.addEventListener("mouseup", (e) => {
    if (!drag) return;
    const r = boxOf(drag, svgPoint(e));
    drag = null;
    box.setAttribute("visibility", "hidden");
    if (r.width < 5 && r.height < 5) return;
    const inside = [], outside = [];
    nodeSpec.forEach((s, i) => (s.x >= r.x && s.x <= r.x + r.width && s.y >= r.y && s.y <= r.y + r.height
                                ? inside : outside).push(i));
    if (inside.length && outside.length) send({action: "partition", groups: [inside, outside]});
  });

  root.addEventListener("keydown", (e) => {
    if (e.key === " " || e.key === "Spacebar") send({action: "play"});
    else if (e.key === "ArrowRight") send({action: e.shiftKey ? "tick" : "step"});
    else if (e.key === "Escape") hideMenu();
    else return;
    e.preventDefault();
    e.stopPropagation();
  });
  root.addEventListener("click", () => { hideMenu(); root.focus(); });
  model.on("change:positions", () => { layout(); drawnStatic = drawnKey = null; stale = true; });
  model.on("change:frame", onFrame);
  layout();
  onFrame();
  requestAnimationFrame(tick);
  return () => { closed = true; };
}

export default { render };
