// Invocations page (/ui/invocations): the filterable list (filter kept in the URL and
// remembered in localStorage), presets, exact status counts for the filter, keyset paging,
// a column chooser, multi-select actions, and actions over everything matching the filter.
import {
  html, api, useLive, useState, useEffect, useMemo, Link, navigate, ErrorBox, Equivalent,
  curlFor, StatusBadge, CopyButton, ConfirmButton, STATUSES, fmtTime, fmtAgo, queryString,
  mapLimit, sqlStr,
} from '../lib.js';

export const FILTER_KEYS = ['id', 'status', 'status_not', 'service', 'handler', 'key', 'service_type',
  'deployment', 'invoked_by', 'invoked_by_id', 'idempotency_key', 'created_after', 'created_before',
  'modified_after', 'modified_before'];
const TIME_KEYS = ['created_after', 'created_before', 'modified_after', 'modified_before'];
const SCOPE_KEYS = ['service', 'handler', 'key', 'service_type', 'deployment'];
const STORE_FILTER = 'ratchet.invocations.filter';
const STORE_COLS = 'ratchet.invocations.columns';
const STORE_LIMIT = 'ratchet.invocations.limit';
const OPS = ['cancel', 'kill', 'pause', 'resume', 'purge', 'restart-as-new'];
const OP_LABEL = { cancel: 'Cancel', kill: 'Kill', pause: 'Pause', resume: 'Resume', purge: 'Purge', 'restart-as-new': 'Restart as new' };

function filterFromQuery(query) {
  const f = {};
  for (const k of FILTER_KEYS) {
    const v = query.get(k);
    if (v !== null && v !== '') f[k] = v;
  }
  return f;
}

// The list's order (`order=asc`) is not part of the filter but survives filter changes.
const currentOrder = () => (new URLSearchParams(location.search).get('order') === 'asc' ? { order: 'asc' } : {});
const hrefFor = (filter) => `/ui/invocations${queryString({ ...filter, ...currentOrder() })}`;
const pick = (f, keys) => Object.fromEntries(keys.filter((k) => f[k]).map((k) => [k, f[k]]));
const list = (v) => (v ? v.split(',').filter(Boolean) : []);

function presets(filter) {
  const scope = pick(filter, SCOPE_KEYS);
  return [
    ['In flight', { ...scope, status_not: 'succeeded,failed' }],
    ['Failing / backing off', { ...scope, status: 'backing-off' }],
    ['Paused', { ...scope, status: 'paused' }],
    ['Suspended', { ...scope, status: 'suspended' }],
    ['Completed last hour', { ...scope, status: 'succeeded,failed', modified_after: String(Date.now() - 3_600_000) }],
    ['Failed', { ...scope, status: 'failed' }],
  ];
}

function presetActive(filter, preset) {
  const a = pick(filter, ['status', 'status_not']);
  const b = pick(preset, ['status', 'status_not']);
  return JSON.stringify(a) === JSON.stringify(b) && !!filter.modified_after === !!preset.modified_after;
}

// ---------------------------------------------------------------- equivalents

function statusSql(s) {
  if (s === 'succeeded') return "(status = 'completed' AND completion_result = 'success')";
  if (s === 'failed') return "(status = 'completed' AND completion_result = 'failure')";
  return `status = ${sqlStr(s)}`;
}

export function filterSql(f) {
  const w = [];
  const col = { id: 'id', service: 'target_service_name', handler: 'target_handler_name', key: 'target_service_key',
    service_type: 'target_service_ty', deployment: 'pinned_deployment_id', invoked_by: 'invoked_by',
    invoked_by_id: 'invoked_by_id', idempotency_key: 'idempotency_key' };
  for (const [k, c] of Object.entries(col)) if (f[k]) w.push(`${c} = ${sqlStr(f[k])}`);
  if (f.status) w.push(`(${list(f.status).map(statusSql).join(' OR ')})`);
  if (f.status_not) w.push(`NOT (${list(f.status_not).map(statusSql).join(' OR ')})`);
  const iso = (ms) => sqlStr(new Date(Number(ms)).toISOString());
  if (f.created_after) w.push(`created_at > ${iso(f.created_after)}`);
  if (f.created_before) w.push(`created_at < ${iso(f.created_before)}`);
  if (f.modified_after) w.push(`modified_at > ${iso(f.modified_after)}`);
  if (f.modified_before) w.push(`modified_at < ${iso(f.modified_before)}`);
  return w.length ? `WHERE ${w.join('\n  AND ')}` : '';
}

function cliList(f) {
  const parts = ['restate invocations list'];
  const q = (s) => (/^[\w.:/-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  if (f.service) parts.push(`--service ${q(f.service)}`);
  if (f.handler) parts.push(`--handler ${q(f.handler)}`);
  if (f.key) parts.push(`--key ${q(f.key)}`);
  if (f.deployment) parts.push(`--deployment ${q(f.deployment)}`);
  const st = list(f.status);
  if (st.length) {
    const done = st.filter((s) => s === 'succeeded' || s === 'failed');
    const rest = st.filter((s) => !done.includes(s));
    if (done.length && !rest.length) {
      parts.push('--status completed');
      if (done.length === 1) parts.push(`--completion-result ${done[0] === 'succeeded' ? 'success' : 'failure'}`);
    } else parts.push(`--status ${[...rest, ...(done.length ? ['completed'] : [])].join(',')}`);
  } else if (!f.status_not) parts.push('--all');
  const lines = [parts.join(' ')];
  const rest = Object.keys(f).filter((k) => !['service', 'handler', 'key', 'deployment', 'status'].includes(k));
  if (rest.length) lines.push(`# the CLI has no flag for: ${rest.join(', ')} (use the SQL below)`);
  return lines;
}

function cliTarget(f) {
  if (f.id) return f.id;
  if (f.service && f.handler && !f.key) return `${f.service}/${f.handler}`;
  if (f.service && !f.key) return f.service;
  return null;
}

// ---------------------------------------------------------------- columns

const COLUMNS = [
  ['id', 'Id', (r) => html`<span class="nowrap"><${Link} class="mono" href=${`/ui/invocations/${encodeURIComponent(r.id)}`}>${r.id}</${Link}><${CopyButton} text=${r.id} /></span>`],
  ['target', 'Target', (r) => html`<span class="mono">${r.target}</span>`],
  ['status', 'Status', (r) => html`<${StatusBadge} status=${r.status} />`],
  ['created', 'Created', (r) => html`<span class="nowrap" title=${fmtTime(r.created_at)}>${fmtAgo(r.created_at)}</span>`],
  ['modified', 'Modified', (r) => html`<span class="nowrap" title=${fmtTime(r.modified_at)}>${fmtAgo(r.modified_at)}</span>`],
  ['retry', 'Retries', (r) => (r.retry_count ? String(r.retry_count) : html`<span class="muted">0</span>`), 'num'],
  ['failure', 'Last failure', (r) => (r.last_failure
    ? html`<div class="truncate" title=${r.last_failure}>${r.last_failure}</div>`
    : r.completion_failure ? html`<div class="truncate" title=${r.completion_failure}>${r.completion_failure}</div>` : null)],
  ['deployment', 'Deployment', (r) => (r.deployment_id ? html`<span class="mono small">${r.deployment_id}</span>` : null)],
];
const DEFAULT_COLS = ['id', 'target', 'status', 'created', 'modified', 'retry', 'failure'];

function loadJson(key, fallback) {
  try { const v = JSON.parse(localStorage.getItem(key)); return v ?? fallback; } catch { return fallback; }
}

function ColumnChooser({ cols, setCols }) {
  const toggle = (k) => {
    const next = cols.includes(k) ? cols.filter((c) => c !== k) : COLUMNS.map((c) => c[0]).filter((c) => c === k || cols.includes(c));
    setCols(next);
    localStorage.setItem(STORE_COLS, JSON.stringify(next));
  };
  return html`<details class="col-chooser" data-testid="column-chooser">
    <summary class="button">Columns</summary>
    <div class="menu">
      ${COLUMNS.map(([k, label]) => html`<label><input type="checkbox" checked=${cols.includes(k)}
        data-testid=${`col-${k}`} onChange=${() => toggle(k)} /> ${label}</label>`)}
    </div>
  </details>`;
}

// ---------------------------------------------------------------- filter form

const toLocalInput = (ms) => {
  if (!ms) return '';
  const d = new Date(Number(ms) - new Date(Number(ms)).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
};
const fromLocalInput = (v) => (v ? String(new Date(v).getTime()) : '');

function parseQuick(text) {
  const t = text.trim();
  if (!t) return {};
  if (/^inv_/.test(t)) return { id: t };
  const parts = t.split('/');
  if (parts.length === 1) return { service: t };
  if (parts.length === 2) return { service: parts[0], handler: parts[1] };
  return { service: parts[0], key: parts.slice(1, -1).join('/'), handler: parts[parts.length - 1] };
}

function FilterForm({ filter, services }) {
  const [draft, setDraft] = useState(filter);
  const [quick, setQuick] = useState('');
  useEffect(() => setDraft(filter), [JSON.stringify(filter)]);
  const set = (k) => (e) => setDraft({ ...draft, [k]: e.target.value });
  const setTime = (k) => (e) => setDraft({ ...draft, [k]: fromLocalInput(e.target.value) });
  const apply = (e) => { e.preventDefault(); navigate(hrefFor(draft)); };
  const applyQuick = (e) => {
    e.preventDefault();
    const scope = parseQuick(quick);
    const kept = Object.fromEntries(Object.entries(filter).filter(([k]) => !['id', 'service', 'handler', 'key'].includes(k)));
    navigate(hrefFor({ ...kept, ...scope }));
    setQuick('');
  };
  const statuses = list(filter.status);
  const toggleStatus = (s) => {
    const next = statuses.includes(s) ? statuses.filter((x) => x !== s) : [...statuses, s];
    navigate(hrefFor({ ...filter, status: next.join(',') }));
  };
  const text = (k, label, extra = {}) => html`<label>${label}
    <input type="text" value=${draft[k] || ''} onInput=${set(k)} name=${k} ...${extra} /></label>`;
  const select = (k, label, options) => html`<label>${label}
    <select value=${draft[k] || ''} onChange=${set(k)} name=${k}>
      <option value="">any</option>
      ${options.map((o) => html`<option value=${o}>${o}</option>`)}
    </select></label>`;
  const time = (k, label) => html`<label>${label}
    <input type="datetime-local" value=${toLocalInput(draft[k])} onInput=${setTime(k)} name=${k} /></label>`;

  return html`<div class="panel">
    <form class="toolbar" onSubmit=${applyQuick} role="search">
      <input type="search" data-search placeholder="Invocation id, Service, Service/handler or Service/key/handler"
        aria-label="Quick filter" value=${quick} onInput=${(e) => setQuick(e.target.value)} style="flex:1;min-width:260px"
        list="inv-services" />
      <datalist id="inv-services">${services.map((s) => html`<option value=${s} />`)}</datalist>
      <button type="submit">Filter</button>
      <button type="button" data-testid="clear-filter" onClick=${() => { localStorage.setItem(STORE_FILTER, ''); navigate('/ui/invocations'); }}>Clear filter</button>
    </form>
    <div class="toolbar" role="group" aria-label="Status">
      <span class="muted small">Status:</span>
      ${STATUSES.map((s) => html`<label class="nowrap" style="color:inherit;font-size:13px">
        <input type="checkbox" checked=${statuses.includes(s)} data-testid=${`status-${s}`}
          onChange=${() => toggleStatus(s)} /> ${s}</label>`)}
    </div>
    <details open=${Object.keys(filter).some((k) => !['status'].includes(k))}>
      <summary>All filters</summary>
      <form onSubmit=${apply} data-testid="filter-form">
        <div class="filters">
          ${text('id', 'Invocation id')}
          ${text('service', 'Service', { list: 'inv-services' })}
          ${text('handler', 'Handler')}
          ${text('key', 'Key')}
          ${select('service_type', 'Service type', ['service', 'virtual_object', 'workflow'])}
          ${text('status', 'Status (comma list)')}
          ${text('status_not', 'Status not (comma list)')}
          ${text('deployment', 'Deployment id')}
          ${select('invoked_by', 'Invoked by', ['ingress', 'service', 'restart_as_new'])}
          ${text('invoked_by_id', 'Caller invocation id')}
          ${text('idempotency_key', 'Idempotency key')}
          ${time('created_after', 'Created after')}
          ${time('created_before', 'Created before')}
          ${time('modified_after', 'Modified after')}
          ${time('modified_before', 'Modified before')}
        </div>
        <div class="toolbar"><button type="submit" class="primary" data-testid="apply-filter">Apply</button></div>
      </form>
    </details>
  </div>`;
}

// ---------------------------------------------------------------- summary, batch

function SummaryBar({ filter }) {
  const key = JSON.stringify(filter);
  const { data, error } = useLive(() => api('/internal/ui/counts', { query: filter }), [key]);
  if (error) return html`<${ErrorBox} error=${error} />`;
  if (!data) return html`<div class="status-bar muted">Counting…</div>`;
  return html`<div class="status-bar" data-testid="summary">
    <span class="chip"><b data-testid="summary-total">${(data.total || 0).toLocaleString()}</b> match</span>
    ${STATUSES.filter((s) => data.by_status?.[s]).map((s) => html`<${Link} href=${hrefFor({ ...filter, status: s })}
      title=${`Only ${s}`}><${StatusBadge} status=${s} /><b data-testid=${`summary-${s}`}>${data.by_status[s].toLocaleString()}</b></${Link}>`)}
    ${data.partial ? html`<span class="chip" title=${(data.reasons || []).join('; ')}>incomplete</span>` : null}
  </div>`;
}

function FilterBatch({ filter }) {
  const [op, setOp] = useState('cancel');
  const [matched, setMatched] = useState(null);
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const key = JSON.stringify(filter);
  useEffect(() => { setMatched(null); setResult(null); setError(null); }, [key, op]);
  // `cursor`: where the previous run stopped (a run acts on at most 10,000 at a time).
  const call = async (dry, cursor) => {
    setBusy(true);
    setError(null);
    const all = Object.keys(filter).length === 0 ? { all: true } : {};
    const body = dry ? { filter, ...all, dry_run: true } : { filter, ...all, ...(cursor ? { cursor } : {}) };
    try {
      const r = await api(`/internal/ui/batch/${op}`, { method: 'POST', body });
      if (dry) { setMatched(r.matched); setResult(null); } else { setResult(r); setMatched(null); }
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const empty = Object.keys(filter).length === 0;
  return html`<div class="panel" data-testid="filter-batch">
    <h3>Apply to everything matching this filter</h3>
    <div class="toolbar">
      <select value=${op} onChange=${(e) => setOp(e.target.value)} aria-label="Operation" data-testid="batch-op">
        ${OPS.map((o) => html`<option value=${o}>${OP_LABEL[o]}</option>`)}
      </select>
      <button type="button" data-testid="batch-dry-run" disabled=${busy} onClick=${() => call(true)}>Count matches</button>
      ${matched !== null ? html`<span data-testid="batch-matched" data-matched=${matched}>
        <b>${matched.toLocaleString()}</b> invocation${matched === 1 ? '' : 's'} match${empty ? ' (no filter: this is every invocation)' : ''}.</span>
        <button type="button" class="danger primary" data-testid="batch-run" disabled=${busy || matched === 0}
          onClick=${() => call(false)}>${busy ? 'Working…' : `${OP_LABEL[op]} ${matched.toLocaleString()}`}</button>
        <button type="button" disabled=${busy} onClick=${() => setMatched(null)}>Back</button>` : null}
    </div>
    <${ErrorBox} error=${error} />
    ${result ? html`<div class="notice ok" data-testid="batch-result" role="status">
      ${OP_LABEL[op]}: ${result.matched} matched, <b data-testid="batch-succeeded">${result.succeeded}</b> succeeded, <b data-testid="batch-failed">${(result.failed || []).length}</b> failed.
      ${result.more ? html` There are more matches; <button type="button" data-testid="batch-continue" onClick=${() => call(false, result.next_cursor)}>continue with the next ones</button>.` : null}
      ${(result.failed || []).length ? html`<ul>${result.failed.slice(0, 20).map((f) => html`<li>
        <${Link} class="mono" href=${`/ui/invocations/${encodeURIComponent(f.invocation_id)}`}>${f.invocation_id}</${Link}>: ${f.error}</li>`)}
        ${result.failed.length > 20 ? html`<li>… and ${result.failed.length - 20} more</li>` : null}</ul>` : null}
    </div>` : null}
    <${Equivalent} testid="batch-equivalent"
      cli=${cliTarget(filter) ? `restate invocations ${op} ${cliTarget(filter)}` : `# the CLI selects by id or target only; use the curl call`}
      curl=${[curlFor('POST', `/internal/ui/batch/${op}`, { filter, ...(empty ? { all: true } : {}), dry_run: true }), curlFor('POST', `/internal/ui/batch/${op}`, { filter, ...(empty ? { all: true } : {}) })]} />
  </div>`;
}

function SelectionActions({ ids, onDone }) {
  const [result, setResult] = useState(null);
  useEffect(() => setResult(null), [ids.join(',')]);
  if (!ids.length && !result) return null;
  const run = (op) => async () => {
    const out = await mapLimit(ids, 8, (id) => api(`/invocations/${encodeURIComponent(id)}/${op}`, { method: 'PATCH' }));
    setResult({ op, ok: out.filter((r) => r.ok).length, failed: out.filter((r) => !r.ok) });
    onDone();
  };
  return html`<div class="panel" data-testid="selection-actions">
    <div class="toolbar">
      <b>${ids.length} selected</b>
      ${OPS.map((op) => html`<${ConfirmButton} label=${OP_LABEL[op]} testid=${`selection-${op}`}
        danger=${op === 'kill' || op === 'purge' || op === 'cancel'} disabled=${!ids.length}
        confirmText=${`${OP_LABEL[op]} ${ids.length} invocation${ids.length === 1 ? '' : 's'}?`} onConfirm=${run(op)} />`)}
    </div>
    ${result ? html`<div class="notice" role="status" data-testid="selection-result">
      ${OP_LABEL[result.op]}: ${result.ok} succeeded, ${result.failed.length} failed.
      ${result.failed.length ? html`<ul>${result.failed.map((f) => html`<li><span class="mono">${f.item}</span>: ${f.error.message}</li>`)}</ul>` : null}
    </div>` : null}
    <${Equivalent} testid="selection-equivalent"
      cli=${ids.map((id) => `restate invocations ${result?.op || 'cancel'} ${id}`)}
      curl=${ids.map((id) => curlFor('PATCH', `/invocations/${id}/${result?.op || 'cancel'}`))} />
  </div>`;
}

// ---------------------------------------------------------------- list

async function fetchPage(filter, cursor, limit, order) {
  const out = { items: [], next_cursor: cursor, scanned: 0, partial: false, reasons: [] };
  let calls = 0;
  do {
    const r = await api('/internal/ui/invocations', {
      query: { ...filter, order, limit: limit - out.items.length, cursor: out.next_cursor },
    });
    out.items.push(...(r.items || []));
    out.next_cursor = r.next_cursor ?? null;
    out.scanned += r.scanned || 0;
    out.partial ||= !!r.partial;
    out.reasons.push(...(r.reasons || []));
    calls++;
  } while (out.next_cursor && out.items.length < limit && calls < 25);
  return out;
}

export default function Page({ query }) {
  const filter = useMemo(() => filterFromQuery(query), [query.toString()]);
  const fkey = JSON.stringify(filter);
  const stored = localStorage.getItem(STORE_FILTER);
  const restore = query.toString() === '' && !!stored;
  useEffect(() => { if (restore) navigate(`/ui/invocations?${stored}`, { replace: true }); }, [restore]);
  useEffect(() => {
    if (!restore) localStorage.setItem(STORE_FILTER, queryString(filter).slice(1));
  }, [fkey, restore]);

  const [cols, setCols] = useState(() => loadJson(STORE_COLS, DEFAULT_COLS));
  const [limit, setLimit] = useState(() => Number(localStorage.getItem(STORE_LIMIT)) || 50);
  // The server lists in creation order (its creation-time index), newest first by default.
  const order = query.get('order') === 'asc' ? 'asc' : 'desc';
  const setOrder = (o) => {
    const q = new URLSearchParams(query);
    if (o === 'desc') q.delete('order'); else q.set('order', o);
    const qs = q.toString();
    navigate(`/ui/invocations${qs ? `?${qs}` : ''}`);
  };
  const [cursors, setCursors] = useState([null]);
  const [selected, setSelected] = useState(() => new Set());
  useEffect(() => { setCursors([null]); setSelected(new Set()); }, [fkey, limit, order]);
  const cursor = cursors[cursors.length - 1];

  const { data: services } = useLive(() => api('/services').then((r) => (r.services || []).map((s) => s.name).sort()), [], { events: ['schema'] });
  const { data, error, loading, reload } = useLive(
    () => (restore ? Promise.resolve(null) : fetchPage(filter, cursor, limit, order)), [fkey, cursor, limit, order, restore]);
  if (restore) return html`<section><h1>Invocations</h1><p class="muted">Loading…</p></section>`;

  const rows = data?.items || [];
  const shown = COLUMNS.filter(([k]) => cols.includes(k));
  const allSelected = rows.length > 0 && rows.every((r) => selected.has(r.id));
  const toggle = (id) => {
    const next = new Set(selected);
    if (next.has(id)) next.delete(id); else next.add(id);
    setSelected(next);
  };
  const toggleAll = () => setSelected(allSelected ? new Set() : new Set(rows.map((r) => r.id)));
  const openRow = (e, id) => {
    if (e.target.closest('a,button,input,label')) return;
    navigate(`/ui/invocations/${encodeURIComponent(id)}`);
  };
  const sql = `SELECT id, target, status, created_at, modified_at, retry_count, last_failure\nFROM sys_invocation\n${filterSql(filter)}${filterSql(filter) ? '\n' : ''}ORDER BY created_at ${order === 'asc' ? 'ASC' : 'DESC'}\nLIMIT ${limit}`;

  return html`<section>
    <h1>Invocations</h1>
    <nav class="presets" aria-label="Presets">
      ${presets(filter).map(([label, f]) => html`<${Link} href=${hrefFor(f)} class=${presetActive(filter, f) ? 'active' : ''}
        data-testid=${`preset-${label.toLowerCase().replace(/[^a-z]+/g, '-')}`}>${label}</${Link}>`)}
    </nav>
    <${FilterForm} filter=${filter} services=${services || []} />
    <${SummaryBar} filter=${filter} />
    <${SelectionActions} ids=${[...selected]} onDone=${reload} />
    <${ErrorBox} error=${error} />
    ${data?.partial ? html`<div class="notice" role="status">Some partitions could not be read: ${data.reasons.join('; ')}</div>` : null}
    <div class="toolbar">
      <span class="muted small">${loading ? 'Loading…' : `${rows.length} shown${data?.scanned ? ` · ${data.scanned.toLocaleString()} scanned` : ''}`}</span>
      <span class="spacer"></span>
      <label>Order <select value=${order} data-testid="order" onChange=${(e) => setOrder(e.target.value)}
        title="By creation time">
        <option value="desc">Newest first</option><option value="asc">Oldest first</option>
      </select></label>
      <label>Page size <select value=${limit} onChange=${(e) => { const v = Number(e.target.value); setLimit(v); localStorage.setItem(STORE_LIMIT, String(v)); }}>
        ${[25, 50, 100, 200, 500].map((n) => html`<option value=${n}>${n}</option>`)}
      </select></label>
      <${ColumnChooser} cols=${cols} setCols=${setCols} />
    </div>
    <div class="table-wrap">
      <table data-rows data-testid="inv-table">
        <thead><tr>
          <th><input type="checkbox" aria-label="Select all on this page" checked=${allSelected} onChange=${toggleAll} data-testid="select-all" /></th>
          ${shown.map(([k, label, , cls]) => html`<th class=${cls || ''}>${label}</th>`)}
        </tr></thead>
        <tbody>
          ${rows.map((r) => html`<tr key=${r.id} data-testid="inv-row" data-id=${r.id} data-status=${r.status}
            data-href=${`/ui/invocations/${encodeURIComponent(r.id)}`} class=${selected.has(r.id) ? 'selected' : ''}
            onClick=${(e) => openRow(e, r.id)}>
            <td><input type="checkbox" aria-label=${`Select ${r.id}`} checked=${selected.has(r.id)} onChange=${() => toggle(r.id)} /></td>
            ${shown.map(([k, , render, cls]) => html`<td class=${cls || ''}>${render(r)}</td>`)}
          </tr>`)}
          ${!loading && rows.length === 0 ? html`<tr data-norow><td colspan=${shown.length + 1} class="muted">No invocations match.</td></tr>` : null}
        </tbody>
      </table>
    </div>
    <div class="toolbar">
      <button type="button" disabled=${cursors.length < 2} data-testid="prev-page"
        onClick=${() => setCursors(cursors.slice(0, -1))}>Previous page</button>
      <span class="muted small">Page ${cursors.length}</span>
      <button type="button" disabled=${!data?.next_cursor} data-testid="next-page"
        onClick=${() => setCursors([...cursors, data.next_cursor])}>Next page</button>
    </div>
    <${FilterBatch} filter=${filter} />
    <${Equivalent} cli=${cliList(filter)} sql=${sql}
      curl=${[curlFor('GET', `/internal/ui/invocations${queryString({ ...filter, ...(order === 'asc' ? { order } : {}), limit })}`), curlFor('GET', `/internal/ui/counts${queryString(filter)}`)]} />
  </section>`;
}
