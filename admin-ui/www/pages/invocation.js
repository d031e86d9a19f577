// Invocation detail page (/ui/invocations/:id): header facts, why it is not progressing
// (blocked_by chain with the root's inline action), what it waits on, caller and callees,
// the journal with size-gated payloads, a timeline of attempts, and the invocation actions.
import {
  html, api, useLive, useState, Link, navigate, ErrorBox, Equivalent, curlFor, StatusBadge,
  CopyId, ConfirmButton, fmtTime, fmtAgo, fmtBytes, fmtDuration, authHeaders, sqlStr,
} from '../lib.js';

const MAX_INLINE = 65536;
const invHref = (id) => `/ui/invocations/${encodeURIComponent(id)}`;
const ACTIVE = new Set(['scheduled', 'pending', 'ready', 'running', 'backing-off', 'suspended', 'paused']);

function patch(id, op, query = '') {
  return api(`/invocations/${encodeURIComponent(id)}/${op}${query}`, { method: 'PATCH' });
}

function InvLink({ id, target }) {
  if (!id) return html`<span class="muted">—</span>`;
  return html`<${Link} href=${invHref(id)}><span class="mono">${target || id}</span></${Link}>`;
}

// ---------------------------------------------------------------- header

function Facts({ inv }) {
  const row = (label, value) => (value === null || value === undefined || value === '' ? null
    : html`<dt>${label}</dt><dd>${value}</dd>`);
  const when = (ms) => (ms ? html`<span title=${fmtAgo(ms)}>${fmtTime(ms)}</span> <span class="muted small">(${fmtAgo(ms)})</span>` : null);
  return html`<dl class="facts" data-testid="facts">
    <dt>Id</dt><dd><${CopyId} id=${inv.id} /></dd>
    <dt>Target</dt><dd class="mono" data-testid="target">${inv.target}</dd>
    <dt>Status</dt><dd><${StatusBadge} status=${inv.status} />
      ${inv.completion_result ? html` <span class="muted small">result: ${inv.completion_result}</span>` : null}</dd>
    ${row('Service type', inv.service_type)}
    ${row('Created', when(inv.created_at))}
    ${row('Modified', when(inv.modified_at))}
    ${row('Scheduled start', when(inv.scheduled_start_at))}
    ${row('Completed', when(inv.completed_at))}
    ${row('Deployment', inv.deployment_id ? html`<${Link} class="mono" href="/ui/deployments">${inv.deployment_id}</${Link}>` : null)}
    ${row('Idempotency key', inv.idempotency_key ? html`<span class="mono">${inv.idempotency_key}</span>` : null)}
    <dt>Retry count</dt><dd data-testid="retry-count">${inv.retry_count ?? 0}${inv.attempt ? html` <span class="muted small">(attempt ${inv.attempt})</span>` : null}</dd>
    ${row('Next retry', when(inv.next_retry_at))}
    ${row('Invoked by', inv.invoked_by ? html`${inv.invoked_by}${inv.invoked_by_id ? html` · <${InvLink} id=${inv.invoked_by_id} />` : null}` : null)}
    ${row('Restarted from', inv.restarted_from ? html`<${InvLink} id=${inv.restarted_from} />` : null)}
    ${row('Journal entries', inv.journal_size)}
    ${row('Purged at', when(inv.purge_at))}
    ${row('Completion retention', inv.completion_retention != null ? fmtDuration(inv.completion_retention) : null)}
    ${row('Journal retention', inv.journal_retention != null ? fmtDuration(inv.journal_retention) : null)}
  </dl>`;
}

function Failure({ inv }) {
  const failing = inv.status === 'backing-off' || inv.status === 'failed' || inv.status === 'paused';
  const text = inv.last_failure || (inv.completion_result === 'failure' ? inv.completion_failure : null);
  if (!text) return null;
  return html`<section class=${`panel ${failing ? 'danger' : ''}`} data-testid="last-failure" role=${failing ? 'alert' : undefined}>
    <h2>${inv.completion_result === 'failure' && !inv.last_failure ? 'Failure' : 'Last failure'}</h2>
    <div class="failure">${text}</div>
    ${inv.status === 'backing-off' && inv.next_retry_at ? html`<p class="small">Next attempt ${fmtAgo(inv.next_retry_at)} (${fmtTime(inv.next_retry_at)}).</p>` : null}
  </section>`;
}

// ---------------------------------------------------------------- why / waiting / calls

const OP_NAMES = { resume: 'Resume', cancel: 'Cancel', kill: 'Kill' };

function Reason({ text }) {
  const [open, setOpen] = useState(false);
  const t = String(text || '');
  if (t.length <= 240 || open) return html`<div class="reason">${t}</div>`;
  return html`<div class="reason">${t.slice(0, 240)}… <button type="button" class="link-btn" onClick=${() => setOpen(true)}>more</button></div>`;
}

function BlockedBy({ chain, reload }) {
  const [done, setDone] = useState(null);
  if (!chain?.length) return null;
  return html`<section class="panel warn" data-testid="blocked-by">
    <h2>Why is this not progressing?</h2>
    <ol class="chain">
      ${chain.map((link, i) => {
        const root = i === chain.length - 1;
        const act = root ? link.action : null;
        return html`<li class=${root ? 'root' : ''} data-testid=${root ? 'blocked-root' : 'blocked-link'}>
          <${InvLink} id=${link.invocation_id} target=${link.target} />
          ${' '}${link.status ? html`<${StatusBadge} status=${link.status} />` : null}
          <${Reason} text=${link.reason} />
          ${act ? html`<div class="toolbar">
            <${ConfirmButton} label=${`${OP_NAMES[act.op] || act.op} ${act.invocation_id === chain[0]?.invocation_id ? '' : 'the root cause'}`.trim()}
              testid="blocked-action" danger=${act.op !== 'resume'}
              confirmText=${`${OP_NAMES[act.op] || act.op} ${act.invocation_id}?`}
              onConfirm=${async () => { await patch(act.invocation_id, act.op); setDone(`${OP_NAMES[act.op] || act.op}: done`); reload(); }} />
            ${done ? html`<span class="notice ok" role="status" data-testid="blocked-action-result">${done}</span>` : null}
          </div>` : null}
        </li>`;
      })}
    </ol>
  </section>`;
}

function WaitingOn({ items }) {
  if (!items?.length) return null;
  return html`<section class="panel" data-testid="waiting-on">
    <h2>Waiting on</h2>
    <ul>
      ${items.map((w) => html`<li data-kind=${w.kind}>
        <span class="badge">${w.kind}</span> ${w.text}
        ${w.invocation_id ? html` · <${InvLink} id=${w.invocation_id} />` : null}
        ${w.until ? html` · until ${fmtTime(w.until)} <span class="muted small">(${fmtAgo(w.until)})</span>` : null}
      </li>`)}
    </ul>
  </section>`;
}

function Calls({ caller, callees }) {
  if (!caller && !callees?.length) return null;
  const withEntry = (callees || []).some((c) => c.entry !== undefined && c.entry !== null);
  return html`<section class="panel" data-testid="calls">
    <h2>Calls</h2>
    ${caller ? html`<p data-testid="caller">Called by <${InvLink} id=${caller.id} target=${caller.target} />
      <span class="muted small mono"> ${caller.id}</span></p>` : null}
    ${callees?.length ? html`<table>
      <thead><tr>${withEntry ? html`<th class="num">Entry</th>` : null}<th>Callee</th><th>Status</th><th>Id</th></tr></thead>
      <tbody>${callees.map((c) => html`<tr data-testid="callee">
        ${withEntry ? html`<td class="num">${c.entry}</td>` : null}<td><${InvLink} id=${c.id} target=${c.target} /></td>
        <td>${c.status ? html`<${StatusBadge} status=${c.status} />` : null}</td>
        <td class="mono small">${c.id}</td></tr>`)}</tbody>
    </table>` : null}
  </section>`;
}

// ---------------------------------------------------------------- journal

async function download(url, name) {
  const res = await api(url, { raw: true });
  const blob = await res.blob();
  const href = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = href;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(href), 1000);
}

function Detail({ detail }) {
  if (detail === null || detail === undefined) return null;
  const text = typeof detail === 'string' ? detail : JSON.stringify(detail);
  if (text.length <= 80) return html`<div class="muted small mono">${text}</div>`;
  return html`<details class="small"><summary class="muted">details</summary>
    <pre class="preview">${typeof detail === 'string' ? detail : JSON.stringify(detail, null, 2)}</pre></details>`;
}

function pretty(entry, text) {
  if (!entry.json || entry.preview_truncated || !text) return text;
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; }
}

function Payload({ id, entry }) {
  const [more, setMore] = useState(null); // {text, bytes} | 'loading'
  const [error, setError] = useState(null);
  const base = `/internal/ui/invocations/${encodeURIComponent(id)}/journal/${entry.index}`;
  const big = entry.preview_truncated || (entry.size || 0) > (entry.preview || '').length;
  const showMore = async () => {
    setMore('loading');
    setError(null);
    try {
      const res = await api(base, { query: { max: MAX_INLINE }, raw: true });
      const buf = await res.arrayBuffer();
      const text = new TextDecoder('utf-8', { fatal: false }).decode(buf.slice(0, MAX_INLINE));
      setMore({ text, bytes: buf.byteLength });
    } catch (e) {
      setError(e);
      setMore(null);
    }
  };
  const hasToken = Object.keys(authHeaders()).length > 0;
  const dl = `${base}?download=1`;
  const name = `${id}-entry-${entry.index}.bin`;
  let body = pretty(entry, entry.preview);
  if (more && more !== 'loading') body = more.text;
  return html`<div>
    ${body ? html`<pre class="preview" data-testid="preview">${body}</pre>` : html`<span class="muted">—</span>`}
    ${big ? html`<div class="toolbar small">
      <span class="muted">${fmtBytes(entry.size)}${more && more !== 'loading' && more.bytes < entry.size ? `, first ${fmtBytes(more.bytes)} shown` : ''}</span>
      ${!more || more === 'loading'
        ? html`<button type="button" data-testid="show-more" disabled=${more === 'loading'} onClick=${showMore}>${more === 'loading' ? 'Loading…' : 'Show more'}</button>`
        : html`<button type="button" onClick=${() => setMore(null)}>Show less</button>`}
      <a href=${dl} download=${name} data-testid="download"
        onClick=${hasToken ? (e) => { e.preventDefault(); download(dl, name).catch(setError); } : undefined}>Download</a>
    </div>` : null}
    <${ErrorBox} error=${error} />
  </div>`;
}

const JOURNAL_PAGE = 100;

function Journal({ id, journal, onRestart, active }) {
  const [shown, setShown] = useState(JOURNAL_PAGE);
  if (!journal) return null;
  return html`<section class="panel" data-testid="journal">
    <h2>Journal <span class="muted small">${journal.length} entries</span></h2>
    ${journal.length === 0 ? html`<p class="muted">The journal is empty (or no longer retained).</p>` : html`<div class="table-wrap"><table>
      <thead><tr><th class="num">#</th><th>Type</th><th>Name</th><th class="num">Size</th><th>Completed</th><th>Payload</th>${active ? null : html`<th></th>`}</tr></thead>
      <tbody>${journal.slice(0, shown).map((e) => html`<tr data-testid="journal-row" data-index=${e.index}>
        <td class="num">${e.index}</td>
        <td class="nowrap">${e.type}</td>
        <td style="max-width:22rem;overflow-wrap:anywhere">${e.name || ''}${e.callee_id ? html`<div><${InvLink} id=${e.callee_id} /></div>` : null}
          <${Detail} detail=${e.detail} /></td>
        <td class="num nowrap">${fmtBytes(e.size)}</td>
        <td>${e.completed === true ? 'yes' : e.completed === false ? html`<b>no</b>` : html`<span class="muted">—</span>`}</td>
        <td style="min-width:240px;max-width:480px;overflow-wrap:anywhere"><${Payload} id=${id} entry=${e} /></td>
        ${active ? null : html`<td class="nowrap"><${ConfirmButton} label="Restart from here" testid="restart-from"
          title="Restart as a new invocation that keeps the journal up to this entry"
          confirmText=${`Restart as new from entry ${e.index}?`} onConfirm=${() => onRestart(e.index)} /></td>`}
      </tr>`)}</tbody>
    </table></div>`}
    ${journal.length > shown ? html`<div class="toolbar"><span class="muted small">${shown} of ${journal.length} entries shown</span>
      <button type="button" data-testid="journal-more" onClick=${() => setShown(shown + JOURNAL_PAGE)}>Show ${Math.min(JOURNAL_PAGE, journal.length - shown)} more</button></div>` : null}
  </section>`;
}

// ---------------------------------------------------------------- timeline

function eventClass(kind) {
  const k = (kind || '').toLowerCase();
  if (/error|fail|kill/.test(k)) return 'ev-err';
  if (/success|succeed|complet/.test(k)) return 'ev-ok';
  if (/pause|retry|back/.test(k)) return 'ev-warn';
  return 'ev-info';
}

const humanKind = (k) => String(k || 'event').replace(/([a-z])([A-Z])/g, '$1 $2').replace(/_/g, ' ').toLowerCase();
const firstLine = (m, n = 200) => {
  const line = String(m || '').split('\n')[0];
  return line.length > n ? `${line.slice(0, n)}…` : line;
};

// Consecutive events of the same kind and code form one run (one label, one list row).
function eventRuns(events) {
  const runs = [];
  for (const ev of events || []) {
    if (!ev.at) continue;
    const prev = runs[runs.length - 1];
    const last = Math.max(ev.at, ev.last_at || 0);
    if (prev && prev.kind === ev.kind && prev.code === ev.code) {
      prev.last = Math.max(prev.last, last);
      prev.count += ev.count || 1;
      prev.points.push(ev.at);
      prev.message = ev.message || prev.message;
    } else {
      runs.push({ kind: ev.kind, code: ev.code, at: ev.at, last, count: ev.count || 1, points: [ev.at],
        message: ev.message, after: ev.after_entry, cls: eventClass(ev.kind) });
    }
  }
  return runs;
}

function Timeline({ inv, events }) {
  const runs = eventRuns(events);
  const marks = [{ at: inv.created_at, label: 'created', cls: 'ev-info', points: [inv.created_at] }];
  for (const r of runs) {
    marks.push({ ...r, label: `${humanKind(r.kind)}${r.code ? ` [${r.code}]` : ''}${r.count > 1 ? ` ×${r.count}` : ''}` });
  }
  if (inv.completed_at) {
    const failed = inv.completion_result === 'failure';
    marks.push({ at: inv.completed_at, label: failed ? 'failed' : 'completed', cls: failed ? 'ev-err' : 'ev-ok', points: [inv.completed_at] });
  }
  if (!inv.created_at) return null;
  const t0 = Math.min(...marks.map((m) => m.at));
  const end = inv.completed_at || Math.max(Date.now(), ...marks.map((m) => m.last || m.at));
  const span = Math.max(end - t0, 1);
  const W = 1000, left = 12, right = 12, rowH = 16, maxRows = 4, axisY = 16;
  const x = (t) => left + ((t - t0) / span) * (W - left - right);
  // Greedy label rows: a label goes in the first row where it does not overlap another.
  const rowEnds = [];
  const placed = marks.map((m) => {
    const px = x(m.at);
    const w = m.label.length * 6.4 + 10;
    const toLeft = px + w > W - right;
    const from = toLeft ? px - w : px;
    let row = rowEnds.findIndex((e) => e <= from);
    if (row < 0 && rowEnds.length < maxRows) { row = rowEnds.length; rowEnds.push(0); }
    if (row >= 0) rowEnds[row] = from + w;
    return { ...m, px, row, anchor: toLeft ? 'end' : 'start' };
  });
  const H = axisY + 12 + Math.max(rowEnds.length, 1) * rowH + 18;
  return html`<section class="panel" data-testid="timeline">
    <h2>Timeline <span class="muted small">${fmtDuration(end - t0)}${inv.completed_at ? '' : ' so far'}</span></h2>
    <svg class="timeline" viewBox=${`0 0 ${W} ${H}`} role="img" aria-label="Timeline of the invocation: creation, attempts and completion">
      <line class="axis" x1=${left} x2=${W - right} y1=${axisY} y2=${axisY} />
      ${placed.map((m) => {
        const ly = axisY + 12 + m.row * rowH + 10;
        return html`<g>
          <title>${`${m.label} at ${fmtTime(m.at)}${m.last && m.last > m.at ? ` – ${fmtTime(m.last)}` : ''}${m.message ? `\n${firstLine(m.message, 400)}` : ''}`}</title>
          ${m.last && m.last > m.at ? html`<rect class=${m.cls} x=${m.px} y=${axisY - 2} width=${Math.max(x(m.last) - m.px, 2)} height="4" opacity="0.45" />` : null}
          ${m.points.map((t) => html`<circle class=${m.cls} cx=${x(t)} cy=${axisY} r="5" />`)}
          ${m.row >= 0 ? html`<line x1=${m.px} x2=${m.px} y1=${axisY + 5} y2=${ly - 10} stroke="currentColor" opacity="0.3" />
            <text x=${m.anchor === 'end' ? m.px + 4 : m.px - 4} y=${ly} text-anchor=${m.anchor}>${m.label}</text>` : null}
        </g>`;
      })}
      <text x=${left} y=${H - 4}>${fmtTime(t0)}</text>
      <text x=${W - right} y=${H - 4} text-anchor="end">${inv.completed_at ? fmtTime(end) : 'now'}</text>
    </svg>
    ${runs.length ? html`<table class="plain small" data-testid="events">
      <tbody>${runs.map((r) => html`<tr data-testid="event">
        <td class="nowrap muted">${fmtTime(r.at)}${r.last > r.at ? html` – ${fmtTime(r.last)}` : null}</td>
        <td class="nowrap">${humanKind(r.kind)}${r.code ? ` [${r.code}]` : ''}${r.count > 1 ? ` ×${r.count}` : ''}</td>
        <td class="mono" title=${r.message || ''}>${firstLine(r.message)}</td>
      </tr>`)}</tbody>
    </table>` : null}
  </section>`;
}

// ---------------------------------------------------------------- actions

function RestartAsNew({ onRestart }) {
  const [deployment, setDeployment] = useState('latest');
  const { data } = useLive(() => api('/deployments').then((r) => r?.deployments || []), [], { events: ['schema'] });
  return html`<span class="toolbar" style="margin:0">
    <select value=${deployment} onChange=${(e) => setDeployment(e.target.value)} aria-label="Deployment for the restart" data-testid="restart-deployment">
      <option value="latest">latest deployment</option>
      <option value="keep">same deployment</option>
      ${(data || []).map((d) => html`<option value=${d.id}>${d.id}</option>`)}
    </select>
    <${ConfirmButton} label="Restart as new" testid="action-restart-as-new" confirmText="Start a new invocation with the same input?"
      onConfirm=${() => onRestart(null, deployment)} />
  </span>`;
}

function Actions({ inv, reload, onRestart, setNotice }) {
  const active = ACTIVE.has(inv.status);
  const run = (op, msg) => async () => {
    await patch(inv.id, op);
    setNotice(msg);
    reload();
  };
  const btn = (op, label, confirmText, msg, danger = false) => html`<${ConfirmButton} label=${label}
    testid=${`action-${op === 'resume' && label === 'Retry now' ? 'retry-now' : op}`} danger=${danger}
    confirmText=${confirmText} onConfirm=${run(op, msg)} />`;
  return html`<div class="toolbar" data-testid="actions">
    ${inv.status === 'backing-off' ? btn('resume', 'Retry now', 'Retry now instead of waiting for the next attempt?', 'Retrying now.') : null}
    ${active ? btn('cancel', 'Cancel', 'Cancel this invocation? It runs its compensations and fails with "cancelled".', 'Cancellation requested.', true) : null}
    ${active ? btn('kill', 'Kill', 'Kill this invocation? It stops at once without compensations.', 'Killed.', true) : null}
    ${active && inv.status !== 'paused' ? btn('pause', 'Pause', 'Pause this invocation?', 'Paused.') : null}
    ${inv.status === 'paused' || inv.status === 'suspended' || inv.status === 'backing-off' ? btn('resume', 'Resume', 'Resume this invocation?', 'Resumed.') : null}
    ${!active ? btn('purge', 'Purge', 'Purge this invocation? Its status, journal and result are deleted.', 'Purged.', true) : null}
    ${!active ? html`<${RestartAsNew} onRestart=${onRestart} />` : null}
  </div>`;
}

// ---------------------------------------------------------------- page

export default function Page({ params }) {
  const id = params.id;
  const [notice, setNotice] = useState(null);
  const [purged, setPurged] = useState(false);
  const { data, error, loading, reload } = useLive(() => api(`/internal/ui/invocations/${encodeURIComponent(id)}`), [id]);

  const restart = async (from, deployment) => {
    const q = new URLSearchParams();
    if (from !== null && from !== undefined) q.set('from', String(from));
    if (deployment && deployment !== 'latest') q.set('deployment', deployment);
    const qs = q.toString() ? `?${q}` : '';
    const r = await patch(id, 'restart-as-new', qs);
    if (r?.new_invocation_id) navigate(invHref(r.new_invocation_id));
  };
  const setNoticeAndTrack = (msg) => { setNotice(msg); if (msg === 'Purged.') setPurged(true); };

  const inv = data?.invocation?.id === id ? data.invocation : null; // not the previous page's
  const enc = encodeURIComponent(id);
  const equivalent = html`<${Equivalent}
    cli=${[`restate invocations describe ${id}`, `restate invocations cancel ${id}`, `restate invocations kill ${id}`,
      `restate invocations pause ${id}`, `restate invocations resume ${id}`, `restate invocations purge ${id}`,
      `restate invocations restart-as-new ${id}`]}
    curl=${[curlFor('GET', `/internal/ui/invocations/${enc}`),
      ...['cancel', 'kill', 'pause', 'resume', 'purge', 'restart-as-new'].map((op) => curlFor('PATCH', `/invocations/${enc}/${op}`)),
      curlFor('PATCH', `/invocations/${enc}/restart-as-new?from=<index>`)]}
    sql=${[`SELECT * FROM sys_invocation WHERE id = ${sqlStr(id)}`, `SELECT * FROM sys_journal WHERE id = ${sqlStr(id)} ORDER BY index`]} />`;

  if (purged && error?.status === 404) {
    return html`<section><h1>Invocation</h1>
      <div class="notice ok" role="status" data-testid="notice">Invocation <span class="mono">${id}</span> was purged.
        <${Link} href="/ui/invocations">Back to the list</${Link}>.</div></section>`;
  }
  return html`<section>
    <h1>Invocation</h1>
    <p><${Link} href="/ui/invocations">← Invocations</${Link}></p>
    <${ErrorBox} error=${error} />
    ${loading && !inv ? html`<p class="muted">Loading…</p>` : null}
    ${inv ? html`
      <div class="panel">
        <${Facts} inv=${inv} />
        <${Actions} inv=${inv} reload=${reload} onRestart=${restart} setNotice=${setNoticeAndTrack} />
        ${notice ? html`<div class="notice ok" role="status" data-testid="notice">${notice}</div>` : null}
      </div>
      <${Failure} inv=${inv} />
      <${BlockedBy} chain=${data.blocked_by} reload=${reload} />
      <${WaitingOn} items=${data.waiting_on} />
      <${Calls} caller=${data.caller} callees=${data.callees} />
      <${Timeline} inv=${inv} events=${data.events} />
      <${Journal} id=${id} journal=${data.journal} active=${ACTIVE.has(inv.status)} onRestart=${(from) => restart(from, 'latest')} />
    ` : null}
    ${equivalent}
  </section>`;
}
