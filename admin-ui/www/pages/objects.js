// Virtual object page (/ui/objects/:service/:key): which invocation holds the object's lock,
// the invocations queued in its inbox behind it, and links to its state and invocations.
// Live: refetched when partitions apply new records.
import {
  html, api, useLive, Link, ErrorBox, Equivalent, curlFor, StatusBadge, fmtTime, fmtAgo,
} from '../lib.js';
import { enc, shq, sqlLit, usePageStyles, toMs } from './forms.js';

export default function Page({ params }) {
  usePageStyles();
  const { service, key } = params;
  const { data, error, loading } = useLive(
    () => api(`/internal/ui/objects/${enc(service)}/${enc(key)}`), [service, key], { events: ['applied'] });
  const inbox = data?.inbox || [];
  const total = data?.inbox_total ?? inbox.length;
  const lock = data?.lock;

  return html`<section>
    <h1>Object <code data-testid="object-service">${service}</code> / <code data-testid="object-key">${key === '' ? '(empty key)' : key}</code></h1>
    <div class="row-actions small">
      <${Link} href=${`/ui/state/${enc(service)}/${enc(key)}`} data-testid="link-state">State${data ? ` (${data.state_entries} ${data.state_entries === 1 ? 'entry' : 'entries'})` : ''}</${Link}>
      <${Link} href=${`/ui/invocations?service=${enc(service)}&key=${enc(key)}`} data-testid="link-invocations">Invocations of this key</${Link}>
      <${Link} href=${`/ui/services/${enc(service)}`}>Service ${service}</${Link}>
    </div>
    <${ErrorBox} error=${error} />
    ${loading && !data ? html`<p class="muted">Loading…</p>` : null}
    ${data ? html`
      <div class="panel" data-testid="lock">
        <h2>Lock</h2>
        ${lock ? html`<dl class="facts">
            <dt>Held by</dt><dd><${Link} href=${`/ui/invocations/${enc(lock.invocation_id)}`} data-testid="lock-holder"><code>${lock.invocation_id}</code></${Link}></dd>
            <dt>Handler</dt><dd>${lock.handler}</dd>
            <dt>Status</dt><dd><${StatusBadge} status=${lock.status} /></dd>
          </dl>`
          : html`<p class="muted" data-testid="lock-free">Free: no exclusive handler runs on this key.</p>`}
      </div>
      <div class="panel">
        <h2>Inbox <span class="muted small" data-testid="inbox-total">${total} queued</span></h2>
        ${inbox.length ? html`<div class="table-wrap"><table data-rows data-testid="inbox">
          <thead><tr><th class="num">Position</th><th>Invocation</th><th>Handler</th><th>Created</th></tr></thead>
          <tbody>${inbox.map((r) => html`<tr key=${`${r.position}-${r.invocation_id}`} data-href=${r.invocation_id ? `/ui/invocations/${enc(r.invocation_id)}` : undefined} data-testid="inbox-row">
            <td class="num">${r.position}</td>
            <td>${r.invocation_id ? html`<${Link} href=${`/ui/invocations/${enc(r.invocation_id)}`}><code>${r.invocation_id}</code></${Link}>`
              : html`<${Link} href=${`/ui/state/${enc(service)}/${enc(key)}`}>a state edit</${Link}> <span class="muted small">(applies when its turn comes)</span>`}</td>
            <td>${r.handler}</td>
            <td class="nowrap">${fmtTime(toMs(r.created_at))} <span class="muted small">${fmtAgo(toMs(r.created_at))}</span></td>
          </tr>`)}</tbody></table></div>
          ${total > inbox.length ? html`<p class="muted small">Showing the first ${inbox.length} of ${total}.</p>` : null}`
          : html`<p class="muted" data-testid="inbox-empty">Nothing is queued.</p>`}
      </div>` : null}
    <${Equivalent}
      cli=${`restate kv get ${shq(service)} ${shq(key)}`}
      curl=${curlFor('GET', `/internal/ui/objects/${enc(service)}/${enc(key)}`)}
      sql=${[`SELECT * FROM sys_keyed_service_status WHERE service_name = ${sqlLit(service)} AND service_key = ${sqlLit(key)}`,
        `SELECT * FROM sys_inbox WHERE service_name = ${sqlLit(service)} AND service_key = ${sqlLit(key)} ORDER BY sequence_number`]} />
  </section>`;
}
