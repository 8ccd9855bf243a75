// The state machine graph, laid out from the ASL definition itself: a layered top-to-bottom drawing following
// Next, Choices, Default and Catch edges (longest-path layers, dummy nodes for long edges, barycentre ordering),
// drawn as SVG. Loops (a Choice going back to a Wait) are drawn on the left, Catch edges as a dashed rail on the
// right, so the happy path reads straight down.

const SVG = 'http://www.w3.org/2000/svg';
const NODE_W = 164;
const NODE_H = 44;
const DUMMY_W = 14;
const GAP_X = 22;
const GAP_Y = 30;
const MARGIN = 48;

export function edgesOf(definition) {
  const edges = [];
  const seen = new Set();
  const add = (from, to, kind, title) => {
    const key = `${from}>${to}>${kind === 'catch' ? 'catch' : 'flow'}`;
    if (!to || seen.has(key)) return;
    seen.add(key);
    edges.push({ from, to, kind, title, main: kind === 'next' || (kind === 'choice' && main) });
  };
  let main = false;
  for (const [name, state] of Object.entries(definition.States || {})) {
    if (state.Next) add(name, state.Next, 'next', 'Next');
    (state.Choices || []).forEach((choice, i) => {
      main = i === 0; // the first rule is the expected way on: the drawing keeps it straight
      add(name, choice.Next, 'choice', describeRule(choice));
    });
    if (state.Default) add(name, state.Default, 'default', 'Default');
    for (const c of state.Catch || []) add(name, c.Next, 'catch', `Catch ${(c.ErrorEquals || []).join(', ')}`);
  }
  return edges;
}

function describeRule(rule) {
  if (rule.And) return rule.And.map(describeRule).join(' and ');
  if (rule.Or) return rule.Or.map(describeRule).join(' or ');
  if (rule.Not) return `not (${describeRule(rule.Not)})`;
  const op = Object.keys(rule).find((k) => k !== 'Variable' && k !== 'Next');
  return `${rule.Variable} ${op} ${JSON.stringify(rule[op])}`;
}

// Layers, order and coordinates: {nodes: Map(name → {x, y, layer}), dummies, edges (with back/points), width, height}
export function layout(definition) {
  const names = Object.keys(definition.States || {});
  const edges = edgesOf(definition).filter((e) => names.includes(e.to));
  const out = new Map(names.map((n) => [n, []]));
  for (const e of edges) out.get(e.from).push(e);
  for (const list of out.values()) list.sort((a, b) => (a.kind === 'catch') - (b.kind === 'catch'));

  // Back edges: edges to a state on the DFS stack (loops); depth-first from StartAt, flow edges before catches.
  const state = new Map();
  const order = [];
  const visit = (n) => {
    state.set(n, 'open');
    order.push(n);
    for (const e of out.get(n)) {
      if (state.get(e.to) === 'open') e.back = true;
      else if (!state.has(e.to)) visit(e.to);
    }
    state.set(n, 'done');
  };
  if (names.includes(definition.StartAt)) visit(definition.StartAt);
  for (const n of names) if (!state.has(n)) visit(n);

  // Longest-path layering over the forward edges.
  const layer = new Map(names.map((n) => [n, 0]));
  const indeg = new Map(names.map((n) => [n, 0]));
  for (const e of edges) if (!e.back) indeg.set(e.to, indeg.get(e.to) + 1);
  const queue = names.filter((n) => indeg.get(n) === 0);
  while (queue.length) {
    const n = queue.shift();
    for (const e of out.get(n)) {
      if (e.back) continue;
      layer.set(e.to, Math.max(layer.get(e.to), layer.get(n) + 1));
      indeg.set(e.to, indeg.get(e.to) - 1);
      if (indeg.get(e.to) === 0) queue.push(e.to);
    }
  }

  // Rows of real and dummy nodes; long forward flow edges get one dummy per layer they cross.
  const depth = Math.max(0, ...layer.values()) + 1;
  const rows = Array.from({ length: depth }, () => []);
  const items = new Map();
  const firstSeen = new Map(order.map((n, i) => [n, i]));
  for (const n of [...names].sort((a, b) => firstSeen.get(a) - firstSeen.get(b))) {
    const item = { id: n, real: true, layer: layer.get(n), width: NODE_W, preds: [], succs: [] };
    items.set(n, item);
    rows[item.layer].push(item);
  }
  for (const e of edges) {
    if (e.back || e.kind === 'catch') continue;
    let prev = items.get(e.from);
    const w = e.main ? 8 : 1;
    e.chain = [];
    for (let l = layer.get(e.from) + 1; l < layer.get(e.to); l += 1) {
      const dummy = { id: `${e.from}>${e.to}#${l}`, real: false, layer: l, width: DUMMY_W, preds: [prev], succs: [],
        w: { [prev.id]: Math.max(w, 2) } };
      prev.w = prev.w || {};
      prev.w[dummy.id] = Math.max(w, 2);
      prev.succs.push(dummy);
      rows[l].push(dummy);
      items.set(dummy.id, dummy);
      e.chain.push(dummy);
      prev = dummy;
    }
    const target = items.get(e.to);
    prev.succs.push(target);
    target.preds.push(prev);
    prev.w = prev.w || {};
    target.w = target.w || {};
    prev.w[target.id] = Math.max(prev.w[target.id] || 0, e.chain.length ? Math.max(w, 2) : w);
    target.w[prev.id] = prev.w[target.id];
  }

  // Ordering: barycentre sweeps down and up.
  const pos = (item) => rows[item.layer].indexOf(item);
  const bary = (item, side) => {
    const ns = item[side];
    return ns.length ? ns.reduce((s, n) => s + pos(n), 0) / ns.length : pos(item);
  };
  for (let iter = 0; iter < 6; iter += 1) {
    const down = iter % 2 === 0;
    const range = down ? [...rows.keys()].slice(1) : [...rows.keys()].reverse().slice(1);
    for (const l of range) {
      const keyed = rows[l].map((item) => [bary(item, down ? 'preds' : 'succs'), pos(item), item]);
      keyed.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      rows[l] = keyed.map((k) => k[2]);
    }
  }

  // Coordinates: centre each item over its neighbours, then push apart to keep the gaps.
  const x = new Map();
  for (const row of rows) {
    let cursor = 0;
    const width = row.reduce((s, it) => s + it.width, 0) + GAP_X * (row.length - 1);
    for (const item of row) {
      x.set(item, cursor - width / 2 + item.width / 2);
      cursor += item.width + GAP_X;
    }
  }
  // Priority placement: the most strongly connected items (the main path, long edges) sit exactly over their
  // neighbours; the others make room around them, keeping the order and the gaps.
  const weight = (a, b) => (a.w && a.w[b.id]) || 1;
  const sep = (a, b) => (a.width + b.width) / 2 + GAP_X;
  const place = (row, side) => {
    const n = row.length;
    const xs = row.map((item) => x.get(item));
    const wanted = row.map((item, i) => {
      const ns = item[side];
      if (!ns.length) return xs[i];
      const total = ns.reduce((s, m) => s + weight(item, m), 0);
      return ns.reduce((s, m) => s + weight(item, m) * x.get(m), 0) / total;
    });
    const priority = row.map((item) => item[side].reduce((s, m) => s + weight(item, m), 0) + (item.real ? 0 : 1.5));
    const fixed = new Array(n).fill(false);
    const order = [...row.keys()].sort((a, b) => priority[b] - priority[a] || a - b);
    for (const i of order) {
      let lo = -Infinity;
      let hi = Infinity;
      for (let j = i - 1, need = 0; j >= 0; j -= 1) {
        need += sep(row[j], row[j + 1]);
        if (fixed[j]) { lo = xs[j] + need; break; }
      }
      for (let j = i + 1, need = 0; j < n; j += 1) {
        need += sep(row[j - 1], row[j]);
        if (fixed[j]) { hi = xs[j] - need; break; }
      }
      xs[i] = Math.min(Math.max(wanted[i], lo), hi);
      fixed[i] = true;
      for (let k = i - 1; k >= 0 && !fixed[k]; k -= 1) xs[k] = Math.min(xs[k], xs[k + 1] - sep(row[k], row[k + 1]));
      for (let k = i + 1; k < n && !fixed[k]; k += 1) xs[k] = Math.max(xs[k], xs[k - 1] + sep(row[k - 1], row[k]));
    }
    row.forEach((item, i) => x.set(item, xs[i]));
  };
  for (let iter = 0; iter < 8; iter += 1) {
    if (iter % 2 === 0) for (const row of rows.slice(1)) place(row, 'preds');
    else for (const row of [...rows].reverse().slice(1)) place(row, 'succs');
  }
  for (const row of rows.slice(1)) place(row, 'preds');

  const minX = Math.min(...[...x.values()].map((v) => v - NODE_W / 2));
  const maxX = Math.max(...[...x.values()].map((v) => v + NODE_W / 2));
  const nodes = new Map();
  for (const item of items.values()) {
    item.x = x.get(item) - minX + MARGIN + 24;
    item.y = MARGIN + item.layer * (NODE_H + GAP_Y);
    if (item.real) nodes.set(item.id, item);
  }
  const width = maxX - minX + 2 * MARGIN + 24 + 40;
  const height = MARGIN + depth * (NODE_H + GAP_Y) + 8;
  return { nodes, edges, width, height, railX: maxX - minX + MARGIN + 24 + 30 };
}

function el(tag, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function flowPath(points) {
  // A smooth vertical curve through the points (source bottom, dummy centres, target top).
  let d = `M ${points[0][0]} ${points[0][1]}`;
  for (let i = 1; i < points.length; i += 1) {
    const [x0, y0] = points[i - 1];
    const [x1, y1] = points[i];
    const my = (y0 + y1) / 2;
    d += ` C ${x0} ${my}, ${x1} ${my}, ${x1} ${y1}`;
  }
  return d;
}

// Draw into `container`; `outcomes` maps state name → {outcome, visits}; `taken` holds the transitions the run took
// ("from>to", or "from>to#catch" for a caught error); `onSelect(name)` on a click.
export function render(container, definition, outcomes, taken, selected, onSelect) {
  const g = layout(definition);
  const svg = el('svg', { class: 'sfn', viewBox: `0 0 ${g.width} ${g.height}`, style: `max-width:${g.width}px`,
    role: 'img', 'aria-label': 'State machine graph' });
  const defs = el('defs', {}, svg);
  for (const [id, color] of [['arrow', '#8a94a6'], ['arrow-taken', '#344054'], ['arrow-catch', '#e8590c']]) {
    const marker = el('marker', { id, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
      orient: 'auto-start-reverse' }, defs);
    el('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: color }, marker);
  }
  const edgesLayer = el('g', { class: 'edges' }, svg);
  const nodesLayer = el('g', { class: 'nodes' }, svg);
  const top = (n) => [n.x, n.y];
  const bottom = (n) => [n.x, n.y + NODE_H];

  const start = g.nodes.get(definition.StartAt);
  if (start) {
    const sg = el('g', { class: 'start' }, nodesLayer);
    el('rect', { x: start.x - 26, y: start.y - 38, width: 52, height: 20, rx: 10 }, sg);
    const t = el('text', { x: start.x, y: start.y - 24.5, 'text-anchor': 'middle' }, sg);
    t.textContent = 'START';
    el('path', { class: 'edge', d: `M ${start.x} ${start.y - 18} L ${start.x} ${start.y}`, 'marker-end': 'url(#arrow)' },
      edgesLayer);
  }

  const catchPath = (a, b) => {
    const [sx, sy] = [a.x + NODE_W / 2, a.y + NODE_H / 2];
    const [tx, ty] = [b.x + NODE_W / 2, b.y + NODE_H / 2];
    const r = g.railX;
    return `M ${sx} ${sy} L ${r - 8} ${sy} Q ${r} ${sy} ${r} ${sy + 8} L ${r} ${ty - 8} Q ${r} ${ty} ${r - 8} ${ty} L ${tx} ${ty}`;
  };
  // Catch edges share one rail per target: the stubs and the rail are drawn once, so the dashes line up; a catch
  // the run took is drawn over them, solid.
  const rails = new Map();
  for (const e of g.edges) {
    if (e.kind !== 'catch') continue;
    if (!rails.has(e.to)) rails.set(e.to, []);
    rails.get(e.to).push(e);
  }
  for (const [target, group] of rails) {
    const b = g.nodes.get(target);
    const r = g.railX;
    const ty = b.y + NODE_H / 2;
    const top = Math.min(...group.map((e) => g.nodes.get(e.from).y + NODE_H / 2));
    for (const e of group) {
      const a = g.nodes.get(e.from);
      const sy = a.y + NODE_H / 2;
      const stub = el('path', { class: 'edge catch', d: `M ${a.x + NODE_W / 2} ${sy} L ${r} ${sy}`, 'data-from': e.from,
        'data-to': e.to, 'data-kind': 'catch' }, edgesLayer);
      el('title', {}, stub).textContent = `${e.from} → ${e.to}: ${e.title}`;
    }
    const bottom = Math.max(ty, ...group.map((e) => g.nodes.get(e.from).y + NODE_H / 2));
    el('path', { class: 'edge catch rail', d: `M ${r} ${top} L ${r} ${bottom}` }, edgesLayer);
    el('path', { class: 'edge catch', d: `M ${r} ${ty} L ${b.x + NODE_W / 2} ${ty}`, 'marker-end': 'url(#arrow-catch)' },
      edgesLayer);
    for (const e of group) {
      if (taken.has(`${e.from}>${e.to}#catch`)) {
        el('path', { class: 'edge catch taken', d: catchPath(g.nodes.get(e.from), b), 'marker-end': 'url(#arrow-catch)',
          'data-from': e.from, 'data-to': e.to, 'data-kind': 'catch' }, edgesLayer);
      }
    }
  }

  for (const e of g.edges) {
    if (e.kind === 'catch') continue;
    const a = g.nodes.get(e.from);
    const b = g.nodes.get(e.to);
    const took = taken.has(`${e.from}>${e.to}`);
    let d;
    let cls = 'edge';
    if (e.back) {
      cls += ' back';
      const [sx, sy] = [a.x - NODE_W / 2, a.y + NODE_H / 2];
      const [tx, ty] = [b.x - NODE_W / 2, b.y + NODE_H / 2];
      const left = Math.min(sx, tx) - 34;
      d = `M ${sx} ${sy} C ${left} ${sy}, ${left} ${ty}, ${tx} ${ty}`;
    } else {
      d = flowPath([bottom(a), ...(e.chain || []).map((m) => [m.x, m.y + NODE_H / 2]), top(b)]);
    }
    if (took) cls += ' taken';
    const path = el('path', { class: cls, d, 'marker-end': `url(#${took ? 'arrow-taken' : 'arrow'})`, 'data-from': e.from,
      'data-to': e.to, 'data-kind': e.kind }, edgesLayer);
    el('title', {}, path).textContent = `${e.from} → ${e.to}: ${e.title}`;
  }

  for (const [name, n] of g.nodes) {
    const info = outcomes[name] || { outcome: 'not_reached', visits: [] };
    const type = (definition.States[name] || {}).Type || '';
    const grp = el('g', { class: `node ${info.outcome}${name === selected ? ' selected' : ''}`, 'data-state': name,
      'data-outcome': info.outcome, tabindex: 0, role: 'button', 'aria-label': `${name}: ${info.outcome.replace('_', ' ')}` },
    nodesLayer);
    const rx = type === 'Choice' ? 22 : type === 'Succeed' || type === 'Fail' ? 22 : 7;
    el('rect', { x: n.x - NODE_W / 2, y: n.y, width: NODE_W, height: NODE_H, rx }, grp);
    el('text', { class: 'name', x: n.x, y: n.y + 19, 'text-anchor': 'middle' }, grp).textContent = name;
    el('text', { class: 'type', x: n.x, y: n.y + 34, 'text-anchor': 'middle' }, grp).textContent = type;
    const count = info.visits.length;
    if (count > 1) {
      el('text', { class: 'visits', x: n.x + NODE_W / 2 + 6, y: n.y + 14 }, grp).textContent = `×${count}`;
    }
    el('title', {}, grp).textContent = `${name} (${type}): ${info.outcome.replace('_', ' ')}`;
    grp.addEventListener('click', () => onSelect(name));
    grp.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') onSelect(name); });
  }
  container.replaceChildren(svg);
  return svg;
}
