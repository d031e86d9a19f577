// Workflows page (/ui/workflows?service=&key=): the workflow services; for one, its runs by
// key (invocations of its workflow handler, paged); for one key, the run and the other calls
// on that key, and the workflow's durable promises (from sys_promise), with links to its state
// and to the playground for its handlers.
import {
  html, api, useLive, useState, Link, navigate, ErrorBox, Equivalent, curlFor, StatusBadge,
  fmtTime, fmtAgo, ingressBase, useEffect,
} from '../lib.js';
import { enc, shq, sqlLit, runSql, usePageStyles, Clip, prettyJson } from './forms.js';

const PAGE = 50;

export default function Page({ query }) {
  usePageStyles();
  const services = useLive(() => api('/services'), [], { events: ['schema'] });
  const workflows = (services.data?.services || []).filter((s) => s.ty === 'Workflow')
    .sort((a, b) => a.name.localeCompare(b.name));
  const service = query.get('service') || workflows[0]?.name || '';
  const key = query.get('key');
  const wf = workflows.find((w) => w.name === service);

  return html`<section>
    <h1>Workflows</h1>
    <${ErrorBox} error=${services.error} />
    ${services.loading && !services.data ? html`<p class="muted">Loading…</p>` : null}
    ${services.data && !workflows.length ? html`<p class="notice" data-testid="empty">No workflow service is registered.</p>` : null}
    ${workflows.length ? html`<${Picker} workflows=${workflows} service=${service} objKey=${key} />` : null}
    ${services.data && service && !wf ? html`<p class="notice warn">${service} is not a registered workflow service.</p>` : null}
    ${wf && key === null ? html`<${Runs} key=${wf.name} wf=${wf} />` : null}
    ${wf && key !== null ? html`<${Run} key=${`${wf.name}\u0000${key}`} wf=${wf} objKey=${key} />` : null}
  </section>`;
}

function runHandler(wf) {
  return (wf.handlers || []).find((h) => h.ty === 'Workflow')?.name || 'run';
}

function Picker({ workflows, service, objKey }) {
  const [k, setK] = useState(objKey || '');
  useEffect(() => setK(objKey || ''), [objKey]);
  const open = (e) => {
    e.preventDefault();
    navigate(`/ui/workflows?service=${enc(service)}&key=${enc(k)}`);
  };
  return html`<form class="toolbar" onSubmit=${open} data-testid="workflow-picker">
    <label for="wf-service">Workflow</label>
    <select id="wf-service" value=${service} data-testid="workflow-service"
      onChange=${(e) => navigate(`/ui/workflows?service=${enc(e.target.value)}`)}>
      ${workflows.map((w) => html`<option value=${w.name}>${w.name}</option>`)}
    </select>
    <label for="wf-key">Key</label>
    <input id="wf-key" type="text" value=${k} placeholder="workflow key" onInput=${(e) => setK(e.target.value)} data-testid="workflow-key" />
    <button type="submit">Open</button>
    ${objKey !== null && objKey !== undefined ? html`<${Link} href=${`/ui/workflows?service=${enc(service)}`}>All runs</${Link}>` : null}
  </form>`;
}

function Runs({ wf }) {
  const [pages, setPages] = useState(1);
  const handler = runHandler(wf);
  const filter = { service: wf.name, handler, service_type: 'workflow' };
  const { data, error, loading } = useLive(async () => {
    const items = [];
    let cursor = null;
    let next = null;
    let partial = false;
    for (let i = 0; i < pages; i++) {
      const r = await api('/internal/ui/invocations', { query: { ...filter, limit: PAGE, cursor } });
      items.push(...(r?.items || []).filter((x) => !x.handler || x.handler === handler));
      partial = partial || !!r?.partial;
      next = r?.next_cursor ?? null;
      if (!next) break;
      cursor = next;
    }
    return { items, next, partial };
  }, [wf.name, pages], { events: ['applied'] });
  const items = data?.items || [];

  return html`<div>
    <h2>Runs of <code>${wf.name}</code> <span class="muted small">(handler <code>${handler}</code>, newest first)</span></h2>
    <div class="row-actions small">
      <${Link} href=${`/ui/services/${enc(wf.name)}`}>Service ${wf.name}</${Link}>
      <${Link} href=${`/ui/state/${enc(wf.name)}`}>State by key</${Link}>
      <${Link} href=${`/ui/playground/${enc(wf.name)}/${enc(handler)}`}>Start a run</${Link}>
      <${Link} href=${`/ui/invocations?service=${enc(wf.name)}`}>All invocations</${Link}>
    </div>
    <${ErrorBox} error=${error} />
    ${data?.partial ? html`<p class="notice warn">Some partitions could not be read; the list may be incomplete.</p>` : null}
    ${loading && !data ? html`<p class="muted">Loading…</p>` : null}
    ${data && !items.length ? html`<p class="notice" data-testid="runs-empty">No run of ${wf.name} is retained.</p>` : null}
    ${items.length ? html`<div class="table-wrap"><table data-rows data-testid="runs">
      <thead><tr><th>Key</th><th>Status</th><th>Created</th><th>Completed</th><th>Invocation</th></tr></thead>
      <tbody>${items.map((r) => html`<tr key=${r.id} data-href=${`/ui/workflows?service=${enc(wf.name)}&key=${enc(r.key ?? '')}`} data-testid="run-row" data-key=${r.key}>
        <td><${Link} href=${`/ui/workflows?service=${enc(wf.name)}&key=${enc(r.key ?? '')}`}><code>${r.key}</code></${Link}></td>
        <td><${StatusBadge} status=${r.status} /></td>
        <td class="nowrap">${fmtTime(r.created_at)} <span class="muted small">${fmtAgo(r.created_at)}</span></td>
        <td class="nowrap">${r.completed_at ? fmtTime(r.completed_at) : '—'}</td>
        <td><${Link} href=${`/ui/invocations/${enc(r.id)}`}><code>${r.id}</code></${Link}></td>
      </tr>`)}</tbody></table></div>` : null}
    <div class="form-actions">
      ${data?.next ? html`<button type="button" onClick=${() => setPages(pages + 1)} disabled=${loading} data-testid="load-more">Load more</button>` : null}
      ${items.length ? html`<span class="muted small">${items.length} runs shown${data?.next ? ', more available' : ''}</span>` : null}
    </div>
    <${Equivalent}
      cli=${`restate invocations list --service ${shq(wf.name)} --handler ${shq(handler)} --all`}
      curl=${curlFor('GET', `/internal/ui/invocations?service=${enc(wf.name)}&handler=${enc(handler)}&service_type=workflow&limit=${PAGE}`)}
      sql=${`SELECT id, target_service_key, status, created_at, completed_at FROM sys_invocation WHERE target_service_name = ${sqlLit(wf.name)} AND target_handler_name = ${sqlLit(handler)} ORDER BY created_at DESC`} />
  </div>`;
}

function Run({ wf, objKey }) {
  const handler = runHandler(wf);
  const calls = useLive(
    () => api('/internal/ui/invocations', { query: { service: wf.name, key: objKey, service_type: 'workflow', limit: 100 } }),
    [wf.name, objKey], { events: ['applied'] });
  const promiseSql = `SELECT * FROM sys_promise WHERE service_name = ${sqlLit(wf.name)} AND service_key = ${sqlLit(objKey)} ORDER BY key`;
  const promises = useLive(() => runSql(promiseSql), [wf.name, objKey], { events: ['applied'] });
  const [ingress, setIngress] = useState('<ingress>/');
  useEffect(() => { ingressBase().then(setIngress, () => {}); }, []);
  const items = calls.data?.items || [];
  const runs = items.filter((r) => r.handler === handler);
  const others = items.filter((r) => r.handler !== handler);

  return html`<div>
    <h2>Run <code data-testid="run-key">${objKey === '' ? '(empty key)' : objKey}</code> of <code>${wf.name}</code></h2>
    <div class="row-actions small">
      <${Link} href=${`/ui/state/${enc(wf.name)}/${enc(objKey)}`} data-testid="link-state">State of this key</${Link}>
      <${Link} href=${`/ui/invocations?service=${enc(wf.name)}&key=${enc(objKey)}`}>Invocations of this key</${Link}>
      ${(wf.handlers || []).map((h) => html`<${Link} href=${`/ui/playground/${enc(wf.name)}/${enc(h.name)}?key=${enc(objKey)}`}>Call ${h.name}</${Link}>`)}
    </div>
    <${ErrorBox} error=${calls.error} />
    ${calls.data && !runs.length ? html`<p class="notice" data-testid="run-missing">No retained run of ${wf.name} has the key <code>${objKey}</code>.</p>` : null}
    ${runs.length ? html`<div class="panel" data-testid="run">
      ${runs.map((r) => html`<dl class="facts" key=${r.id}>
        <dt>Status</dt><dd><${StatusBadge} status=${r.status} /></dd>
        <dt>Invocation</dt><dd><${Link} href=${`/ui/invocations/${enc(r.id)}`} data-testid="run-link"><code>${r.id}</code></${Link}></dd>
        <dt>Created</dt><dd>${fmtTime(r.created_at)} <span class="muted small">${fmtAgo(r.created_at)}</span></dd>
        ${r.completed_at ? html`<dt>Completed</dt><dd>${fmtTime(r.completed_at)}</dd>` : null}
        ${r.last_failure ? html`<dt>Last failure</dt><dd class="failure"><${Clip} text=${r.last_failure} max=${2000} /></dd>` : null}
      </dl>`)}
    </div>` : null}

    <h3>Promises</h3>
    <${ErrorBox} error=${promises.error} />
    ${promises.data && !promises.data.length ? html`<p class="muted" data-testid="promises-empty">No durable promise was created or completed on this key.</p>` : null}
    ${promises.data?.length ? html`<div class="table-wrap"><table data-testid="promises">
      <thead><tr><th>Promise</th><th>Completed</th><th>Value or failure</th></tr></thead>
      <tbody>${promises.data.map((p) => html`<tr key=${p.key} data-testid="promise-row" data-name=${p.key}>
        <td><code>${p.key}</code></td>
        <td>${p.completed ? html`<span class="badge status-succeeded">completed</span>` : html`<span class="badge status-pending">pending</span>`}</td>
        <td>${p.completion_failure ? html`<span class="form-error"><${Clip} text=${p.completion_failure} max=${4000} /></span>`
          : p.completion_success_value_utf8 !== undefined ? html`<pre class="pre-box preview"><${Clip} text=${prettyJson(String(p.completion_success_value_utf8).slice(0, 4096))} max=${4096} /></pre>`
          : p.completion_success_value !== undefined ? html`<span class="muted">${Math.floor(String(p.completion_success_value).length / 2)} bytes (binary)</span>`
          : html`<span class="muted">—</span>`}</td>
      </tr>`)}</tbody></table></div>` : null}

    ${others.length ? html`<h3>Other calls on this key</h3>
      <div class="table-wrap"><table data-rows data-testid="other-calls">
        <thead><tr><th>Handler</th><th>Status</th><th>Created</th><th>Invocation</th></tr></thead>
        <tbody>${others.map((r) => html`<tr key=${r.id} data-href=${`/ui/invocations/${enc(r.id)}`}>
          <td>${r.handler}</td><td><${StatusBadge} status=${r.status} /></td>
          <td class="nowrap">${fmtTime(r.created_at)}</td>
          <td><${Link} href=${`/ui/invocations/${enc(r.id)}`}><code>${r.id}</code></${Link}></td>
        </tr>`)}</tbody></table></div>` : null}

    <${Equivalent}
      cli=${`restate invocations list --service ${shq(wf.name)} --key ${shq(objKey)} --all`}
      curl=${[curlFor('GET', `/internal/ui/invocations?service=${enc(wf.name)}&key=${enc(objKey)}&service_type=workflow`),
        `curl ${shq(`${ingress}restate/workflow/${wf.name}/${enc(objKey)}/output`)}`,
        `curl ${shq(`${ingress}restate/workflow/${wf.name}/${enc(objKey)}/attach`)}`]}
      sql=${promiseSql} />
  </div>`;
}
