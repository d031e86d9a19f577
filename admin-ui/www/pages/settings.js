// Settings page (/ui/settings): the bearer token the UI sends to the admin API (kept in this
// tab's sessionStorage under `ratchet.token`, with a clear button), what the server reports
// about itself (GET /version), and how times are shown.
import { html, api, useState, useEffect, ErrorBox, Equivalent, curlFor, fmtTime } from '../lib.js';
import { usePageStyles } from './forms.js';

const TOKEN_KEY = 'ratchet.token';

export default function Page() {
  usePageStyles();
  const [stored, setStored] = useState(() => sessionStorage.getItem(TOKEN_KEY) || '');
  const [token, setToken] = useState(stored);
  const [show, setShow] = useState(false);
  const [msg, setMsg] = useState(null);
  const [version, setVersion] = useState(null);
  const [verErr, setVerErr] = useState(null);

  const loadVersion = () => {
    setVerErr(null);
    // Not the cached serverVersion(): after a token change, ask again.
    api('/version').then(setVersion, (e) => { setVersion(null); setVerErr(e); });
  };
  useEffect(loadVersion, []);

  const save = (e) => {
    e.preventDefault();
    const t = token.trim();
    if (!t) return clear();
    sessionStorage.setItem(TOKEN_KEY, t);
    setStored(t);
    setToken(t);
    setMsg('Saved. Requests from this tab now carry the token.');
    loadVersion();
  };
  const clear = () => {
    sessionStorage.removeItem(TOKEN_KEY);
    setStored('');
    setToken('');
    setMsg('Cleared. Requests carry no token.');
    loadVersion();
  };

  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
  const offsetMin = -new Date().getTimezoneOffset();
  const offset = `UTC${offsetMin >= 0 ? '+' : '−'}${String(Math.floor(Math.abs(offsetMin) / 60)).padStart(2, '0')}:${String(Math.abs(offsetMin) % 60).padStart(2, '0')}`;

  return html`<section>
    <h1>Settings</h1>

    <form class="panel" onSubmit=${save} data-testid="token-form">
      <h2>Access token</h2>
      <p class="small muted">If the admin API asks for a bearer token, enter it here. It is kept in this
        browser tab only (session storage) and sent as <code>Authorization: Bearer …</code> on every
        request the UI makes to the admin API; closing the tab forgets it.</p>
      <div class="form-grid">
        <label for="token">Token</label>
        <input id="token" type=${show ? 'text' : 'password'} value=${token} autocomplete="off" spellcheck="false"
          onInput=${(e) => { setToken(e.target.value); setMsg(null); }} data-testid="token-input" />
        <span></span>
        <label><input type="checkbox" checked=${show} onChange=${(e) => setShow(e.target.checked)} /> Show the token</label>
      </div>
      <div class="form-actions">
        <button type="submit" class="primary" data-testid="token-save">Save</button>
        <button type="button" onClick=${clear} disabled=${!stored && !token} data-testid="token-clear">Clear</button>
        <span class="muted small" data-testid="token-state">${stored ? 'A token is set for this tab.' : 'No token is set.'}</span>
      </div>
      ${msg ? html`<p class="notice ok" role="status" data-testid="token-msg">${msg}</p>` : null}
    </form>

    <div class="panel" data-testid="server-info">
      <h2>Server</h2>
      <${ErrorBox} error=${verErr} />
      ${verErr && verErr.status === 401 ? html`<p class="small">The server refused the request: check the token above.</p>` : null}
      ${version ? html`<dl class="facts">
        <dt>Version</dt><dd data-testid="server-version">${version.version}</dd>
        <dt>Admin API versions</dt><dd>${version.min_admin_api_version} to ${version.max_admin_api_version}</dd>
        <dt>Ingress</dt><dd><code>${version.ingress_endpoint || '—'}</code></dd>
        <dt>Admin API</dt><dd><code>${location.origin}/</code></dd>
        ${version.features && Object.keys(version.features).length ? html`<dt>Features</dt><dd>${Object.entries(version.features)
          .map(([k, v]) => `${k}: ${v ? 'on' : 'off'}`).join(', ')}</dd>` : null}
      </dl>` : verErr ? null : html`<p class="muted">Loading…</p>`}
    </div>

    <div class="panel" data-testid="time-note">
      <h2>Times</h2>
      <p>Times are shown in this browser's time zone, <strong>${zone}</strong> (${offset} now), as <code>${fmtTime(Date.now())}</code>${
        ' (year-month-day, 24-hour clock, milliseconds), often followed by how long ago that was. The server keeps times in UTC and answers them as milliseconds since the epoch in the UI\'s routes and as RFC 3339 with '}<code>Z</code> in SQL.</p>
    </div>

    <${Equivalent} cli="restate whoami" curl=${curlFor('GET', '/version')} />
  </section>`;
}
