// Service page (/ui/services/:name): the service's facts, its handlers (type, input and
// output descriptions and JSON schemas, links to the playground and to invocations), and the
// configuration form (public, retentions, timeouts) that PATCHes /services/{name}.
import { html, api, useLive, useState, useEffect, Link, ErrorBox, Equivalent, curlFor } from '../lib.js';
import { enc, shq, useAction, usePageStyles, Clip } from './forms.js';

const TYPE_LABEL = { Service: 'service', VirtualObject: 'virtual object', Workflow: 'workflow' };

// The editable options, in Restate's field names, with the CLI's flag for each.
const DURATIONS = [
  ['idempotency_retention', 'Idempotency retention', '--idempotency-retention', 'How long the result of an invocation with an idempotency key is kept.'],
  ['workflow_completion_retention', 'Workflow completion retention', '--workflow-completion-retention', 'How long a finished workflow run (its result and promises) is kept.'],
  ['journal_retention', 'Journal retention', '--journal-retention', 'How long the journal of a completed invocation is kept (for inspection).'],
  ['inactivity_timeout', 'Inactivity timeout', '--inactivity-timeout', 'How long an attempt may stay silent before Ratchet asks it to suspend.'],
  ['abort_timeout', 'Abort timeout', '--abort-timeout', 'After the inactivity timeout, how long before the attempt is aborted.'],
];

const DURATION_RE = /^(0|P[0-9TDHMSW.,]+|(\d+(\.\d+)?\s*[a-zµ]+\s*)+)$/i;

export default function Page({ params }) {
  usePageStyles();
  const name = params.name;
  const { data: svc, error, loading, reload } = useLive(() => api(`/services/${enc(name)}`), [name], { events: ['schema'] });

  if (error && !svc) {
    return html`<section><h1>Service <code>${name}</code></h1><${ErrorBox} error=${error} />
      <p><${Link} href="/ui/services">All services</${Link}></p></section>`;
  }
  if (!svc) return html`<section><h1>Service <code>${name}</code></h1>${loading ? html`<p class="muted">Loading…</p>` : null}</section>`;

  const keyed = svc.ty !== 'Service';
  const handlers = [...(svc.handlers || [])].sort((a, b) => a.name.localeCompare(b.name));
  return html`<section>
    <h1>Service <code data-testid="service-name">${svc.name}</code></h1>
    <${ErrorBox} error=${error} />
    <div class="toolbar">
      <${Link} class="button" href=${`/ui/invocations?service=${enc(svc.name)}`} data-testid="link-invocations">Invocations</${Link}>
      ${keyed ? html`<${Link} class="button" href=${`/ui/state/${enc(svc.name)}`} data-testid="link-state">State</${Link}>` : null}
      ${svc.ty === 'Workflow' ? html`<${Link} class="button" href=${`/ui/workflows?service=${enc(svc.name)}`}>Workflow runs</${Link}>` : null}
      ${handlers.length ? html`<${Link} class="button" href=${`/ui/playground/${enc(svc.name)}/${enc(handlers[0].name)}`}>Playground</${Link}>` : null}
    </div>
    <div class="panel">
      <dl class="facts">
        <dt>Type</dt><dd data-testid="service-type">${TYPE_LABEL[svc.ty] || svc.ty}</dd>
        <dt>Revision</dt><dd>${svc.revision}</dd>
        <dt>Deployment</dt><dd><${Link} href=${`/ui/deployments#${svc.deployment_id}`}><code>${svc.deployment_id}</code></${Link}></dd>
        <dt>Public</dt><dd>${svc.public === false ? 'no (only other services can call it)' : 'yes (callable through the ingress)'}</dd>
        <dt>Lazy state</dt><dd>${svc.enable_lazy_state ? 'yes' : 'no'}</dd>
        ${svc.retry_policy ? html`<dt>Retry policy</dt><dd>${fmtRetry(svc.retry_policy)}</dd>` : null}
        ${svc.documentation ? html`<dt>Documentation</dt><dd>${svc.documentation}</dd>` : null}
        ${svc.metadata && Object.keys(svc.metadata).length ? html`<dt>Metadata</dt><dd><code>${JSON.stringify(svc.metadata)}</code></dd>` : null}
      </dl>
    </div>

    <h2>Handlers</h2>
    <div class="table-wrap"><table data-testid="handlers-table">
      <thead><tr><th>Handler</th><th>Type</th><th>Input</th><th>Output</th><th>Public</th><th>Go to</th></tr></thead>
      <tbody>${handlers.map((h) => html`<tr key=${h.name} data-testid="handler-row" data-name=${h.name}>
        <td><strong>${h.name}</strong>${h.documentation ? html`<div class="small muted">${h.documentation}</div>` : null}</td>
        <td>${h.ty ? h.ty.toLowerCase() : (svc.ty === 'Service' ? '—' : '')}</td>
        <td><code>${h.input_description}</code>${h.input_json_schema ? html`<${Schema} schema=${h.input_json_schema} />` : null}</td>
        <td><code>${h.output_description}</code>${h.output_json_schema ? html`<${Schema} schema=${h.output_json_schema} />` : null}</td>
        <td>${h.public === false ? 'no' : 'yes'}</td>
        <td><div class="row-actions small">
          <${Link} href=${`/ui/playground/${enc(svc.name)}/${enc(h.name)}`} data-testid="link-playground">playground</${Link}>
          <${Link} href=${`/ui/invocations?service=${enc(svc.name)}&handler=${enc(h.name)}`}>invocations</${Link}>
        </div></td>
      </tr>`)}</tbody></table></div>

    <${ConfigForm} key=${svc.name} svc=${svc} onSaved=${reload} />

    <${Equivalent}
      cli=${[`restate services describe ${shq(svc.name)}`, `restate services config view ${shq(svc.name)}`, `restate services config edit ${shq(svc.name)}`]}
      curl=${[curlFor('GET', `/services/${enc(svc.name)}`), curlFor('GET', `/services/${enc(svc.name)}/openapi`)]} />
  </section>`;
}

function fmtRetry(p) {
  const parts = [];
  if (p.initial_interval) parts.push(`first retry after ${p.initial_interval}`);
  if (p.exponentiation_factor) parts.push(`×${p.exponentiation_factor}`);
  if (p.max_interval) parts.push(`at most ${p.max_interval} apart`);
  parts.push(p.max_attempts == null ? 'unlimited attempts' : `${p.max_attempts} attempts`);
  if (p.on_max_attempts) parts.push(`then ${String(p.on_max_attempts).toLowerCase()}`);
  return parts.join(', ');
}

function Schema({ schema }) {
  const text = JSON.stringify(schema, null, 2);
  return html`<details class="small"><summary>JSON schema</summary>
    <pre class="pre-box"><${Clip} text=${text} max=${20000} /></pre></details>`;
}

function ConfigForm({ svc, onSaved }) {
  const fields = DURATIONS.filter(([k]) => k !== 'workflow_completion_retention' || svc.ty === 'Workflow');
  const initial = () => {
    const v = { public: svc.public !== false };
    for (const [k] of fields) v[k] = svc[k] ?? '';
    return v;
  };
  const [vals, setVals] = useState(initial);
  const [dirty, setDirty] = useState(false);
  const act = useAction();
  // Follow the server's values while the user has not started editing.
  useEffect(() => { if (!dirty) setVals(initial()); }, [JSON.stringify(svc)]); // eslint-disable-line

  const changes = {};
  if (vals.public !== (svc.public !== false)) changes.public = vals.public;
  for (const [k] of fields) {
    const v = String(vals[k] ?? '').trim();
    if (v !== String(svc[k] ?? '')) changes[k] = v;
  }

  const set = (k, v) => { setDirty(true); setVals({ ...vals, [k]: v }); };
  const submit = (e) => {
    e.preventDefault();
    if (!Object.keys(changes).length) return act.fail('Nothing changed.');
    for (const [k, label] of fields) {
      if (k in changes && !changes[k]) return act.fail(`${label}: enter a duration such as 1d, 12h, 10m, 500ms or 0.`);
      if (k in changes && !DURATION_RE.test(changes[k])) return act.fail(`${label}: "${changes[k]}" is not a duration such as 1d, 12h, 10m, 500ms, PT1H or 0.`);
    }
    act.run(async () => {
      const res = await api(`/services/${enc(svc.name)}`, { method: 'PATCH', body: changes });
      setDirty(false);
      onSaved();
      return { res, sent: changes };
    });
  };
  const reset = () => { setDirty(false); setVals(initial()); act.reset(); };

  const cli = [`restate services config patch ${shq(svc.name)}`];
  if ('public' in changes) cli.push(`--public ${changes.public}`);
  for (const [k, , flag] of fields) if (k in changes) cli.push(`${flag} ${shq(changes[k] || '<duration>')}`);

  return html`<form class="panel" onSubmit=${submit} data-testid="config-form">
    <h2>Configuration</h2>
    <div class="form-grid">
      <label for="cfg-public">Public</label>
      <label><input id="cfg-public" type="checkbox" checked=${vals.public} data-testid="cfg-public"
        onChange=${(e) => set('public', e.target.checked)} /> callable through the ingress</label>
      ${fields.map(([k, label, , hint]) => html`
        <label for=${`cfg-${k}`}>${label}</label>
        <div><input id=${`cfg-${k}`} type="text" value=${vals[k]} data-testid=${`cfg-${k}`}
          onInput=${(e) => set(k, e.target.value)} placeholder="e.g. 1d, 12h, 10m" />
          <div class="hint">${hint}</div></div>`)}
    </div>
    <div class="form-actions">
      <button type="submit" class="primary" disabled=${act.busy} data-testid="cfg-save">${act.busy ? 'Saving…' : 'Save'}</button>
      <button type="button" onClick=${reset} disabled=${act.busy}>Reset</button>
      ${Object.keys(changes).length ? html`<span class="muted small">Changed: ${Object.keys(changes).join(', ')}</span>` : null}
    </div>
    <${ErrorBox} error=${act.error} />
    ${act.result ? html`<p class="notice ok" data-testid="cfg-saved">Saved: ${Object.entries(act.result.sent).map(([k, v]) => `${k} = ${v}`).join(', ')}.</p>` : null}
    <p class="hint">Durations: <code>1d</code>, <code>12h</code>, <code>1d 12h</code>, <code>10m</code>, <code>500ms</code>, ISO 8601 (<code>PT1H</code>) or <code>0</code>.
      Registering the deployment again resets these to what the SDK declares.</p>
    <${Equivalent} cli=${cli.join(' ')}
      curl=${curlFor('PATCH', `/services/${enc(svc.name)}`, Object.keys(changes).length ? changes : { idempotency_retention: '1d' })} />
  </form>`;
}
