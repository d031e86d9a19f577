// State pages: /ui/state (services that keep state: virtual objects and workflows),
// /ui/state/:service (keys with state, paged by cursor) and /ui/state/:service/:key (the
// entries with size-gated previews and downloads, and editing: change values as JSON text,
// add and remove entries, clear; saved with the version guard, then re-read to tell whether
// the edit was applied, is queued behind the object's lock, or lost to someone else's edit).
import {
  html, api, useLive, useState, useEffect, useRef, Link, navigate, ErrorBox, Equivalent, curlFor,
  fmtBytes,
} from '../lib.js';
import {
  enc, shq, sqlLit, parseJson, utf8Bytes, utf8Text, fetchBytes, stateVersion, EMPTY_STATE_VERSION,
  DownloadLink, ConfirmButton, useAction, usePageStyles, minifyJson, prettyJson,
} from './forms.js';

const PAGE = 50;
const EDIT_MAX = 64 * 1024; // values up to this size can be edited as text here
const DOM_BUDGET = 64 * 1024; // preview characters put on the page at most

export default function Page({ params, query }) {
  usePageStyles();
  if (!params.service) return html`<${StateServices} />`;
  if (params.key === undefined) return html`<${StateKeys} key=${params.service} service=${params.service} />`;
  return html`<${StateKey} key=${`${params.service}\u0000${params.key}`} service=${params.service} objKey=${params.key} />`;
}

// ---------------------------------------------------------------- /ui/state

function StateServices() {
  const { data, error, loading } = useLive(() => api('/services'), [], { events: ['schema'] });
  const keyed = (data?.services || []).filter((s) => s.ty === 'VirtualObject' || s.ty === 'Workflow')
    .sort((a, b) => a.name.localeCompare(b.name));
  return html`<section>
    <h1>State</h1>
    <p class="muted">Virtual objects and workflows keep state per key. Pick a service to see its keys.</p>
    <${ErrorBox} error=${error} />
    ${loading && !data ? html`<p class="muted">Loading…</p>` : null}
    ${data && !keyed.length ? html`<p class="notice" data-testid="empty">No virtual object or workflow is registered.</p>` : null}
    ${keyed.length ? html`<div class="table-wrap"><table data-rows data-testid="state-services">
      <thead><tr><th>Service</th><th>Type</th><th>Go to</th></tr></thead>
      <tbody>${keyed.map((s) => html`<tr key=${s.name} data-href=${`/ui/state/${enc(s.name)}`} data-testid="state-service-row">
        <td><${Link} href=${`/ui/state/${enc(s.name)}`}><strong>${s.name}</strong></${Link}></td>
        <td>${s.ty === 'Workflow' ? 'workflow' : 'virtual object'}</td>
        <td class="small"><${Link} href=${`/ui/services/${enc(s.name)}`}>service</${Link}></td>
      </tr>`)}</tbody></table></div>` : null}
    ${keyed.length ? html`<${OpenKey} services=${keyed.map((s) => s.name)} />` : null}
    <${Equivalent} cli="restate kv get <service> <key>"
      sql="SELECT service_name, count(DISTINCT service_key) AS keys FROM state GROUP BY service_name ORDER BY service_name" />
  </section>`;
}

function OpenKey({ services, service }) {
  const [svc, setSvc] = useState(service || services?.[0] || '');
  const [key, setKey] = useState('');
  const go = (e) => {
    e.preventDefault();
    if (!svc) return;
    navigate(`/ui/state/${enc(svc)}/${enc(key)}`);
  };
  return html`<form class="toolbar" onSubmit=${go} data-testid="open-key">
    <span>Open a key:</span>
    ${service ? null : html`<select value=${svc} onChange=${(e) => setSvc(e.target.value)} aria-label="Service">
      ${services.map((s) => html`<option value=${s}>${s}</option>`)}</select>`}
    <input type="text" placeholder="key" value=${key} onInput=${(e) => setKey(e.target.value)} aria-label="Key" data-testid="open-key-input" />
    <button type="submit">Open</button>
    <span class="hint">Also for a key without state yet, to add some.</span>
  </form>`;
}

// ---------------------------------------------------------------- /ui/state/:service

function StateKeys({ service }) {
  const [pages, setPages] = useState(1);
  const svc = useLive(() => api(`/services/${enc(service)}`), [service], { events: ['schema'] });
  const { data, error, loading } = useLive(async () => {
    const keys = [];
    let cursor = null;
    let next = null;
    for (let i = 0; i < pages; i++) {
      const r = await api(`/internal/ui/state/${enc(service)}`, { query: { limit: PAGE, cursor } });
      keys.push(...(r?.keys || []));
      next = r?.next_cursor ?? null;
      if (!next) break;
      cursor = next;
    }
    return { keys, next };
  }, [service, pages], { events: ['applied'] });
  const ty = svc.data?.ty;
  const keys = data?.keys || [];
  const hasBytes = keys.some((k) => k.bytes !== undefined && k.bytes !== null);

  return html`<section>
    <h1>State of <code data-testid="state-service">${service}</code></h1>
    <div class="row-actions small"><${Link} href="/ui/state">All services with state</${Link}>
      <${Link} href=${`/ui/services/${enc(service)}`}>Service ${service}</${Link}>
      ${ty === 'Workflow' ? html`<${Link} href=${`/ui/workflows?service=${enc(service)}`}>Workflow runs</${Link}>` : null}</div>
    <${ErrorBox} error=${svc.error} />
    ${ty === 'Service' ? html`<p class="notice warn">${service} is a plain service: it keeps no state.</p>` : null}
    <${ErrorBox} error=${error} />
    <${OpenKey} service=${service} />
    ${loading && !data ? html`<p class="muted">Loading…</p>` : null}
    ${data && !keys.length ? html`<p class="notice" data-testid="empty">No key of ${service} has state.</p>` : null}
    ${keys.length ? html`<div class="table-wrap"><table data-rows data-testid="state-keys">
      <thead><tr><th>Key</th><th class="num">Entries</th>${hasBytes ? html`<th class="num">Size</th>` : null}<th>Go to</th></tr></thead>
      <tbody>${keys.map((k) => html`<tr key=${k.key} data-href=${`/ui/state/${enc(service)}/${enc(k.key)}`} data-testid="state-key-row" data-key=${k.key}>
        <td><${Link} href=${`/ui/state/${enc(service)}/${enc(k.key)}`}><code>${k.key === '' ? '(empty key)' : k.key}</code></${Link}></td>
        <td class="num">${k.entries}</td>
        ${hasBytes ? html`<td class="num">${fmtBytes(k.bytes)}</td>` : null}
        <td class="small"><div class="row-actions">
          ${ty === 'VirtualObject' ? html`<${Link} href=${`/ui/objects/${enc(service)}/${enc(k.key)}`}>object</${Link}>` : null}
          ${ty === 'Workflow' ? html`<${Link} href=${`/ui/workflows?service=${enc(service)}&key=${enc(k.key)}`}>workflow</${Link}>` : null}
          <${Link} href=${`/ui/invocations?service=${enc(service)}&key=${enc(k.key)}`}>invocations</${Link}>
        </div></td>
      </tr>`)}</tbody></table></div>` : null}
    <div class="form-actions">
      ${data?.next ? html`<button type="button" onClick=${() => setPages(pages + 1)} disabled=${loading} data-testid="load-more">Load more</button>` : null}
      ${keys.length ? html`<span class="muted small">${keys.length} keys shown${data?.next ? ', more available' : ''}</span>` : null}
    </div>
    <${Equivalent} cli=${`restate kv get ${shq(service)} <key>`}
      curl=${curlFor('GET', `/internal/ui/state/${enc(service)}?limit=${PAGE}`)}
      sql=${`SELECT service_key, count(*) AS entries, sum(value_length) AS bytes FROM state WHERE service_name = ${sqlLit(service)} GROUP BY service_key ORDER BY service_key`} />
  </section>`;
}

// ---------------------------------------------------------------- /ui/state/:service/:key

async function readState(service, key) {
  try {
    return await api(`/internal/ui/state/${enc(service)}/${enc(key)}`);
  } catch (e) {
    if (e.status !== 404) throw e;
    // No state for this key (or no such service): tell the two apart.
    const svc = await api(`/services/${enc(service)}`);
    return { service, key, version: EMPTY_STATE_VERSION, entries: [], service_type: svc.ty };
  }
}

function valuePath(service, key, name) {
  return `/internal/ui/state/${enc(service)}/${enc(key)}/${enc(name)}`;
}

function prettyPreview(e) {
  if (e.json && !e.truncated) return prettyJson(e.preview ?? '');
  return e.preview ?? '';
}

function StateKey({ service, objKey }) {
  const svc = useLive(() => api(`/services/${enc(service)}`), [service], { events: ['schema'] });
  const live = useLive(() => readState(service, objKey), [service, objKey], { events: ['applied'] });
  const [editing, setEditing] = useState(null); // {version, entries} snapshot the edit started from
  const [outcome, setOutcome] = useState(null); // {kind: 'applied'|'lost'|'queued'|'pending', ...}
  const pending = useRef(null); // {expected, sentVersion, names}
  const data = live.data;
  const ty = svc.data?.ty || data?.service_type;

  // A queued or not yet applied edit: decide when a later read shows it applied or lost.
  useEffect(() => {
    const p = pending.current;
    if (!p || !data) return;
    const verdict = judge(p, data);
    if (verdict) {
      pending.current = null;
      setOutcome(verdict);
    }
  }, [data?.version]);

  const afterSave = async (p) => {
    // The 202 means the partition took the edit; re-read until it shows up (or someone
    // else's edit does). An edit still invisible while an invocation holds the object is
    // queued behind it: say so, and let the live updates decide later.
    pending.current = p;
    setEditing(null);
    let lockChecked = false;
    for (const wait of [0, 150, 300, 600, 1200]) {
      if (wait) await new Promise((r) => setTimeout(r, wait));
      if (!pending.current) return;
      let now;
      try { now = await readState(service, objKey); } catch { continue; }
      const verdict = judge(p, now);
      if (verdict) {
        pending.current = null;
        setOutcome(verdict);
        live.reload();
        return;
      }
      if (!lockChecked && wait >= 150) {
        lockChecked = true;
        let lock = null;
        try { lock = (await api(`/internal/ui/objects/${enc(service)}/${enc(objKey)}`))?.lock; } catch { /* unknown */ }
        if (lock && pending.current) {
          setOutcome({ kind: 'queued', lock });
          return;
        }
      }
    }
    if (pending.current) setOutcome({ kind: 'pending' });
    live.reload();
  };

  if (live.error && !data) {
    return html`<section><h1>State of <code>${service}</code> / <code>${objKey}</code></h1>
      <${ErrorBox} error=${live.error} />
      <p><${Link} href=${`/ui/state/${enc(service)}`}>All keys of ${service}</${Link}></p></section>`;
  }

  const entries = data?.entries || [];
  const stale = editing && data && editing.version !== data.version;
  const sqlText = `SELECT * FROM state WHERE service_name = ${sqlLit(service)} AND service_key = ${sqlLit(objKey)}`;

  return html`<section>
    <h1>State of <code data-testid="state-service">${service}</code> / <code data-testid="state-key">${objKey === '' ? '(empty key)' : objKey}</code></h1>
    <div class="row-actions small"><${Link} href=${`/ui/state/${enc(service)}`}>All keys of ${service}</${Link}>
      ${ty === 'VirtualObject' ? html`<${Link} href=${`/ui/objects/${enc(service)}/${enc(objKey)}`} data-testid="link-object">Object (lock and inbox)</${Link}>` : null}
      ${ty === 'Workflow' ? html`<${Link} href=${`/ui/workflows?service=${enc(service)}&key=${enc(objKey)}`}>Workflow run and promises</${Link}>` : null}
      <${Link} href=${`/ui/invocations?service=${enc(service)}&key=${enc(objKey)}`} data-testid="link-invocations">Invocations</${Link}></div>
    <${ErrorBox} error=${live.error || svc.error} />
    <${Outcome} outcome=${outcome} onDismiss=${() => setOutcome(null)} />
    ${data ? html`<p class="muted small">${`${entries.length} ${entries.length === 1 ? 'entry' : 'entries'}, ${fmtBytes(entries.reduce((n, e) => n + (e.size || 0), 0))}, version `}<code data-testid="state-version">${data.version}</code></p>` : null}
    ${live.loading && !data ? html`<p class="muted">Loading…</p>` : null}

    ${data && !editing && !svc.error ? html`
      <${EntriesView} entries=${entries} service=${service} objKey=${objKey} />
      <div class="form-actions">
        <button type="button" class="primary" data-testid="edit-state"
          onClick=${() => { setOutcome(null); setEditing({ version: data.version, entries }); }}>${entries.length ? 'Edit state' : 'Add state'}</button>
        ${entries.length ? html`<${ClearButton} service=${service} objKey=${objKey} version=${data.version}
          onSent=${(p) => { setOutcome(null); afterSave(p); }} />` : null}
      </div>` : null}

    ${editing ? html`
      ${stale ? html`<p class="notice warn" data-testid="stale">The state changed while you were editing (now version <code>${data.version}</code>). Saving would change nothing: the server keeps the other edit. Cancel and edit again.</p>` : null}
      <${Editor} service=${service} objKey=${objKey} base=${editing}
        onCancel=${() => setEditing(null)} onSent=${afterSave} />` : null}

    <${Equivalent}
      cli=${[`restate kv get ${shq(service)} ${shq(objKey)}`, `restate kv edit ${shq(service)} ${shq(objKey)}`, `restate kv clear ${shq(`${service}/${objKey}`)}`]}
      curl=${[curlFor('GET', `/internal/ui/state/${enc(service)}/${enc(objKey)}`),
        curlFor('POST', `/services/${enc(service)}/state`, { object_key: objKey, new_state: { name: Array.from(utf8Bytes('"value"')) }, version: data?.version || '<version>' })]}
      sql=${sqlText} />
  </section>`;
}

// Did the edit `p` land? Answers a verdict, or null while the state still has the old version.
function judge(p, now) {
  if (p.expected ? now.version === p.expected : sameShape(now.entries, p.shape)) return { kind: 'applied', version: now.version };
  if (now.version !== p.sentVersion) return { kind: 'lost', version: now.version };
  if (p.expected && p.expected === p.sentVersion) return { kind: 'applied', version: now.version };
  return null;
}

function sameShape(entries, shape) {
  const a = (entries || []).map((e) => `${e.name}\u0000${e.size}`).sort().join('\u0001');
  return a === shape;
}

function Outcome({ outcome, onDismiss }) {
  if (!outcome) return null;
  const close = html` <button type="button" class="link-btn" onClick=${onDismiss}>dismiss</button>`;
  switch (outcome.kind) {
    case 'applied':
      return html`<p class="notice ok" data-testid="save-outcome" data-outcome="applied">Saved: the state now has version <code>${outcome.version}</code>.${close}</p>`;
    case 'lost':
      return html`<p class="notice warn" role="alert" data-testid="save-outcome" data-outcome="lost">State changed by someone else; reloaded, nothing saved.${close}</p>`;
    case 'queued':
      return html`<p class="notice" data-testid="save-outcome" data-outcome="queued">${'The edit is queued behind '}<${Link}
        href=${`/ui/invocations/${enc(outcome.lock.invocation_id)}`}><code>${outcome.lock.invocation_id}</code></${Link}>${
        ` (${outcome.lock.handler}), which holds the object. It applies when its turn comes if the state is still the one you edited; this page then says whether it did.`}${close}</p>`;
    default:
      return html`<p class="notice" data-testid="save-outcome" data-outcome="pending">The server accepted the edit; it is not visible yet. This page updates when it is.${close}</p>`;
  }
}

function EntriesView({ entries, service, objKey }) {
  const [shown, setShown] = useState({});
  if (!entries.length) return html`<p class="notice" data-testid="empty">This key has no state.</p>`;
  let budget = DOM_BUDGET;
  return html`<div class="table-wrap"><table data-testid="state-entries">
    <thead><tr><th>Name</th><th class="num">Size</th><th>Value</th></tr></thead>
    <tbody>${entries.map((e) => {
      const text = prettyPreview(e);
      const fits = text.length <= budget || shown[e.name];
      if (fits) budget -= Math.min(text.length, budget);
      return html`<tr key=${e.name} data-testid="state-entry" data-name=${e.name}>
        <td><code>${e.name}</code></td>
        <td class="num nowrap">${fmtBytes(e.size)}</td>
        <td>
          ${fits ? html`<pre class="pre-box preview" data-testid="entry-preview">${text}</pre>`
            : html`<button type="button" onClick=${() => setShown({ ...shown, [e.name]: true })}>Show preview</button>`}
          ${e.truncated || !e.json ? html`<div class="small muted">
            ${e.truncated ? `Preview of the first ${fmtBytes(text.length)} of ${fmtBytes(e.size)}. ` : ''}
            ${!e.json ? 'Not JSON. ' : ''}
            <${DownloadLink} href=${valuePath(service, objKey, e.name)} filename=${`${service}-${objKey}-${e.name}`}>Download the value</${DownloadLink}>
          </div>` : null}
        </td></tr>`;
    })}</tbody></table></div>`;
}

function ClearButton({ service, objKey, version, onSent }) {
  const act = useAction();
  const clear = () => act.run(async () => {
    await api(`/services/${enc(service)}/state`, { method: 'POST', body: { object_key: objKey, new_state: {}, version } });
    onSent({ expected: EMPTY_STATE_VERSION, sentVersion: version, shape: '' });
  });
  return html`<${ConfirmButton} label="Clear all state" testid="clear-state" disabled=${act.busy}
      question="Remove every entry of this key?" confirmLabel="Clear" onConfirm=${clear} />
    <${ErrorBox} error=${act.error} />`;
}

// The edit form. Rows: existing entries (kept as they are unless edited or removed) and new
// ones. Values are JSON text; they are checked before anything is sent.
function Editor({ service, objKey, base, onCancel, onSent }) {
  const [rows, setRows] = useState(() => base.entries.map((e) => ({
    name: e.name, size: e.size, existing: true, text: null, edited: false, removed: false, loading: false, note: null,
  })));
  const [newName, setNewName] = useState('');
  const [newText, setNewText] = useState('');
  const [addErr, setAddErr] = useState(null);
  const act = useAction();

  const update = (i, patch) => setRows((rs) => rs.map((r, j) => (j === i ? { ...r, ...patch } : r)));

  const startEdit = async (i) => {
    const r = rows[i];
    if (r.size > EDIT_MAX) return update(i, { note: `Too large to edit here (${fmtBytes(r.size)}); it is kept as it is.` });
    update(i, { loading: true, note: null });
    try {
      const bytes = await fetchBytes(valuePath(service, objKey, r.name));
      const text = utf8Text(bytes);
      if (text === null || !parseJson(text).ok) {
        return update(i, { loading: false, note: 'Not JSON; it can only be kept as it is or removed here.' });
      }
      update(i, { loading: false, text: prettyJson(text), original: text, edited: true });
    } catch (e) {
      update(i, { loading: false, note: `Could not read the value: ${e.message}` });
    }
  };

  const add = () => {
    const name = newName;
    if (!name) return setAddErr('Enter a name for the new entry.');
    if (rows.some((r) => r.name === name && !r.removed)) return setAddErr(`An entry named "${name}" exists already; edit it instead.`);
    const p = parseJson(newText);
    if (!p.ok) return setAddErr(`${name}: ${p.message}`);
    setRows((rs) => [...rs.filter((r) => r.name !== name), { name, existing: false, text: newText, edited: true, removed: false }]);
    setNewName('');
    setNewText('');
    setAddErr(null);
  };

  const save = (e) => {
    e.preventDefault();
    const kept = rows.filter((r) => !r.removed);
    for (const r of kept) {
      if (r.edited) {
        const p = parseJson(r.text ?? '');
        if (!p.ok) return act.fail(`${r.name}: ${p.message}`);
      }
    }
    const differs = (r) => r.edited && minifyJson(r.text) !== minifyJson(r.original);
    const changed = rows.some((r) => r.removed || !r.existing || differs(r));
    if (!changed) return act.fail('Nothing changed.');
    act.run(async () => {
      const state = new Map();
      for (const r of kept) {
        if (!r.existing || differs(r)) state.set(r.name, utf8Bytes(minifyJson(r.text)));
        else {
          // A kept entry someone removed meanwhile: the state moved on, so the version guard
          // makes the server refuse this edit; send it anyway and let the outcome say so.
          try {
            state.set(r.name, await fetchBytes(valuePath(service, objKey, r.name)));
          } catch (err) {
            if (err?.status !== 404) throw err;
          }
        }
      }
      const newState = {};
      for (const [k, v] of state) newState[k] = Array.from(v);
      const expected = await stateVersion(state);
      await api(`/services/${enc(service)}/state`, {
        method: 'POST', body: { object_key: objKey, new_state: newState, version: base.version },
      });
      const shape = [...state].map(([k, v]) => `${k}\u0000${v.length}`).sort().join('\u0001');
      onSent({ expected, sentVersion: base.version, shape });
      return true;
    });
  };

  return html`<form class="panel" onSubmit=${save} data-testid="state-editor">
    <h2>Edit state</h2>
    <p class="hint">Saving replaces the key's whole state, guarded by version <code>${base.version}</code>:
      if anyone changes the state first, the server keeps their change and this edit does nothing.</p>
    ${rows.length ? html`<div class="table-wrap"><table>
      <thead><tr><th>Name</th><th class="num">Size</th><th>Value (JSON)</th><th></th></tr></thead>
      <tbody>${rows.map((r, i) => html`<tr key=${r.name} data-testid="edit-row" data-name=${r.name}
          style=${r.removed ? 'opacity:.5' : ''}>
        <td><code>${r.name}</code>${r.existing ? null : html` <span class="badge latest">new</span>`}</td>
        <td class="num nowrap">${r.existing ? fmtBytes(r.size) : ''}</td>
        <td>${r.removed ? html`<span class="muted">removed</span>`
          : r.edited ? html`<textarea class="code-area" rows=${Math.min(16, Math.max(3, (r.text || '').split('\n').length))}
              value=${r.text} data-testid="edit-value" aria-label=${`Value of ${r.name}`}
              onInput=${(e) => update(i, { text: e.target.value })}></textarea>
              ${(() => { const p = parseJson(r.text ?? ''); return p.ok ? null : html`<div class="form-error small" data-testid="json-error">${p.message}</div>`; })()}`
          : r.loading ? html`<span class="muted">Loading…</span>`
          : html`<span class="muted">kept as it is</span>
              ${r.note ? null : html` <button type="button" onClick=${() => startEdit(i)} data-testid="edit-entry">Edit value</button>`}`}
          ${r.note ? html`<div class="small muted">${r.note}</div>` : null}</td>
        <td><button type="button" data-testid="remove-entry"
          onClick=${() => (r.existing ? update(i, { removed: !r.removed }) : setRows((rs) => rs.filter((_, j) => j !== i)))}>
          ${r.removed ? 'Keep' : 'Remove'}</button></td>
      </tr>`)}</tbody></table></div>` : html`<p class="muted">No entries yet.</p>`}

    <h3>Add an entry</h3>
    <div class="form-grid">
      <label for="new-name">Name</label>
      <input id="new-name" type="text" value=${newName} onInput=${(e) => setNewName(e.target.value)} data-testid="new-name" />
      <label for="new-value">Value (JSON)</label>
      <textarea id="new-value" class="code-area" rows="3" value=${newText} placeholder='{"count": 1}'
        onInput=${(e) => setNewText(e.target.value)} data-testid="new-value"></textarea>
      <span></span>
      <div><button type="button" onClick=${add} data-testid="add-entry">Add</button>
        ${addErr ? html` <span class="form-error" role="alert" data-testid="add-error">${addErr}</span>` : null}</div>
    </div>

    <div class="form-actions">
      <button type="submit" class="primary" disabled=${act.busy} data-testid="save-state">${act.busy ? 'Saving…' : 'Save'}</button>
      <button type="button" onClick=${onCancel} disabled=${act.busy}>Cancel</button>
    </div>
    <${ErrorBox} error=${act.error} />
  </form>`;
}
