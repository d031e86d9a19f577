// Playground (/ui/playground, /ui/playground/:service/:handler?key=): invoke any handler
// through the ingress, straight from the browser: key for objects and workflows, JSON input
// (checked before sending), call or send (with an optional delay), idempotency key. Shows the
// status, the answer and the invocation id with a link to it.
import {
  html, api, useLive, useState, useEffect, useRef, Link, navigate, ErrorBox, Equivalent,
  ingressBase, fmtBytes,
} from '../lib.js';
import { enc, shq, parseJson, usePageStyles, LocalError, prettyJson } from './forms.js';

const SHOW_MAX = 64 * 1024; // characters of an answer put on the page at most
const DELAY_RE = /^(\d+(\.\d+)?\s*(ms|s|m|h|d|sec|secs|min|mins|hour|hours|day|days)\s*)+$|^P[0-9TDHMSW.]+$/i;

function ingressPath({ service, handler, key, keyed, mode, delay }) {
  let p = `${service}/`;
  if (keyed) p += `${enc(key)}/`;
  p += handler;
  if (mode === 'send') {
    p += '/send';
    if (delay) p += `?delay=${enc(delay)}`;
  }
  return p;
}

export default function Page({ params, query }) {
  usePageStyles();
  const services = useLive(() => api('/services'), [], { events: ['schema'] });
  const list = [...(services.data?.services || [])].sort((a, b) => a.name.localeCompare(b.name));
  const service = params.service || query.get('service') || '';
  const svc = list.find((s) => s.name === service);
  const handlers = [...(svc?.handlers || [])].sort((a, b) => a.name.localeCompare(b.name));
  const handler = params.handler || '';
  const h = handlers.find((x) => x.name === handler);

  const pick = (s, hName) => {
    const target = list.find((x) => x.name === s);
    const first = hName || [...(target?.handlers || [])].sort((a, b) => a.name.localeCompare(b.name))[0]?.name;
    navigate(first ? `/ui/playground/${enc(s)}/${enc(first)}${location.search}` : `/ui/playground?service=${enc(s)}`, { replace: true });
  };

  return html`<section>
    <h1>Playground</h1>
    <p class="muted">Invokes a handler through the ingress from this browser, as a client would.</p>
    <${ErrorBox} error=${services.error} />
    ${services.loading && !services.data ? html`<p class="muted">Loading…</p>` : null}
    ${services.data && !list.length ? html`<p class="notice" data-testid="empty">No service is registered.${' '}<${Link} href="/ui/deployments">Register a deployment</${Link}> first.</p>` : null}
    ${list.length ? html`<div class="toolbar">
      <label for="pg-service">Service</label>
      <select id="pg-service" value=${service} data-testid="pg-service" onChange=${(e) => pick(e.target.value)}>
        ${!svc ? html`<option value="">Pick a service…</option>` : null}
        ${list.map((s) => html`<option value=${s.name}>${s.name}${s.public === false ? ' (private)' : ''}</option>`)}
      </select>
      ${svc ? html`<label for="pg-handler">Handler</label>
        <select id="pg-handler" value=${handler} data-testid="pg-handler" onChange=${(e) => pick(service, e.target.value)}>
          ${!h ? html`<option value="">Pick a handler…</option>` : null}
          ${handlers.map((x) => html`<option value=${x.name}>${x.name}${x.ty ? ` (${x.ty.toLowerCase()})` : ''}</option>`)}
        </select>` : null}
      ${svc ? html`<${Link} href=${`/ui/services/${enc(svc.name)}`} class="small">service details</${Link}>` : null}
    </div>` : null}
    ${services.data && service && !svc ? html`<p class="notice warn">No service named <code>${service}</code> is registered.</p>` : null}
    ${svc && handler && !h ? html`<p class="notice warn">${service} has no handler named <code>${handler}</code>.</p>` : null}
    ${svc && h ? html`<${Invoke} key=${`${svc.name}/${h.name}`} svc=${svc} h=${h} initialKey=${query.get('key') || ''} />` : null}
  </section>`;
}

function Invoke({ svc, h, initialKey }) {
  const keyed = svc.ty !== 'Service';
  const [key, setKey] = useState(initialKey);
  const [input, setInput] = useState('');
  const [mode, setMode] = useState('call');
  const [delay, setDelay] = useState('');
  const [idem, setIdem] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [out, setOut] = useState(null);
  const [base, setBase] = useState(null);
  const [baseErr, setBaseErr] = useState(null);
  const abort = useRef(null);
  useEffect(() => { ingressBase().then(setBase, setBaseErr); }, []);
  useEffect(() => () => abort.current?.abort(), []);

  const trimmed = input.trim();
  const parsed = trimmed ? parseJson(trimmed) : { ok: true };
  const path = ingressPath({ service: svc.name, handler: h.name, key, keyed, mode, delay: delay.trim() });
  const url = `${base || '<ingress>/'}${path}`;

  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    if (keyed && !key) return setError(new LocalError(`${svc.name} is ${svc.ty === 'Workflow' ? 'a workflow' : 'a virtual object'}: enter a key.`));
    if (!parsed.ok) return setError(new LocalError(parsed.message));
    if (mode === 'send' && delay.trim() && !DELAY_RE.test(delay.trim())) return setError(new LocalError(`"${delay}" is not a delay such as 10s, 5m or 1h.`));
    if (idem && !/^[\x21-\x7e]+$/.test(idem)) return setError(new LocalError('The idempotency key must be visible ASCII characters, without spaces.'));
    if (!base) return setError(baseErr || new LocalError('The ingress address is not known yet.'));
    abort.current?.abort();
    const ctl = new AbortController();
    abort.current = ctl;
    setBusy(true);
    setOut(null);
    const headers = {};
    if (trimmed) headers['content-type'] = 'application/json';
    if (idem) headers['idempotency-key'] = idem;
    const t0 = performance.now();
    try {
      const res = await fetch(url, { method: 'POST', headers, body: trimmed || undefined, signal: ctl.signal, mode: 'cors' });
      const text = await res.text();
      const ms = performance.now() - t0;
      let id = res.headers.get('x-restate-id');
      let json = null;
      try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
      if (!id && json && typeof json === 'object' && json.invocationId) id = json.invocationId;
      setOut({ status: res.status, statusText: res.statusText, ok: res.ok, text, json, id, ms, type: res.headers.get('content-type'), mode });
    } catch (x) {
      if (x.name === 'AbortError') return;
      setError(new LocalError(`Could not reach the ingress at ${base}: ${x.message}. Is it running, and does it allow calls from this page (CORS)?`));
    } finally {
      setBusy(false);
    }
  };

  const curl = ['curl', '-X', 'POST', shq(url)];
  if (trimmed) curl.push('-H', shq('content-type: application/json'), '-d', shq(trimmed));
  if (idem) curl.push('-H', shq(`idempotency-key: ${idem}`));

  return html`<form class="panel" onSubmit=${submit} data-testid="playground-form">
    <h2><code>${svc.name}</code>${keyed ? html` / ${key ? html`<code>${key}</code>` : html`<em>key</em>`}` : null} / <code>${h.name}</code></h2>
    <p class="small muted">Input: <code>${h.input_description}</code> · Output: <code>${h.output_description}</code>
      ${svc.public === false || h.public === false ? html` · <strong class="form-error">not public: the ingress refuses it</strong>` : null}</p>
    <div class="form-grid">
      ${keyed ? html`<label for="pg-key">Key</label>
        <input id="pg-key" type="text" value=${key} onInput=${(e) => setKey(e.target.value)} data-testid="pg-key"
          placeholder=${svc.ty === 'Workflow' ? 'workflow id' : 'object key'} />` : null}
      <label for="pg-input">Input (JSON)</label>
      <div>
        <textarea id="pg-input" class="code-area" rows="6" value=${input} data-testid="pg-input"
          placeholder=${h.input_description === 'none' ? '(this handler takes no input)' : '"Ada" or {"name": "Ada"}; empty sends no body'}
          onInput=${(e) => setInput(e.target.value)}
          onKeyDown=${(e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit(e); } }}></textarea>
        ${!parsed.ok ? html`<div class="form-error small" data-testid="json-error">${parsed.message}</div>` : null}
        ${h.input_json_schema ? html`<details class="small"><summary>Input JSON schema</summary>
          <pre class="pre-box">${JSON.stringify(h.input_json_schema, null, 2).slice(0, 20000)}</pre></details>` : null}
      </div>
      <label>Mode</label>
      <div class="split">
        <label><input type="radio" name="pg-mode" checked=${mode === 'call'} onChange=${() => setMode('call')} data-testid="pg-mode-call" /> Call (wait for the result)</label>
        <label><input type="radio" name="pg-mode" checked=${mode === 'send'} onChange=${() => setMode('send')} data-testid="pg-mode-send" /> Send (answer at once)</label>
      </div>
      ${mode === 'send' ? html`<label for="pg-delay">Delay</label>
        <input id="pg-delay" type="text" value=${delay} onInput=${(e) => setDelay(e.target.value)} placeholder="e.g. 10s, 5m (empty: now)" data-testid="pg-delay" />` : null}
      <label for="pg-idem">Idempotency key</label>
      <input id="pg-idem" type="text" value=${idem} onInput=${(e) => setIdem(e.target.value)} placeholder="optional" data-testid="pg-idem" />
    </div>
    <p class="small muted">POST <code data-testid="pg-url">${url}</code></p>
    <div class="form-actions">
      <button type="submit" class="primary" disabled=${busy} data-testid="pg-submit">${busy ? (mode === 'call' ? 'Waiting for the result…' : 'Sending…') : mode === 'call' ? 'Call' : 'Send'}</button>
      ${busy ? html`<button type="button" onClick=${() => { abort.current?.abort(); setBusy(false); }}>Stop waiting</button>` : null}
    </div>
    <${ErrorBox} error=${error || baseErr} />
    <${Answer} out=${out} />
    <${Equivalent} curl=${curl.join(' ')} />
    <p class="hint">The <code>restate</code> CLI has no command that invokes a handler; use curl or an SDK client.</p>
  </form>`;
}

function Answer({ out }) {
  if (!out) return null;
  const body = out.json !== null && out.json !== undefined ? prettyJson(out.text) : out.text;
  const clipped = body.length > SHOW_MAX;
  return html`<div class=${`notice ${out.ok ? 'ok' : 'warn'}`} data-testid="pg-result">
    <div class="split">
      <strong data-testid="pg-status">${out.status} ${out.statusText}</strong>
      <span class="muted small">${Math.round(out.ms)} ms · ${fmtBytes(out.text.length)}${out.type ? ` · ${out.type}` : ''}</span>
      ${out.id ? html`<span>Invocation <${Link} href=${`/ui/invocations/${enc(out.id)}`} data-testid="pg-invocation"><code>${out.id}</code></${Link}></span>` : null}
    </div>
    ${body ? html`<pre class="pre-box" data-testid="pg-body">${clipped ? body.slice(0, SHOW_MAX) : body}</pre>` : html`<p class="muted small">(empty body)</p>`}
    ${clipped ? html`<p class="small muted">Showing the first ${fmtBytes(SHOW_MAX)} of the answer.</p>` : null}
  </div>`;
}
