// Services page (/ui/services): every registered service with its type, revision, deployment,
// whether it is public and how many handlers it has, with links to its detail page,
// invocations, state and the playground.
import { html, api, useLive, useState, Link, ErrorBox, Equivalent, curlFor } from '../lib.js';
import { enc, usePageStyles } from './forms.js';

export const TYPE_LABEL = { Service: 'service', VirtualObject: 'virtual object', Workflow: 'workflow' };

export default function Page() {
  usePageStyles();
  const { data, error, loading } = useLive(() => api('/services'), [], { events: ['schema'] });
  const [filter, setFilter] = useState('');
  const all = [...(data?.services || [])].sort((a, b) => a.name.localeCompare(b.name));
  const f = filter.trim().toLowerCase();
  const shown = f ? all.filter((s) => s.name.toLowerCase().includes(f)
    || (s.handlers || []).some((h) => h.name.toLowerCase().includes(f))) : all;

  return html`<section>
    <h1>Services</h1>
    <div class="toolbar">
      <input type="search" data-search style="min-width:280px" placeholder="Filter by service or handler name" value=${filter}
        onInput=${(e) => setFilter(e.target.value)} aria-label="Filter services" data-testid="services-filter" />
      <span class="muted small">${data ? `${shown.length} of ${all.length} services` : ''}</span>
    </div>
    <${ErrorBox} error=${error} />
    ${loading && !data ? html`<p class="muted">Loading…</p>` : null}
    ${data && !all.length ? html`<p class="notice" data-testid="empty">No service is registered.${' '}<${Link} href="/ui/deployments">Register a deployment</${Link}> to add some.</p>` : null}
    ${shown.length ? html`<div class="table-wrap"><table data-rows data-testid="services-table">
      <thead><tr><th>Service</th><th>Type</th><th class="num">Revision</th><th>Deployment</th>
        <th>Public</th><th class="num">Handlers</th><th>Go to</th></tr></thead>
      <tbody>${shown.map((s) => html`<tr key=${s.name} data-href=${`/ui/services/${enc(s.name)}`} data-testid="service-row" data-name=${s.name}>
        <td><${Link} href=${`/ui/services/${enc(s.name)}`}><strong>${s.name}</strong></${Link}></td>
        <td>${TYPE_LABEL[s.ty] || s.ty}</td>
        <td class="num">${s.revision}</td>
        <td><${Link} href=${`/ui/deployments#${s.deployment_id}`}><code>${s.deployment_id}</code></${Link}></td>
        <td>${s.public === false ? html`<span class="badge">private</span>` : 'yes'}</td>
        <td class="num">${(s.handlers || []).length}</td>
        <td><div class="row-actions small">
          <${Link} href=${`/ui/invocations?service=${enc(s.name)}`}>invocations</${Link}>
          ${s.ty !== 'Service' ? html`<${Link} href=${`/ui/state/${enc(s.name)}`}>state</${Link}>` : null}
          ${s.ty === 'Workflow' ? html`<${Link} href=${`/ui/workflows?service=${enc(s.name)}`}>runs</${Link}>` : null}
          <${Link} href=${(s.handlers || []).length ? `/ui/playground/${enc(s.name)}/${enc(s.handlers[0].name)}` : `/ui/playground?service=${enc(s.name)}`}>playground</${Link}>
        </div></td>
      </tr>`)}</tbody></table></div>` : null}
    <${Equivalent} cli="restate services list" curl=${curlFor('GET', '/services')}
      sql="SELECT name, ty, revision, public, deployment_id FROM sys_service ORDER BY name" />
  </section>`;
}
