// Deployments page (/ui/deployments): the registered deployments with their services and
// revisions, in-flight invocations pinned to each (from SQL) and a "drained" badge, the
// register form (dry run shows what discovery found and how it differs from what is
// registered), the update form (PATCH) and removal (DELETE ?force=true) with a confirm step.
import {
  html, api, useLive, useState, useEffect, Link, ErrorBox, Equivalent, curlFor, CopyId, fmtTime, fmtAgo,
} from '../lib.js';
import {
  runSql, useAction, ConfirmButton, parseHeaderLines, headerLines, toMs, shq, enc,
  usePageStyles,
} from './forms.js';

const PIN_SQL = "SELECT pinned_deployment_id AS deployment, count(*) AS n FROM sys_invocation WHERE status NOT IN ('completed') GROUP BY 1";

export default function Page() {
  usePageStyles();
  const schema = useLive(async () => {
    const [d, s] = await Promise.all([api('/deployments'), api('/services')]);
    return { deployments: d?.deployments || [], services: s?.services || [] };
  }, [], { events: ['schema'] });
  const pins = useLive(async () => {
    const rows = await runSql(PIN_SQL);
    const m = new Map();
    for (const r of rows) if (r.deployment) m.set(r.deployment, Number(r.n));
    return m;
  }, [], { events: ['applied', 'schema'] });
  const [editing, setEditing] = useState(null);
  const del = useAction();
  const [deleted, setDeleted] = useState(null);

  const deployments = [...(schema.data?.deployments || [])]
    .sort((a, b) => (toMs(b.created_at) ?? 0) - (toMs(a.created_at) ?? 0));
  const services = schema.data?.services || [];
  const latestFor = new Map(); // deployment id -> [service names]
  for (const s of services) {
    if (!latestFor.has(s.deployment_id)) latestFor.set(s.deployment_id, []);
    latestFor.get(s.deployment_id).push(s.name);
  }

  const remove = (d) => del.run(async () => {
    await api(`/deployments/${enc(d.id)}`, { method: 'DELETE', query: { force: 'true' } });
    setDeleted(d.id);
    if (editing === d.id) setEditing(null);
    schema.reload();
    pins.reload();
    return d.id;
  });

  const editDep = deployments.find((d) => d.id === editing);
  // Links like /ui/deployments#dp_… (from the services pages) point at one row.
  const target = location.hash.slice(1);
  useEffect(() => {
    if (target && schema.data) document.getElementById(target)?.scrollIntoView({ block: 'center' });
  }, [target, !!schema.data]);

  return html`<section>
    <h1>Deployments</h1>
    <p class="muted">Each deployment is a service endpoint Ratchet discovered. Invocations stay
      pinned to the deployment they started on; a deployment that is no longer the latest for
      any service and has no invocation in flight is <span class="badge drained">drained</span> and safe to remove.</p>
    <${ErrorBox} error=${schema.error} />
    ${pins.error ? html`<p class="notice warn" data-testid="pins-error">In-flight counts are unavailable: ${pins.error.message}</p>` : null}
    ${del.error ? html`<${ErrorBox} error=${del.error} />` : null}
    ${deleted && !del.error ? html`<p class="notice ok" data-testid="deleted">Removed deployment <code>${deleted}</code>.</p>` : null}
    ${schema.loading && !schema.data ? html`<p class="muted">Loading…</p>` : null}
    ${schema.data && !deployments.length ? html`<p class="notice" data-testid="empty">No deployment is registered yet. Register one below.</p>` : null}
    ${deployments.length ? html`<div class="table-wrap"><table data-testid="deployments-table">
      <thead><tr><th>Deployment</th><th>Address</th><th>Services (revision)</th><th>Created</th>
        <th class="num">In flight</th><th>State</th><th>Actions</th></tr></thead>
      <tbody>${deployments.map((d) => {
        const latest = latestFor.get(d.id) || [];
        const pinned = pins.data ? (pins.data.get(d.id) || 0) : null;
        const drained = pinned === 0 && latest.length === 0;
        const created = toMs(d.created_at);
        return html`<tr key=${d.id} id=${d.id} class=${target === d.id ? 'selected' : ''} data-testid="deployment-row" data-id=${d.id}>
          <td><${CopyId} id=${d.id} /></td>
          <td><code>${d.uri || d.arn}</code>
            <div class="small muted">${[d.protocol_type, d.http_version, d.sdk_version].filter(Boolean).join(' · ')}</div>
            ${d.additional_headers && Object.keys(d.additional_headers).length
              ? html`<div class="small muted">headers: ${Object.keys(d.additional_headers).join(', ')}</div>` : null}</td>
          <td><div class="chips">${(d.services || []).map((s) => {
            const isLatest = latest.includes(s.name);
            return html`<${Link} class=${`chip ${isLatest ? '' : 'superseded'}`} href=${`/ui/services/${enc(s.name)}`}
              title=${isLatest ? 'latest revision' : 'a newer deployment serves this service'}>${s.name} (${s.revision})</${Link}>`;
          })}</div></td>
          <td class="nowrap" title=${d.created_at}>${fmtTime(created)}<div class="small muted">${fmtAgo(created)}</div></td>
          <td class="num" data-testid="pinned">${pinned === null ? '—'
            : pinned > 0 ? html`<${Link} href=${`/ui/invocations?deployment=${enc(d.id)}&status_not=succeeded,failed`}>${pinned}</${Link}>` : '0'}</td>
          <td>${drained ? html`<span class="badge drained" data-testid="drained">drained</span>`
            : latest.length ? html`<span class="badge latest" title=${latest.join(', ')}>latest for ${latest.length}</span>`
            : pinned > 0 ? html`<span class="badge active">draining</span>` : html`<span class="muted">—</span>`}</td>
          <td><div class="row-actions">
            <button type="button" data-testid="edit" onClick=${() => setEditing(editing === d.id ? null : d.id)}>
              ${editing === d.id ? 'Close' : 'Update'}</button>
            <${ConfirmButton} label="Remove" testid="remove" disabled=${del.busy}
              question=${latest.length ? `Remove? ${latest.join(', ')} will be removed too.` : 'Remove this deployment?'}
              confirmLabel="Remove" onConfirm=${() => remove(d)} />
          </div></td>
        </tr>`;
      })}</tbody></table></div>` : null}

    ${editDep ? html`<${UpdateForm} key=${editDep.id} dep=${editDep} services=${services}
      onDone=${() => { schema.reload(); }} onClose=${() => setEditing(null)} />` : null}

    <${RegisterForm} services=${services} onDone=${() => { schema.reload(); pins.reload(); }} />

    <${Equivalent}
      cli=${['restate deployments list', 'restate deployments register <uri>', 'restate deployments remove <deployment-id> --force']}
      curl=${[curlFor('GET', '/deployments'), curlFor('POST', '/deployments', { uri: 'http://127.0.0.1:9080' }),
        curlFor('DELETE', '/deployments/<deployment-id>?force=true')]}
      sql=${PIN_SQL} />
  </section>`;
}

// How a discovered service differs from the registered one of the same name.
function diffService(found, current) {
  if (!current) return { kind: 'new', text: 'new service' };
  const notes = [];
  if (current.ty !== found.ty) notes.push(`type ${current.ty} → ${found.ty}`);
  const before = new Set((current.handlers || []).map((h) => h.name));
  const after = new Set((found.handlers || []).map((h) => h.name));
  const added = [...after].filter((h) => !before.has(h));
  const removed = [...before].filter((h) => !after.has(h));
  if (added.length) notes.push(`+ ${added.join(', ')}`);
  if (removed.length) notes.push(`− ${removed.join(', ')}`);
  for (const h of found.handlers || []) {
    const old = (current.handlers || []).find((x) => x.name === h.name);
    if (old && (old.ty || '') !== (h.ty || '')) notes.push(`${h.name}: ${old.ty || 'handler'} → ${h.ty || 'handler'}`);
  }
  return { kind: notes.length ? 'changed' : 'same', text: notes.length ? notes.join('; ') : 'no change', breaking: current.ty !== found.ty || removed.length > 0 };
}

function DiscoveryResult({ result, services }) {
  if (!result) return null;
  const { status, body, dryRun, op } = result;
  const current = new Map(services.map((s) => [s.name, s]));
  const what = dryRun ? 'Dry run: nothing was stored. Discovery found:'
    : op === 'update' ? 'Updated. The deployment now serves:'
    : status === 201 ? 'Registered a new deployment.' : 'This deployment was already registered (same address and headers).';
  return html`<div class="notice ok" data-testid="discovery-result">
    <div>${what} ${body?.id ? html`<code>${body.id}</code>` : null}</div>
    <table class="plain" style="margin-top:6px"><thead><tr><th>Service</th><th>Type</th><th>Revision</th><th>Handlers</th>${dryRun ? html`<th>Compared with now</th>` : null}</tr></thead>
    <tbody>${(body?.services || []).map((s) => {
      const diff = diffService(s, current.get(s.name));
      return html`<tr data-testid="discovered-service"><td>${s.name}</td><td>${s.ty}</td><td>${s.revision}</td>
        <td class="small">${(s.handlers || []).map((h) => h.name + (h.ty ? ` (${h.ty})` : '')).join(', ')}</td>
        ${dryRun ? html`<td class=${diff.breaking ? 'form-error' : ''}>${diff.text}</td>` : null}</tr>`;
    })}</tbody></table>
  </div>`;
}

function RegisterForm({ services, onDone }) {
  const [uri, setUri] = useState('');
  const [headers, setHeaders] = useState('');
  const [http11, setHttp11] = useState(false);
  const [force, setForce] = useState(false);
  const [dryRun, setDryRun] = useState(false);
  const act = useAction();

  let headerObj = {};
  let headerErr = null;
  try { headerObj = parseHeaderLines(headers); } catch (e) { headerErr = e.message; }

  const body = () => {
    const b = { uri: uri.trim() };
    if (Object.keys(headerObj).length) b.additional_headers = headerObj;
    if (http11) b.use_http_11 = true;
    if (force) b.force = true;
    if (dryRun) b.dry_run = true;
    return b;
  };

  const submit = (e) => {
    e.preventDefault();
    const u = uri.trim();
    if (!u) return act.fail('Enter the deployment\'s address, e.g. http://127.0.0.1:9080');
    if (!/^[a-z][a-z0-9+.-]*:\/\/[^/\s]+/i.test(u)) return act.fail(`"${u}" is not an absolute URL (scheme://host:port)`);
    if (headerErr) return act.fail(headerErr);
    const b = body();
    act.run(async () => {
      const res = await api('/deployments', { method: 'POST', body: b, raw: true });
      const out = { status: res.status, body: await res.json().catch(() => null), dryRun: !!b.dry_run, op: 'register' };
      if (!b.dry_run) onDone();
      return out;
    });
  };

  const cli = ['restate deployments register', shq(uri.trim() || '<uri>')];
  for (const [k, v] of Object.entries(headerObj)) cli.push('--extra-header', shq(`${k}=${v}`));
  if (http11) cli.push('--use-http1.1');
  if (force) cli.push('--force');

  return html`<form class="panel" onSubmit=${submit} data-testid="register-form">
    <h2>Register a deployment</h2>
    <div class="form-grid">
      <label for="reg-uri">Address</label>
      <input id="reg-uri" name="uri" type="text" placeholder="http://127.0.0.1:9080" value=${uri}
        onInput=${(e) => setUri(e.target.value)} data-testid="register-uri" autocomplete="off" />
      <label for="reg-headers">Additional headers</label>
      <div><textarea id="reg-headers" rows="2" placeholder="x-api-key: secret" value=${headers}
        onInput=${(e) => setHeaders(e.target.value)} data-testid="register-headers"></textarea>
        <div class="hint">One <code>Name: value</code> per line; sent on discovery and every invocation.</div>
        ${headerErr ? html`<div class="form-error small">${headerErr}</div>` : null}</div>
      <span></span>
      <div class="split">
        <label><input type="checkbox" checked=${http11} onChange=${(e) => setHttp11(e.target.checked)} data-testid="register-http11" /> Use HTTP/1.1 (request-response)</label>
        <label><input type="checkbox" checked=${force} onChange=${(e) => setForce(e.target.checked)} data-testid="register-force" /> Force (overwrite, allow breaking changes)</label>
        <label><input type="checkbox" checked=${dryRun} onChange=${(e) => setDryRun(e.target.checked)} data-testid="register-dry-run" /> Dry run (discover only)</label>
      </div>
    </div>
    <div class="form-actions">
      <button type="submit" class="primary" disabled=${act.busy} data-testid="register-submit">
        ${act.busy ? 'Discovering…' : dryRun ? 'Discover' : 'Register'}</button>
    </div>
    <${ErrorBox} error=${act.error} />
    <${DiscoveryResult} result=${act.result} services=${services} />
    <${Equivalent} cli=${cli.join(' ')} curl=${curlFor('POST', '/deployments', body())} />
  </form>`;
}

function UpdateForm({ dep, services, onDone, onClose }) {
  const [uri, setUri] = useState(dep.uri || '');
  const [headers, setHeaders] = useState(headerLines(dep.additional_headers));
  const [http11, setHttp11] = useState(dep.http_version === 'HTTP/1.1');
  const [overwrite, setOverwrite] = useState(false);
  const [dryRun, setDryRun] = useState(false);
  const act = useAction();

  const submit = (e) => {
    e.preventDefault();
    let headerObj;
    try { headerObj = parseHeaderLines(headers); } catch (x) { return act.fail(x.message); }
    const u = uri.trim();
    if (!/^[a-z][a-z0-9+.-]*:\/\/[^/\s]+/i.test(u)) return act.fail(`"${u}" is not an absolute URL (scheme://host:port)`);
    const b = { uri: u, additional_headers: headerObj, use_http_11: http11 };
    if (overwrite) b.overwrite = true;
    if (dryRun) b.dry_run = true;
    act.run(async () => {
      const res = await api(`/deployments/${enc(dep.id)}`, { method: 'PATCH', body: b, raw: true });
      const out = { status: res.status, body: await res.json().catch(() => null), dryRun: !!b.dry_run, op: 'update' };
      if (!b.dry_run) onDone();
      return out;
    });
  };

  let curlBody;
  try { curlBody = { uri: uri.trim(), additional_headers: parseHeaderLines(headers), use_http_11: http11, ...(overwrite ? { overwrite: true } : {}), ...(dryRun ? { dry_run: true } : {}) }; } catch { curlBody = { uri: uri.trim() }; }

  return html`<form class="panel" onSubmit=${submit} data-testid="update-form">
    <h2>Update <code>${dep.id}</code></h2>
    <p class="muted small">Re-discovers at the address and keeps the id. Without <em>overwrite</em>, the
      new endpoint must still serve everything invocations pinned here run on.</p>
    <div class="form-grid">
      <label for="upd-uri">Address</label>
      <input id="upd-uri" type="text" value=${uri} onInput=${(e) => setUri(e.target.value)} data-testid="update-uri" />
      <label for="upd-headers">Additional headers</label>
      <div><textarea id="upd-headers" rows="2" value=${headers} onInput=${(e) => setHeaders(e.target.value)} data-testid="update-headers"></textarea>
        <div class="hint">Replaces all headers. One <code>Name: value</code> per line.</div></div>
      <span></span>
      <div class="split">
        <label><input type="checkbox" checked=${http11} onChange=${(e) => setHttp11(e.target.checked)} /> Use HTTP/1.1</label>
        <label><input type="checkbox" checked=${overwrite} onChange=${(e) => setOverwrite(e.target.checked)} data-testid="update-overwrite" /> Overwrite (allow breaking changes)</label>
        <label><input type="checkbox" checked=${dryRun} onChange=${(e) => setDryRun(e.target.checked)} data-testid="update-dry-run" /> Dry run</label>
      </div>
    </div>
    <div class="form-actions">
      <button type="submit" class="primary" disabled=${act.busy} data-testid="update-submit">${act.busy ? 'Discovering…' : 'Update'}</button>
      <button type="button" onClick=${onClose}>Close</button>
    </div>
    <${ErrorBox} error=${act.error} />
    <${DiscoveryResult} result=${act.result} services=${services} />
    <${Equivalent} curl=${curlFor('PATCH', `/deployments/${enc(dep.id)}`, curlBody)} />
  </form>`;
}
