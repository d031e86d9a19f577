// Overview page (/ui/): exact invocation counts per service, handler and status from
// GET /internal/ui/counts, each linking to the filtered invocation list, plus deployments.
import {
  html, api, useLive, Link, ErrorBox, Equivalent, curlFor, StatusBadge, STATUSES, queryString,
} from '../lib.js';

const listHref = (filter) => `/ui/invocations${queryString(filter)}`;

function Count({ n, filter, testid }) {
  const v = n || 0;
  return html`<td class="num" data-testid=${testid} data-count=${v}>
    ${v ? html`<${Link} href=${listHref(filter)}>${v.toLocaleString()}</${Link}>` : html`<span class="muted">0</span>`}
  </td>`;
}

function ServiceTable({ svc }) {
  const service = svc.service;
  return html`<section class="panel" data-testid=${`service-${service}`}>
    <h2>
      <${Link} href=${`/ui/services/${encodeURIComponent(service)}`}>${service}</${Link}>
      ${' '}<span class="muted small">${svc.service_type || ''}</span>
    </h2>
    <div class="table-wrap"><table>
      <thead><tr>
        <th>Handler</th>
        ${STATUSES.map((s) => html`<th class="num"><${StatusBadge} status=${s} /></th>`)}
        <th class="num">Total</th>
      </tr></thead>
      <tbody>
        ${svc.handlers.map((hd) => html`<tr>
          <td><${Link} href=${listHref({ service, handler: hd.handler })}>${hd.handler}</${Link}></td>
          ${STATUSES.map((s) => html`<${Count} n=${hd.by_status?.[s]} filter=${{ service, handler: hd.handler, status: s }}
            testid=${`count-${service}-${hd.handler}-${s}`} />`)}
          <${Count} n=${hd.total} filter=${{ service, handler: hd.handler }} testid=${`count-${service}-${hd.handler}-total`} />
        </tr>`)}
      </tbody>
      <tfoot><tr>
        <td>All handlers</td>
        ${STATUSES.map((s) => html`<${Count} n=${svc.by_status?.[s]} filter=${{ service, status: s }}
          testid=${`count-${service}-all-${s}`} />`)}
        <${Count} n=${svc.total} filter=${{ service }} testid=${`count-${service}-all-total`} />
      </tr></tfoot>
    </table></div>
  </section>`;
}

export default function Page() {
  const { data, error, loading } = useLive(async () => {
    const [counts, deployments] = await Promise.all([
      api('/internal/ui/counts'),
      api('/deployments'),
    ]);
    return { counts, deployments: deployments?.deployments || [] };
  }, []);

  const counts = data?.counts;
  const deployments = data?.deployments;
  return html`<section>
    <h1>Overview</h1>
    <${ErrorBox} error=${error} />
    ${loading && !data ? html`<p class="muted">Loading…</p>` : null}
    ${deployments ? html`<div class="panel" data-testid="deployments-summary">
      <strong data-testid="deployments-count">${deployments.length}</strong>
      ${deployments.length === 1 ? ' deployment' : ' deployments'}
      ${' · '}<${Link} href="/ui/deployments">Manage deployments</${Link}>
      ${deployments.length === 0 ? html`<p data-testid="no-deployments">
        No deployments yet. <${Link} href="/ui/deployments">Register one</${Link}> to make its services callable.
      </p>` : null}
    </div>` : null}
    ${counts ? html`
      ${counts.partial ? html`<div class="notice" role="status">
        Some partitions could not be read; these counts are incomplete: ${(counts.reasons || []).join('; ')}
      </div>` : null}
      <div class="status-bar" data-testid="overall">
        <span class="chip">Invocations <b data-testid="count-total">${(counts.total || 0).toLocaleString()}</b></span>
        ${STATUSES.filter((s) => counts.by_status?.[s]).map((s) => html`<${Link} href=${listHref({ status: s })}>
          <${StatusBadge} status=${s} /><b data-testid=${`count-all-${s}`}>${counts.by_status[s].toLocaleString()}</b></${Link}>`)}
      </div>
      ${(counts.services || []).length === 0
        ? html`<p class="muted">No invocations yet.</p>`
        : counts.services.map((svc) => html`<${ServiceTable} svc=${svc} />`)}
    ` : null}
    <${Equivalent}
      cli=${['restate invocations list --all', 'restate services status']}
      curl=${curlFor('GET', '/internal/ui/counts')}
      sql="SELECT target_service_name, target_handler_name, status, count(*) FROM sys_invocation GROUP BY 1,2,3" />
  </section>`;
}
