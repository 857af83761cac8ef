// VirtuaLinux dashboard: renders the live state vc-manager pushes over Server-Sent Events
// (/api/events: one snapshot, then one change per object). Vanilla JS, no build step.
// Safety rule: data from the store only ever reaches the page as text (textContent / text nodes)
// or as attribute values set through the DOM; never through innerHTML or as markup.

const KINDS = ['PhysicalNode', 'VirtualCluster', 'VirtualNode', 'Volume', 'Migration', 'Event'];
const MAX_EVENTS = 50;
const state = Object.fromEntries(KINDS.map((k) => [k, new Map()]));
const $ = (id) => document.getElementById(id);

const keyOf = (o) => (o.namespace ? `${o.namespace}/${o.name}` : o.name);
const byName = (a, b) => keyOf(a).localeCompare(keyOf(b), undefined, { numeric: true });

/** Builds an element: props are DOM properties (class, dataset, title, hue...); children are nodes or text. */
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'hue') el.style.setProperty('--hue', String(v));
    else if (k === 'width') el.style.width = `${Math.max(0, Math.min(100, v))}%`;
    else if (k === 'onclick') el.addEventListener('click', v);
    else el[k] = v;
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// ---- formatting ----

function bytes(n) {
  if (n === undefined || n === null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v >= 100 || i === 0 || Number.isInteger(v) ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}
const rate = (n) => `${bytes(n)}/s`;
const mib = (n) => (n >= 1024 ? `${(n / 1024).toFixed(n % 1024 ? 1 : 0)} GiB` : `${n} MiB`);
function clock(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString([], { hour12: false });
}
function hueOf(text) {
  let x = 2166136261;
  for (let i = 0; i < text.length; i++) { x ^= text.charCodeAt(i); x = Math.imul(x, 16777619); }
  return (x >>> 0) % 360;
}
const vcHue = (namespace, cluster) => hueOf(`${namespace ?? 'default'}/${cluster}`);

// ---- views ----

/** Where a VM is: the node it runs on, else the node it is bound to. */
const whereIs = (vn) => vn.host || vn.physicalNode || '';

function inFlight() {
  return [...state.Migration.values()].filter((m) => m.phase === 'Pending' || m.phase === 'Running');
}

function bar(label, used, cap, figure) {
  const pct = cap > 0 ? (100 * used) / cap : 0;
  return [
    h('span', { class: 'label' }, label),
    h('div', { class: `bar${pct > 100 ? ' full' : pct >= 85 ? ' high' : ''}`, title: `${label}: ${figure}` }, h('span', { width: pct })),
    h('span', { class: 'figure' }, figure),
  ];
}

function vmChip(vn, migration, ghost) {
  const key = keyOf(vn);
  const classes = ['vm', `phase-${vn.phase ?? 'Pending'}`];
  if (migration && !ghost) classes.push('migrating');
  if (ghost) classes.push('ghost');
  if (selectedVm === key && !ghost) classes.push('selected');
  const title = [`${key} (cluster ${vn.cluster})`, `phase ${vn.phase ?? 'Pending'}`, vn.ip && `ip ${vn.ip}`,
    `${vn.vcpus} vCPU, ${vn.memoryMiB} MiB`, vn.message].filter(Boolean).join('\n');
  return h('div', {
    class: classes.join(' '), hue: vcHue(vn.namespace, vn.cluster), title,
    dataset: ghost ? { ghost: key } : { vm: key, cluster: `${vn.namespace ?? 'default'}/${vn.cluster}`, phase: vn.phase ?? 'Pending' },
    onclick: ghost ? undefined : () => selectVm(key),
  },
  h('span', { class: 'vm-name' }, vn.name),
  h('span', { class: 'vm-meta' }, h('span', { class: 'phase-dot' }), ghost ? 'incoming' : (vn.phase ?? 'Pending'), vn.ip && !ghost ? ` · ${vn.ip}` : ''),
  migration && !ghost ? h('span', { class: 'mig' }, `→ ${migration.targetNode}`) : null,
  ghost ? h('span', { class: 'mig' }, `← ${migration.sourceNode ?? whereIs(vn)}`) : null);
}

function renderMap() {
  const vns = [...state.VirtualNode.values()].sort(byName);
  const moving = new Map(inFlight().map((m) => [`${m.namespace}/${m.virtualNode}`, m]));
  const nodes = [...state.PhysicalNode.values()].sort(byName);
  const known = new Set(nodes.map((n) => n.name));
  const boxes = nodes.map((pn) => {
    const here = vns.filter((vn) => whereIs(vn) === pn.name);
    const incoming = [...moving.values()].filter((m) => m.targetNode === pn.name)
      .map((m) => [state.VirtualNode.get(`${m.namespace}/${m.virtualNode}`), m]).filter(([vn]) => vn && whereIs(vn) !== pn.name);
    const cap = pn.capacity ?? { cores: 0, memoryMiB: 0 };
    const used = pn.allocated ?? { cores: 0, memoryMiB: 0, vms: 0 };
    const ready = pn.ready?.status === 'True';
    const badges = [
      h('span', { class: `badge ${ready ? 'ok' : 'bad'}`, title: pn.ready?.message ?? 'not probed yet' }, ready ? 'Ready' : (pn.ready?.reason ?? 'Unknown')),
      pn.unschedulable ? h('span', { class: 'badge warn' }, 'cordoned') : null,
      pn.deleting ? h('span', { class: 'badge bad' }, 'deleting') : null,
    ];
    return h('div', { class: `node${pn.unschedulable ? ' cordoned' : ''}${ready ? '' : ' notready'}`, dataset: { node: pn.name } },
      h('div', { class: 'node-head' }, h('span', { class: 'node-name' }, pn.name), badges),
      h('div', { class: 'bars' },
        bar('cores', used.cores, cap.cores, `${used.cores} / ${cap.cores}`),
        bar('memory', used.memoryMiB, cap.memoryMiB, `${mib(used.memoryMiB)} / ${mib(cap.memoryMiB)}`),
        bar('VMs', used.vms, pn.maxVMs ?? 0, pn.maxVMs ? `${used.vms} / ${pn.maxVMs}` : `${used.vms}`)),
      h('div', { class: 'vms' },
        here.length + incoming.length === 0 ? h('span', { class: 'empty' }, 'no VMs') : null,
        here.map((vn) => vmChip(vn, moving.get(keyOf(vn)), false)),
        incoming.map(([vn, m]) => vmChip(vn, m, true))));
  });
  const lost = vns.filter((vn) => !known.has(whereIs(vn)));
  if (lost.length) {
    boxes.push(h('div', { class: 'node unplaced', dataset: { node: '' } },
      h('div', { class: 'node-head' }, h('span', { class: 'node-name' }, 'Not placed')),
      h('div', { class: 'vms' }, lost.map((vn) => vmChip(vn, moving.get(keyOf(vn)), false)))));
  }
  flip(() => $('map').replaceChildren(...boxes));
}

/** Animates VM chips from where they were to where the new render put them (FLIP). */
function flip(update) {
  const before = new Map([...document.querySelectorAll('.vm[data-vm]')].map((el) => [el.dataset.vm, el.getBoundingClientRect()]));
  update();
  if (matchMedia('(prefers-reduced-motion: reduce)').matches) return;
  for (const el of document.querySelectorAll('.vm[data-vm]')) {
    const a = before.get(el.dataset.vm);
    if (!a) continue;
    const b = el.getBoundingClientRect();
    const dx = a.left - b.left;
    const dy = a.top - b.top;
    if (Math.abs(dx) + Math.abs(dy) < 2) continue;
    el.animate([{ transform: `translate(${dx}px, ${dy}px)` }, { transform: 'none' }], { duration: 700, easing: 'cubic-bezier(.2,.7,.2,1)' });
  }
}

function renderClusters() {
  const vols = [...state.Volume.values()];
  const cards = [...state.VirtualCluster.values()].sort(byName).map((vc) => {
    const ns = vc.namespace ?? 'default';
    const mine = vols.filter((v) => (v.namespace ?? 'default') === ns && v.cluster === vc.name).sort(byName);
    const used = mine.reduce((s, v) => s + (v.bytesUsed ?? 0), 0);
    const annotations = Object.entries(vc.annotations ?? {});
    const applied = vc.appliedPlacement;
    const pending = applied && (applied.strategy !== vc.strategy || applied.mode !== vc.mode);
    return h('article', { class: 'vc', hue: vcHue(ns, vc.name), dataset: { vc: `${ns}/${vc.name}` } },
      h('div', { class: 'vc-head' },
        h('span', { class: 'vc-name' }, vc.name),
        h('span', { class: 'muted' }, ns),
        h('span', { class: 'pill' }, vc.phase ?? 'Pending'),
        vc.deleting ? h('span', { class: 'badge bad' }, 'deleting') : null),
      h('div', { class: 'facts' },
        h('span', {}, 'state ', h('b', {}, vc.state ?? '–')),
        h('span', {}, 'nodes ', h('b', {}, vc.nodes ?? '–')),
        h('span', {}, 'subnet ', h('b', { class: 'mono' }, vc.subnet ?? 'not yet assigned')),
        h('span', {}, 'placement ', h('b', {}, `${vc.strategy ?? '?'} / ${vc.mode ?? '?'}`),
          pending ? ` (running with ${applied.strategy} / ${applied.mode} until resumed)` : ''),
        h('span', {}, 'shared ', h('b', {}, vc.sharedStorage ?? 'none')),
        h('span', {}, 'storage ', h('b', {}, `${vc.storageDriver ?? 'qcow2'}, ${bytes(used)} used`))),
      annotations.length ? h('div', { class: 'annotations' },
        annotations.map(([k, v]) => h('div', { dataset: { annotation: k } }, h('span', { class: 'mono' }, `${k}: `), String(v).slice(0, 500)))) : null,
      h('div', { class: 'conds' }, (vc.conditions ?? []).map((c) => [
        h('span', { class: 'cond-type' }, c.type),
        h('span', { class: `cond-${condHealth(c)}`, title: `status ${c.status}` }, `${{ good: '✓', bad: '✗' }[condHealth(c)] ?? '?'} ${c.reason}`),
        h('span', { class: 'cond-msg' }, c.message ?? ''),
      ])),
      mine.length ? h('table', { class: 'volumes' },
        h('thead', {}, h('tr', {}, h('th', {}, 'volume'), h('th', {}, 'role'), h('th', {}, 'phase'), h('th', { class: 'num' }, 'used'), h('th', { class: 'num' }, 'size'))),
        h('tbody', {}, mine.map((v) => h('tr', { dataset: { volume: keyOf(v) } },
          h('td', { class: 'mono' }, v.name), h('td', {}, v.role ?? ''), h('td', {}, v.phase ?? 'Pending'),
          h('td', { class: 'num' }, bytes(v.bytesUsed ?? 0)), h('td', { class: 'num' }, v.sizeGiB !== undefined ? bytes(v.sizeGiB * 1024 ** 3) : ''))))) : null);
  });
  $('clusters').replaceChildren(...(cards.length ? cards : [h('p', { class: 'muted' }, 'No virtual clusters.')]));
}

/** good, bad or unknown: for conditions that report trouble (…Pending, Stalled, Reconciling) True is the bad case. */
function condHealth(c) {
  if (c.status === 'Unknown') return 'Unknown';
  const abnormalTrue = /Pending$|^Stalled$|^Reconciling$|Degraded/.test(c.type);
  return (c.status === 'True') !== abnormalTrue ? 'good' : 'bad';
}

function stat(k, v) {
  return h('div', { class: 'stat' }, h('span', { class: 'k' }, k), h('span', { class: 'v' }, v));
}

function renderMigrations() {
  const now = Date.now();
  const live = inFlight().sort(byName).map((m) => {
    const p = m.progress;
    const elapsed = m.startTime ? `${((now - Date.parse(m.startTime)) / 1000).toFixed(1)} s` : '–';
    return h('div', { class: 'migration', dataset: { migration: keyOf(m), phase: m.phase } },
      h('div', { class: 'title' }, `${m.virtualNode}: ${m.sourceNode ?? state.VirtualNode.get(`${m.namespace}/${m.virtualNode}`)?.host ?? '?'} → ${m.targetNode}`),
      h('div', { class: 'muted' }, `${m.phase} · ${m.message ?? ''}`),
      p ? [
        h('div', { class: 'stats' },
          stat('sent', bytes(p.transferredBytes)),
          stat('remaining', bytes(p.remainingBytes)),
          stat('dirtied', rate(p.dirtyBytesPerSec)),
          stat('throughput', rate(p.throughputBytesPerSec))),
        h('div', { class: 'muted' }, `pass ${p.passes + 1} over ${bytes(p.totalBytes)} of guest memory · ${elapsed} · sample ${clock(p.sampleTime)}`),
        h('div', { class: 'remaining', title: `remaining ${bytes(p.remainingBytes)} of ${bytes(p.totalBytes)}: grows again while the guest dirties memory faster than it is sent` },
          h('span', { width: p.totalBytes ? (100 * p.remainingBytes) / p.totalBytes : 0 })),
      ] : h('div', { class: 'muted' }, `no figures from QEMU yet · ${elapsed}`));
  });
  const past = [...state.Migration.values()].filter((m) => m.phase === 'Succeeded' || m.phase === 'Failed')
    .sort((a, b) => (b.completionTime ?? '').localeCompare(a.completionTime ?? '')).slice(0, 10);
  const table = past.length ? h('table', { class: 'past' },
    h('thead', {}, h('tr', {}, h('th', {}, 'VM'), h('th', {}, 'move'), h('th', { class: 'num' }, 'downtime'), h('th', { class: 'num' }, 'total'), h('th', {}, 'ended'))),
    h('tbody', {}, past.map((m) => h('tr', { dataset: { migration: keyOf(m), phase: m.phase }, title: m.message ?? '' },
      h('td', {}, m.virtualNode), h('td', {}, `${m.sourceNode ?? '?'} → ${m.targetNode}`),
      m.phase === 'Succeeded'
        ? [h('td', { class: 'num' }, m.downtimeMs !== undefined ? `${m.downtimeMs} ms` : '–'), h('td', { class: 'num' }, m.totalMs !== undefined ? `${m.totalMs} ms` : '–')]
        : h('td', { class: 'failed', colSpan: 2 }, `failed: ${m.message ?? ''}`),
      h('td', {}, clock(m.completionTime)))))) : null;
  $('migrations').replaceChildren(...live, ...(table ? [table] : []),
    ...(live.length || table ? [] : [h('p', { class: 'muted' }, 'No migrations.')]));
}

function renderEvents() {
  const evs = [...state.Event.values()].sort((a, b) => (b.lastTimestamp ?? '').localeCompare(a.lastTimestamp ?? '')).slice(0, MAX_EVENTS);
  if (!evs.length) {
    $('events').replaceChildren(h('li', { class: 'muted' }, 'No events yet.'));
    return;
  }
  $('events').replaceChildren(...evs.map((e) => h('li', { class: e.type ?? 'Normal', dataset: { event: keyOf(e) } },
    h('span', { class: 'time' }, clock(e.lastTimestamp)),
    h('span', {}, h('span', { class: 'reason' }, e.reason ?? ''), h('span', { class: 'obj' },
      e.involved ? `${e.involved.kind}/${e.involved.name}` : '', e.count > 1 ? ` ×${e.count}` : '')),
    h('span', { class: 'msg' }, e.message ?? ''))));
}

function renderSummary() {
  const vns = [...state.VirtualNode.values()];
  const running = vns.filter((v) => v.phase === 'Running').length;
  $('summary').textContent = `${state.PhysicalNode.size} nodes · ${state.VirtualCluster.size} clusters · ${running}/${vns.length} VMs running · ${inFlight().length} migrating`;
}

// ---- actions ----

let selectedVm = '';
function selectVm(key) {
  selectedVm = key;
  if ($('act-vm').querySelector(`option[value="${CSS.escape(key)}"]`)) $('act-vm').value = key;
  schedule();
}

/** Replaces a select's options only when they changed, keeping the choice. */
function setOptions(select, values) {
  const now = [...select.options].map((o) => o.value);
  if (now.length === values.length && now.every((v, i) => v === values[i])) return;
  const keep = select.value;
  select.replaceChildren(...values.map((v) => h('option', { value: v }, v)));
  if (values.includes(keep)) select.value = keep;
}

function renderActionChoices() {
  setOptions($('act-vm'), [...state.VirtualNode.values()].sort(byName).map(keyOf));
  const nodes = [...state.PhysicalNode.values()].sort(byName).map((p) => p.name);
  setOptions($('act-target'), nodes);
  setOptions($('act-node'), nodes);
  setOptions($('act-vc'), [...state.VirtualCluster.values()].sort(byName).map((vc) => `${vc.namespace ?? 'default'}/${vc.name}`));
}

function split(key) {
  const i = key.indexOf('/');
  return { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

async function act(action, body) {
  const out = $('act-result');
  out.classList.remove('error');
  out.textContent = `${action}…`;
  try {
    const res = await fetch(`/api/actions/${action}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${$('token').value}` },
      body: JSON.stringify(body),
    });
    const r = await res.json().catch(() => ({}));
    out.classList.toggle('error', !res.ok);
    out.textContent = res.ok ? `${r.command}\n${r.output}` : `${res.status}: ${r.error ?? r.output ?? res.statusText}`;
  } catch (err) {
    out.classList.add('error');
    out.textContent = String(err);
  }
}

function wireActions() {
  $('token').value = sessionStorage.getItem('vl-token') ?? '';
  $('token').addEventListener('change', () => sessionStorage.setItem('vl-token', $('token').value));
  $('do-migrate').addEventListener('click', () => act('migrate', { ...split($('act-vm').value), node: $('act-target').value }));
  for (const a of ['suspend', 'resume']) $(`do-${a}`).addEventListener('click', () => act(a, split($('act-vc').value)));
  for (const a of ['cordon', 'uncordon', 'drain']) $(`do-${a}`).addEventListener('click', () => act(a, { node: $('act-node').value }));
}

// ---- live feed ----

let pending = false;
/** The sections to redraw: a change redraws only what shows its kind. */
const dirty = new Set();
const SECTIONS_OF = {
  PhysicalNode: ['map', 'summary', 'choices'], VirtualNode: ['map', 'migrations', 'summary', 'choices'],
  Migration: ['map', 'migrations', 'summary'], VirtualCluster: ['map', 'clusters', 'summary', 'choices'],
  Volume: ['clusters'], Event: ['events'],
};
function schedule(kind) {
  for (const s of kind ? SECTIONS_OF[kind] ?? [] : ['map', 'clusters', 'migrations', 'events', 'summary', 'choices']) dirty.add(s);
  if (pending) return;
  pending = true;
  const run = () => {
    if (!pending) return;
    pending = false;
    render();
  };
  // Next frame, or within 250 ms where the browser holds frames back (a hidden or throttled tab).
  requestAnimationFrame(run);
  setTimeout(run, 250);
}

function render() {
  const todo = new Set(dirty);
  dirty.clear();
  if (todo.has('map')) renderMap();
  if (todo.has('clusters')) renderClusters();
  if (todo.has('migrations')) renderMigrations();
  if (todo.has('events')) renderEvents();
  if (todo.has('summary')) renderSummary();
  if (todo.has('choices')) renderActionChoices();
  document.body.dataset.rendered = String(Number(document.body.dataset.rendered ?? 0) + 1);
}

function connect() {
  const conn = $('conn');
  const es = new EventSource('/api/events');
  es.addEventListener('open', () => { conn.dataset.state = 'live'; conn.textContent = 'live'; });
  es.addEventListener('error', () => { conn.dataset.state = 'down'; conn.textContent = 'reconnecting…'; });
  es.addEventListener('snapshot', (e) => {
    const { objects } = JSON.parse(e.data);
    for (const k of KINDS) state[k] = new Map((objects[k] ?? []).map((o) => [keyOf(o), o]));
    conn.dataset.state = 'live';
    conn.textContent = 'live';
    schedule();
  });
  es.addEventListener('change', (e) => {
    const { op, object } = JSON.parse(e.data);
    const m = state[object.kind];
    if (!m) return;
    if (op === 'delete') m.delete(keyOf(object)); else m.set(keyOf(object), object);
    if (object.kind === 'Event' && m.size > MAX_EVENTS * 2) {
      const keep = [...m.values()].sort((a, b) => (b.lastTimestamp ?? '').localeCompare(a.lastTimestamp ?? '')).slice(0, MAX_EVENTS);
      state.Event = new Map(keep.map((o) => [keyOf(o), o]));
    }
    schedule(object.kind);
  });
}

async function init() {
  try {
    const info = await (await fetch('/api/info')).json();
    if (info.actions) {
      $('actions').hidden = false;
      $('actions-off').hidden = true;
      $('mode').textContent = 'actions enabled';
      $('mode').classList.add('enabled');
      wireActions();
    }
  } catch {
    // stays read-only
  }
  connect();
}

init();
