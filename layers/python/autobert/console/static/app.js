// The runs console: a hash-routed single page (#/runs, #/runs/<id>, #/models, #/feedback) over the JSON API.
// It polls while it is open, so a run in progress updates without a reload.
import { render as renderGraph } from './graph.js';

const POLL_RUN_MS = 1500;
const POLL_LIST_MS = 2000;
const POLL_SLOW_MS = 4000;
const ACTIVE = new Set(['starting', 'running']);

// ------------------------------------------------------------------------------------------------------ helpers
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, options = {}) {
  const init = { headers: { Accept: 'application/json' }, ...options };
  if (options.body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(options.body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    setConnection(false);
    throw new Error('the local stack is not answering (is `autobert up` still running?)');
  }
  setConnection(true);
  let body = {};
  try { body = await response.json(); } catch { /* an empty or non-JSON body */ }
  if (!response.ok) throw new Error(body.message || `${response.status} ${response.statusText}`);
  return body;
}

const pad = (n) => String(n).padStart(2, '0');
function fmtTime(value) {
  if (value === null || value === undefined || value === '') return '–';
  const d = typeof value === 'number' ? new Date(value) : new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${pad(Math.round(seconds % 60))} s`;
  return `${Math.floor(m / 60)} h ${pad(m % 60)} min`;
}
const fmtScore = (v) => (typeof v === 'number' ? v.toFixed(3) : '–');
const badge = (status, text) => h('span', { class: `badge ${status || 'unknown'}`, 'data-status': status || 'unknown' },
  text || (status || 'unknown').replace('_', ' '));
const json = (value, cls = '') => h('pre', { class: `json ${cls}` }, JSON.stringify(value, null, 2));

function scoreChange(label, before, after) {
  if (typeof after !== 'number') return null;
  if (typeof before !== 'number') return h('span', {}, `${label} ${fmtScore(after)}`);
  const cls = after > before + 1e-9 ? 'delta-up' : after < before - 1e-9 ? 'delta-down' : '';
  return h('span', {}, `${label} ${fmtScore(before)} → `, h('span', { class: cls }, fmtScore(after)));
}

function gateCell(run) {
  const ev = run.gate;
  if (run.trigger === 'rollback') return h('span', { class: 'sub' }, `rollback to ${run.model_version || '?'}`);
  if (!ev) {
    if (run.status === 'failed') return h('span', { class: 'sub', title: run.cause || '' }, run.error || 'failed');
    return h('span', { class: 'sub' }, ACTIVE.has(run.status) ? 'pending' : '–');
  }
  const before = ev.before || {};
  const after = ev.after || {};
  return h('div', { class: 'evaluation', 'data-result': ev.result },
    badge(ev.result),
    h('div', { class: 'sub' }, scoreChange('acc', before.accuracy, after.accuracy)),
    h('div', { class: 'sub' }, scoreChange('F1', before.macro_f1, after.macro_f1)));
}

let toastTimer;
function toast(message, isError = false) {
  const el = document.getElementById('toast');
  el.textContent = message;
  el.className = `toast${isError ? ' error' : ''}`;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, isError ? 8000 : 4500);
}

function confirmDialog(title, text, okLabel) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = okLabel;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.returnValue = '';
    dialog.showModal();
  });
}

function setConnection(ok) {
  const el = document.getElementById('connection');
  el.dataset.state = ok ? 'ok' : 'error';
  el.textContent = ok ? `updated ${fmtTime(Date.now()).slice(11)}` : 'local stack not answering';
}

// ------------------------------------------------------------------------------------------------------ routing
let generation = 0;
let timer = null;
const view = () => document.getElementById('view');

function schedule(gen, fn, ms) {
  clearTimeout(timer);
  timer = setTimeout(() => { if (gen === generation) fn(); }, ms);
}

// Show what `render` makes of GET `path` in `body`, again every `ms` while page `gen` is the one shown (an error box
// when the request fails; the next poll tries again).
function poll(gen, body, path, render, ms) {
  const refresh = async () => {
    try {
      const data = await api(path);
      if (gen !== generation) return;
      body.replaceChildren(...[render(data)].flat());
    } catch (err) {
      if (gen !== generation) return;
      body.replaceChildren(errorBox(err));
    }
    schedule(gen, refresh, ms);
  };
  refresh();
}

function route() {
  generation += 1;
  clearTimeout(timer);
  const parts = (location.hash || '#/runs').replace(/^#\/?/, '').split('/');
  const tab = parts[0] || 'runs';
  for (const a of document.querySelectorAll('.tabs a')) a.classList.toggle('active', a.dataset.tab === tab);
  const gen = generation;
  view().replaceChildren();
  if (tab === 'runs' && parts[1]) runDetail(gen, decodeURIComponent(parts[1]));
  else if (tab === 'models') modelsPage(gen);
  else if (tab === 'feedback') feedbackPage(gen);
  else runsPage(gen);
}

function pageHead(title, hint, ...actions) {
  return h('div', { class: 'page-head' }, h('h1', {}, title), hint ? h('span', { class: 'hint' }, hint) : null,
    h('div', { class: 'actions' }, ...actions));
}

function errorBox(err) {
  return h('div', { class: 'error-box', role: 'alert' }, err.message || String(err));
}

async function startRetrain(button) {
  button.disabled = true;
  try {
    const result = await api('/api/retrain', { method: 'POST', body: {} });
    const trigger = result.trigger ? result.trigger.id : '';
    toast(`Retraining requested (${result.status}${trigger ? `, trigger ${trigger}` : ''}): the run appears in Runs.`);
    if (location.hash !== '#/runs') location.hash = '#/runs';
  } catch (err) {
    toast(`Could not start a run: ${err.message}`, true);
  } finally {
    button.disabled = false;
  }
}

const retrainButton = () => {
  const button = h('button', { class: 'btn btn-primary', id: 'start-retrain' }, 'Start retrain run');
  button.addEventListener('click', () => startRetrain(button));
  return button;
};

// ---------------------------------------------------------------------------------------------------- runs list
async function runsPage(gen) {
  const root = view();
  const body = h('div', { class: 'card' }, h('div', { class: 'empty' }, 'Loading runs…'));
  root.replaceChildren(pageHead('Runs', 'Executions of the retraining state machine', retrainButton()), body);
  poll(gen, body, '/api/runs', (data) => h('div', { class: 'table-scroll' }, runsTable(data.runs)), POLL_LIST_MS);
}

function runsTable(runs) {
  if (!runs.length) return h('div', { class: 'empty' }, 'No runs yet. A run starts on feedback, on schedule, or with “Start retrain run”.');
  const head = ['Run', 'Status', 'Trigger', 'Started', 'Ended', 'Duration', 'Dataset', 'Candidate', 'Gate'];
  return h('table', { class: 'grid runs', id: 'runs-table' },
    h('thead', {}, h('tr', {}, head.map((c) => h('th', { class: c === 'Duration' ? 'num' : null }, c)))),
    h('tbody', {}, runs.map((run) => {
      const row = h('tr', { class: 'clickable', 'data-run-id': run.run_id, 'data-status': run.status },
        h('td', {}, h('a', { href: `#/runs/${encodeURIComponent(run.run_id)}`, class: 'mono' }, run.run_id)),
        h('td', {}, badge(run.status)),
        h('td', {}, h('span', { class: 'tag' }, run.trigger || '–'), run.full ? h('span', { class: 'sub' }, ' full') : null),
        h('td', { class: 'time' }, fmtTime(run.started_at)),
        h('td', { class: 'time' }, fmtTime(run.finished_at)),
        h('td', { class: 'num' }, fmtDuration(run.duration_seconds)),
        h('td', { class: 'mono' }, run.dataset_version || '–'),
        h('td', { class: 'mono' }, run.trigger === 'rollback' ? '–' : run.model_version || '–'),
        h('td', {}, gateCell(run)));
      row.addEventListener('click', (ev) => {
        if (ev.target.closest('a')) return;
        location.hash = `#/runs/${encodeURIComponent(run.run_id)}`;
      });
      return row;
    })));
}

// --------------------------------------------------------------------------------------------------- run detail
let definitionCache = null;

async function runDetail(gen, runId) {
  const root = view();
  const ui = {
    summary: h('div', { class: 'card' }, h('div', { class: 'empty' }, 'Loading run…')),
    training: h('div', { class: 'card training', id: 'training', hidden: true }),
    graph: h('div', { class: 'graph-wrap', id: 'graph' }),
    panel: h('div', { class: 'card-body state-panel', id: 'state-panel' }),
    events: h('div', {}),
    message: h('div', {}),
  };
  const state = { selected: null, visit: null, expanded: new Set(), lastKey: '' };
  root.replaceChildren(
    h('div', { class: 'page-head' }, h('a', { href: '#/runs' }, '← Runs'), h('h1', { class: 'mono', id: 'run-title' }, runId),
      h('span', { id: 'run-status' })),
    ui.message, ui.summary, ui.training,
    h('div', { class: 'detail-grid' },
      h('div', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', {}, 'Graph'), legend()),
        ui.graph),
      h('div', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', {}, 'State')), ui.panel)),
    h('div', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', {}, 'Event history')), ui.events));

  const refresh = async () => {
    let run;
    try {
      if (!definitionCache) definitionCache = await api('/api/statemachine');
      run = await api(`/api/runs/${encodeURIComponent(runId)}`);
    } catch (err) {
      if (gen !== generation) return;
      ui.message.replaceChildren(errorBox(err));
      if (!/^no run/.test(err.message)) schedule(gen, refresh, POLL_SLOW_MS);
      return;
    }
    if (gen !== generation) return;
    ui.message.replaceChildren();
    const key = JSON.stringify([run.status, run.final, run.finished_at, run.events_total, run.states, run.gate,
      run.training]);
    if (key !== state.lastKey) {
      state.lastKey = key;
      drawRun(run, ui, state);
    }
    if (!run.final) schedule(gen, refresh, POLL_RUN_MS);
  };
  refresh();
}

function legend() {
  const item = (cls, label) => h('span', {}, h('i', { class: cls }), label);
  return h('div', { class: 'legend', style: 'margin-left:auto' }, item('succeeded', 'Succeeded'), item('failed', 'Failed'),
    item('running', 'Running'), item('not_reached', 'Not reached'), item('catch', 'Catch'));
}

function defaultSelection(run) {
  const entries = Object.values(run.states);
  const running = entries.find((s) => s.outcome === 'running');
  if (running) return running.name;
  const failed = entries.filter((s) => s.outcome === 'failed' && s.type !== 'Fail')
    .sort((a, b) => (a.visits.at(-1).entered || 0) - (b.visits.at(-1).entered || 0));
  if (failed.length) return failed[0].name;
  const visited = entries.filter((s) => s.visits.length)
    .sort((a, b) => (b.visits.at(-1).entered || 0) - (a.visits.at(-1).entered || 0));
  return visited.length ? visited[0].name : null;
}

function drawRun(run, ui, state) {
  document.getElementById('run-status').replaceChildren(badge(run.status));
  const item = (k, v, attrs = {}) => h('div', attrs, h('div', { class: 'k' }, k), h('div', { class: 'v' }, v));
  const ev = run.gate;
  ui.summary.replaceChildren(h('div', { class: 'card-body' },
    h('div', { class: 'summary' },
      item('Trigger', h('span', { class: 'tag' }, run.trigger || '–')),
      item('Started', fmtTime(run.started_at)),
      item('Ended', fmtTime(run.finished_at)),
      item('Duration', fmtDuration(run.duration_seconds), { id: 'run-duration' }),
      item('Dataset version', h('span', { class: 'mono' }, run.dataset_version || '–')),
      item(run.trigger === 'rollback' ? 'Rolled back to' : 'Candidate model', h('span', { class: 'mono' }, run.model_version || '–')),
      run.tuning_job ? item('Tuning job', h('span', { class: 'mono' }, run.tuning_job)) : null,
      item('Live model', h('span', { class: 'mono' },
        `${run.live_version_before || '–'}${run.live_version && run.live_version !== run.live_version_before ? ` → ${run.live_version}` : ''}`)),
      item('Gate', gateCell(run))),
    run.error ? h('div', { class: 'error-box', style: 'margin-top:14px', id: 'run-error' }, `${run.error}: ${run.cause || ''}`) : null,
    ev && ev.reasons && ev.reasons.length
      ? h('div', { class: 'sub', style: 'margin-top:10px' }, `Gate: ${ev.reasons.join('; ')}`) : null));

  drawTraining(run, ui);
  if (!state.selected || !run.states[state.selected]) state.selected = defaultSelection(run);
  const select = (name) => {
    state.selected = name;
    state.visit = null;
    drawGraph(run, ui, state, select);
    drawPanel(run, ui, state);
  };
  drawGraph(run, ui, state, select);
  drawPanel(run, ui, state);
  drawEvents(run, ui, state);
}

// The training job's progress as CheckTraining last read it from the job's log: epoch and step of the totals,
// samples/s, ETA, loss, and the validation scores of each finished epoch.
function drawTraining(run, ui) {
  const t = run.training;
  ui.training.hidden = !t;
  if (!t) {
    ui.training.replaceChildren();
    return;
  }
  const known = (v) => v !== null && v !== undefined;
  const stat = (n, l, id) => h('div', { class: 'stat' }, h('div', { class: 'n', id }, n), h('div', { class: 'l' }, l));
  const history = t.history || [];
  const epochDone = known(t.epoch) && history.some((e) => e.epoch === t.epoch);
  const body = h('div', { class: 'card-body' },
    h('div', { class: 'stat-row' },
      stat(known(t.epoch) ? `${t.epoch} / ${t.epochs}` : `${history.length} done`, 'epoch', 'training-epoch'),
      stat(known(t.step) ? `${t.step} / ${t.steps}` : '–', 'optimizer step', 'training-step'),
      stat(known(t.samples_per_second) ? t.samples_per_second.toFixed(1) : '–', 'samples/s', 'training-speed'),
      stat(t.active && known(t.eta_seconds) ? fmtDuration(t.eta_seconds) : '–',
        epochDone ? 'ETA (after validation)' : 'ETA (training steps)', 'training-eta'),
      stat(known(t.loss) ? t.loss.toFixed(3) : '–', 'train loss (epoch so far)', 'training-loss')),
    known(t.percent)
      ? h('div', { class: 'meter' }, h('div', { class: 'bar' }, h('span', { style: `width:${t.percent}%` })),
        h('span', { class: 'sub' }, `${t.percent}% of the training steps`))
      : null,
    history.length
      ? h('table', { class: 'grid', id: 'training-epochs', style: 'margin-top:14px' },
        h('thead', {}, h('tr', {}, ['Epoch', 'Train loss', 'Val accuracy', 'Val macro-F1', 'Samples/s']
          .map((c) => h('th', { class: c === 'Epoch' ? null : 'num' }, c)))),
        h('tbody', {}, history.map((e) => h('tr', { 'data-epoch': e.epoch },
          h('td', {}, String(e.epoch)),
          h('td', { class: 'num' }, fmtScore(e.train_loss)),
          h('td', { class: 'num' }, fmtScore(e.val_accuracy)),
          h('td', { class: 'num' }, fmtScore(e.val_macro_f1)),
          h('td', { class: 'num' }, known(e.samples_per_second) ? e.samples_per_second.toFixed(1) : '–')))))
      : h('p', { class: 'sub' }, 'No epoch finished yet: its validation scores appear here.'));
  ui.training.replaceChildren(
    h('div', { class: 'card-head' }, h('h2', {}, 'Training'), t.active ? badge('running') : null,
      h('span', { class: 'sub mono' }, t.job_name || ''),
      h('span', { class: 'sub', style: 'margin-left:auto' }, `from the job's log, as of ${fmtTime(t.observed_at)}`)),
    body);
}

function drawGraph(run, ui, state, select) {
  if (!definitionCache) return;
  renderGraph(ui.graph, definitionCache, run.states, new Set(run.transitions), state.selected, select);
  if (!run.has_history) {
    ui.graph.prepend(h('div', { class: 'sub', style: 'padding:0 12px 6px' },
      ACTIVE.has(run.status) ? 'Waiting for the first state to finish…' : 'No event history recorded for this run.'));
  }
}

function drawPanel(run, ui, state) {
  const s = run.states[state.selected];
  if (!s) {
    ui.panel.replaceChildren(h('div', { class: 'empty' }, 'Select a state in the graph.'));
    return;
  }
  const visits = s.visits;
  const index = state.visit === null ? visits.length - 1 : Math.min(state.visit, visits.length - 1);
  const v = visits[index];
  const children = [h('div', { style: 'display:flex;align-items:center;gap:10px' },
    h('h3', { id: 'state-name' }, s.name), h('span', { class: 'tag' }, s.type), badge(s.outcome))];
  if (!v) {
    children.push(h('p', { class: 'sub' }, 'Not reached in this run.'));
    ui.panel.replaceChildren(...children);
    return;
  }
  if (visits.length > 1) {
    // The rounds of a wait loop come folded into one line (views.fold_visits): it shows the last of them.
    const groups = s.visit_groups || visits.map((_, i) => ({ first: i, last: i, count: 1 }));
    const clock = (t) => fmtTime(t).slice(11);
    children.push(h('div', { class: 'visit-tabs' }, groups.map((g) => {
      const label = g.count > 1
        ? `× ${g.count} visits (${g.first + 1}–${g.last + 1}), ${clock(g.entered)} – ${clock(g.exited)}`
        : `Visit ${g.first + 1}`;
      const b = h('button', { class: index >= g.first && index <= g.last ? 'active' : '', 'data-visits': g.count,
        title: g.count > 1 ? `first entered ${fmtTime(g.entered)}, last exited ${fmtTime(g.exited)}` : null }, label);
      b.addEventListener('click', () => { state.visit = g.last; drawPanel(run, ui, state); });
      return b;
    })));
  }
  const kv = (k, value) => [h('div', { class: 'k' }, k), h('div', {}, value)];
  const grid = h('div', { class: 'kv' });
  grid.append(...kv('Status', badge(v.status)), ...kv('Entered', fmtTime(v.entered)), ...kv('Exited', fmtTime(v.exited)),
    ...kv('Duration', v.seconds !== undefined ? fmtDuration(v.seconds) : v.status === 'running' ? 'in progress' : '–'));
  if (v.retries) grid.append(...kv('Retries', String(v.retries)));
  if (v.caught) grid.append(...kv('Caught', `error handled, next: ${v.caught_next || '?'}`));
  children.push(grid);
  const asl = definitionCache && definitionCache.States[s.name];
  if (v.inferred) children.push(h('p', { class: 'sub' }, asl && asl.Type === 'Wait' && asl.Seconds
    ? `Waiting (${asl.Seconds} s on AWS) before the next step.` : 'In progress: its output appears when it finishes.'));
  if (v.error) {
    children.push(h('div', { class: 'json-block', id: 'state-error' }, h('div', { class: 'label' }, 'Error'),
      json({ Error: v.error, Cause: v.cause }, 'error')));
  }
  for (const r of v.retried_errors || []) {
    children.push(h('div', { class: 'json-block' }, h('div', { class: 'label' }, `Retried after (${fmtTime(r.at)})`),
      json({ Error: r.error, Cause: r.cause }, 'error')));
  }
  if (v.input !== undefined) children.push(h('div', { class: 'json-block', id: 'state-input' }, h('div', { class: 'label' }, 'Input'), json(v.input)));
  if (v.output !== undefined) children.push(h('div', { class: 'json-block', id: 'state-output' }, h('div', { class: 'label' }, 'Output'), json(v.output)));
  ui.panel.replaceChildren(...children);
}

function eventDetail(e) {
  const out = {};
  if (e.state && e.state.input !== undefined) out.input = e.state.input;
  if (e.state && e.state.output !== undefined) out.output = e.state.output;
  if (e.input !== undefined) out.input = e.input;
  if (e.output !== undefined) out.output = e.output;
  if (e.Error !== undefined) { out.error = e.Error; out.cause = e.Cause; }
  if (e.retry) out.retry = e.retry;
  if (e.catch) out.catch = e.catch;
  return out;
}

function drawEvents(run, ui, state) {
  if (!run.events.length) {
    ui.events.replaceChildren(h('div', { class: 'empty' }, 'No events yet.'));
    return;
  }
  const t0 = run.first_event_at;
  const rows = [];
  run.events.forEach((e, i) => {
    const id = run.events_offset + i + 1;
    const failed = /Failed|Caught/.test(e.type);
    const row = h('tr', { class: `clickable${failed ? ' ev-failed' : ''}`, 'data-event': e.type },
      h('td', { class: 'num' }, String(id)),
      h('td', { class: 'type-cell' }, h('span', { class: `ev-type ${e.type}` }, e.type)),
      h('td', {}, e.state ? e.state.name : '–'),
      h('td', { class: 'num' }, `${(e.timestamp - t0).toLocaleString('en-US')} ms`),
      h('td', {}, fmtTime(e.timestamp)));
    rows.push(row);
    const detail = h('tr', { class: 'ev-detail' }, h('td', {}), h('td', { colspan: 4 }, json(eventDetail(e))));
    detail.hidden = !state.expanded.has(id);
    rows.push(detail);
    row.addEventListener('click', () => {
      detail.hidden = !detail.hidden;
      if (detail.hidden) state.expanded.delete(id); else state.expanded.add(id);
    });
  });
  const note = run.events_offset
    ? h('div', { class: 'sub', style: 'padding:8px 12px' }, `Showing the last ${run.events.length} of ${run.events_total} events.`)
    : null;
  ui.events.replaceChildren(note || '', h('table', { class: 'grid events' },
    h('thead', {}, h('tr', {}, ['ID', 'Type', 'Step', 'Elapsed', 'Timestamp'].map((c) => h('th', { class: c === 'ID' || c === 'Elapsed' ? 'num' : null }, c)))),
    h('tbody', {}, rows)));
}

// ------------------------------------------------------------------------------------------------------- models
async function modelsPage(gen) {
  const root = view();
  const body = h('div', { class: 'card' }, h('div', { class: 'empty' }, 'Loading models…'));
  root.replaceChildren(pageHead('Models', 'The model registry: every trained version, its scores and status'), body);
  const refresh = async () => {
    try {
      const data = await api('/api/models');
      if (gen !== generation) return;
      body.replaceChildren(h('div', { class: 'table-scroll' }, modelsTable(data, refresh)));
    } catch (err) {
      if (gen !== generation) return;
      body.replaceChildren(errorBox(err));
    }
    schedule(gen, refresh, POLL_SLOW_MS);
  };
  refresh();
}

function modelsTable(data, refresh) {
  if (!data.models.length) return h('div', { class: 'empty' }, 'No model yet: the first run trains one.');
  const head = ['Version', 'Status', 'Created', 'Dataset', 'Run', 'Test acc', 'Test F1', 'Holdout acc', 'Holdout F1', 'Labels', ''];
  const numeric = new Set(head.slice(5, 10));
  return h('table', { class: 'grid models', id: 'models-table' },
    h('thead', {}, h('tr', {}, head.map((c) => h('th', { class: numeric.has(c) ? 'num' : null }, c)))),
    h('tbody', {}, data.models.map((m) => {
      let action = null;
      if (m.live) action = h('span', { class: 'sub' }, 'serving now');
      else if (m.status === 'rejected') action = h('span', { class: 'sub', title: 'Rejected by the promotion gate; `autobert rollback` can still force it live' }, 'gate said no');
      else if (m.can_roll_back) {
        action = h('button', { class: 'btn btn-small btn-danger', 'data-rollback': m.version }, 'Roll back');
        action.addEventListener('click', () => rollback(m, data.live, action, refresh));
      }
      return h('tr', { 'data-version': m.version, 'data-status': m.status, 'data-live': m.live ? 'true' : 'false' },
        h('td', { class: 'mono' }, m.version),
        h('td', {}, badge(m.live ? 'live' : m.status)),
        h('td', { class: 'time' }, fmtTime(m.created_at)),
        h('td', { class: 'mono' }, m.dataset_version || '–'),
        h('td', {}, m.run_id ? h('a', { class: 'mono', href: `#/runs/${encodeURIComponent(m.run_id)}` }, m.run_id) : '–'),
        h('td', { class: 'num' }, fmtScore(m.metrics.accuracy)),
        h('td', { class: 'num' }, fmtScore(m.metrics.macro_f1)),
        h('td', { class: 'num' }, fmtScore(m.holdout && m.holdout.accuracy)),
        h('td', { class: 'num' }, fmtScore(m.holdout && m.holdout.macro_f1)),
        h('td', { class: 'num' }, m.labels ? String(m.labels) : '–'),
        h('td', {}, action));
    })));
}

async function rollback(model, live, button, refresh) {
  const current = live ? live.version : 'none';
  const ok = await confirmDialog(`Roll back to ${model.version}?`,
    `The endpoint swaps to ${model.version} with no downtime and ${current} is retired. The rollback is recorded as a run.`,
    'Roll back');
  if (!ok) return;
  button.disabled = true;
  button.textContent = 'Rolling back…';
  try {
    const result = await api(`/api/models/${encodeURIComponent(model.version)}/rollback`, { method: 'POST', body: {} });
    toast(`${result.live} is live again.`);
    refreshHeader();
  } catch (err) {
    toast(`Rollback failed: ${err.message}`, true);
  }
  refresh();
}

// ----------------------------------------------------------------------------------------------------- feedback
async function feedbackPage(gen) {
  const root = view();
  const body = h('div', {}, h('div', { class: 'card' }, h('div', { class: 'empty' }, 'Loading feedback…')));
  root.replaceChildren(pageHead('Feedback', 'Corrections received since the last merge into the dataset', retrainButton()), body);
  poll(gen, body, '/api/feedback', feedbackCards, POLL_SLOW_MS);
}

function feedbackCards(data) {
  const pct = Math.min(100, (100 * data.total) / Math.max(1, data.threshold));
  const stat = (n, l, id) => h('div', { class: 'stat' }, h('div', { class: 'n', id }, n), h('div', { class: 'l' }, l));
  const summary = h('div', { class: 'card' }, h('div', { class: 'card-body' },
    h('div', { class: 'stat-row' },
      stat(String(data.total), 'items since the last merge', 'feedback-total'),
      stat(String(data.threshold), 'items start a run (threshold)'),
      stat(String(data.labels.length), 'labels'),
      stat(h('span', { class: 'mono', style: 'font-size:15px' }, data.dataset_version || '–'),
        data.merged_at ? `dataset version, merged ${fmtTime(data.merged_at)}` : 'dataset version')),
    h('div', { class: 'meter' }, h('div', { class: 'bar' }, h('span', { style: `width:${pct}%` })),
      h('span', { class: 'sub' }, `${data.total} / ${data.threshold} until a threshold run`)),
    data.unreadable ? h('p', { class: 'sub' }, `${data.unreadable} item(s) could not be read; the merge reports them as invalid.`) : null));
  const max = Math.max(1, ...data.labels.map((l) => l.count));
  const table = h('div', { class: 'card' },
    h('div', { class: 'card-head' }, h('h2', {}, 'Per label')),
    data.labels.length
      ? h('table', { class: 'grid', id: 'feedback-table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Label'), h('th', { class: 'num' }, 'Items'), h('th', { style: 'width:50%' }, ''))),
        h('tbody', {}, data.labels.map((l) => h('tr', { 'data-label': l.label },
          h('td', { class: 'mono' }, l.label), h('td', { class: 'num' }, String(l.count)),
          h('td', {}, h('div', { class: 'bar' }, h('span', { style: `width:${(100 * l.count) / max}%` })))))))
      : h('div', { class: 'empty' }, 'No feedback since the last merge.'));
  return [summary, table];
}

// ------------------------------------------------------------------------------------------------------- header
async function refreshHeader() {
  try {
    const health = await api('/api/health');
    const live = health.live;
    document.getElementById('live-model').textContent = `live model: ${live ? live.version : 'none'}`;
  } catch { /* setConnection already shows it */ }
}

window.addEventListener('hashchange', route);
route();
refreshHeader();
setInterval(refreshHeader, POLL_SLOW_MS);
