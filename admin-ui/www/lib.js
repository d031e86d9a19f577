// Shared helpers for every page: Preact/htm re-exports, the API client, the single
// server-sent-event connection behind useLive, client-side navigation, formatters and
// small shared components (ErrorBox, Equivalent, StatusBadge, CopyId).
import { h, render } from 'preact';
import { useState, useEffect, useMemo, useRef, useCallback } from 'preact/hooks';
import htm from 'htm';

export const html = htm.bind(h);
export { h, render, useState, useEffect, useMemo, useRef, useCallback };

// ---------------------------------------------------------------- API client

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code ?? null;
  }
}

export function authHeaders() {
  const token = sessionStorage.getItem('ratchet.token');
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export function queryString(query) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v === null || v === undefined || v === '') continue;
    params.set(k, String(v));
  }
  const s = params.toString();
  return s ? `?${s}` : '';
}

// Values the shell's banners watch, set on every fetch outcome: whether the server is
// reachable, and whether it answered 401 (a bearer token is needed: Settings stores it).
// Listeners hear each change, and the current value when they subscribe.
function watched(initial) {
  const listeners = new Set();
  let value = initial;
  return {
    set(v) {
      if (v === value) return;
      value = v;
      for (const fn of listeners) fn(v);
    },
    on(fn) {
      listeners.add(fn);
      fn(value);
      return () => listeners.delete(fn);
    },
  };
}
const reachable = watched(true);
const authRequired = watched(false);
export const onReachability = reachable.on;
export const onAuthRequired = authRequired.on;
const setReachable = reachable.set;
const setAuthRequired = authRequired.set;

export async function api(path, { method = 'GET', body, query, raw = false, signal, headers } = {}) {
  const init = { method, signal, headers: { ...authHeaders(), ...(headers || {}) } };
  if (body !== undefined) {
    if (typeof body === 'string' || body instanceof Blob || body instanceof ArrayBuffer) {
      init.body = body;
    } else {
      init.body = JSON.stringify(body);
      init.headers['content-type'] = 'application/json';
    }
  }
  let res;
  try {
    const qs = queryString(query);
    res = await fetch(path + (qs && path.includes('?') ? `&${qs.slice(1)}` : qs), init);
  } catch (e) {
    if (e.name !== 'AbortError') setReachable(false);
    throw e;
  }
  setReachable(true);
  if (res.status === 401) setAuthRequired(true);
  else if (res.ok) setAuthRequired(false);
  if (!res.ok) {
    const text = await res.text().catch(() => '');
    let message = text || res.statusText;
    let code = null;
    try {
      const j = JSON.parse(text);
      if (j && typeof j === 'object') {
        message = j.message ?? message;
        code = j.restate_code ?? null;
      }
    } catch { /* plain text body */ }
    throw new ApiError(res.status, message, code);
  }
  if (raw) return res;
  if (res.status === 204) return null;
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// ---------------------------------------------------------------- server-sent events

const eventListeners = new Map(); // name -> Set<fn>
let sseStarted = false;

export function onServerEvent(name, fn) {
  if (!eventListeners.has(name)) eventListeners.set(name, new Set());
  eventListeners.get(name).add(fn);
  startEvents();
  return () => eventListeners.get(name)?.delete(fn);
}

function dispatch(name, data) {
  let parsed = data;
  try { parsed = data ? JSON.parse(data) : null; } catch { /* keep the text */ }
  for (const fn of eventListeners.get(name) || []) {
    try { fn(parsed); } catch (e) { console.error(e); }
  }
}

function startEvents() {
  if (sseStarted) return;
  sseStarted = true;
  let backoff = 500;
  let connected = false;
  const loop = async () => {
    for (;;) {
      try {
        const res = await fetch('/internal/ui/events', {
          headers: { ...authHeaders(), accept: 'text/event-stream' },
          cache: 'no-store',
        });
        if (res.status === 401) setAuthRequired(true);
        if (!res.ok || !res.body) throw new Error(`events: HTTP ${res.status}`);
        setReachable(true);
        backoff = 500;
        // A reconnect may have missed events: tell everyone to refresh once.
        if (connected) dispatch('reconnect', null);
        connected = true;
        await readStream(res.body);
      } catch (e) {
        if (e instanceof TypeError) setReachable(false);
      }
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 15000);
    }
  };
  loop();
}

async function readStream(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let name = 'message';
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let nl;
    while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
      if (line === '') {
        if (data.length || name !== 'message') dispatch(name, data.join('\n'));
        name = 'message';
        data = [];
      } else if (line.startsWith(':')) {
        // keep-alive comment
      } else {
        const i = line.indexOf(':');
        const field = i < 0 ? line : line.slice(0, i);
        let val = i < 0 ? '' : line.slice(i + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (field === 'event') name = val;
        else if (field === 'data') data.push(val);
      }
    }
  }
}

// Runs `fetcher` on mount/deps change and again (debounced, never overlapping) when one of
// the named server events arrives.
export function useLive(fetcher, deps = [], { events = ['applied', 'schema'] } = {}) {
  const [state, setState] = useState({ data: undefined, error: null, loading: true });
  const fetcherRef = useRef(fetcher);
  fetcherRef.current = fetcher;
  const ctl = useRef({ running: false, again: false, timer: null, gen: 0, alive: true });

  const run = useCallback(async () => {
    const c = ctl.current;
    if (c.running) { c.again = true; return; }
    c.running = true;
    const gen = c.gen;
    try {
      do {
        c.again = false;
        try {
          const data = await fetcherRef.current();
          if (c.alive && gen === c.gen) setState({ data, error: null, loading: false });
        } catch (error) {
          if (c.alive && gen === c.gen && error?.name !== 'AbortError') {
            setState((s) => ({ data: s.data, error, loading: false }));
          }
        }
      } while (c.again && c.alive && gen === c.gen);
    } finally {
      c.running = false;
      if (c.alive && gen !== c.gen) run(); // deps changed while fetching
    }
  }, []);

  useEffect(() => {
    const c = ctl.current;
    c.alive = true;
    return () => { c.alive = false; clearTimeout(c.timer); };
  }, []);

  useEffect(() => {
    ctl.current.gen++;
    setState((s) => ({ ...s, loading: true }));
    run();
  }, deps); // eslint-disable-line react-hooks/exhaustive-deps

  // Server events: refetch ~200 ms after the last one, at most once a second, and not
  // while the tab is hidden (once when it shows again).
  const eventKey = events.join(',');
  useEffect(() => {
    const c = ctl.current;
    let last = 0;
    let stale = false;
    const fire = () => {
      if (document.hidden) { stale = true; return; }
      last = Date.now();
      run();
    };
    const kick = () => {
      clearTimeout(c.timer);
      c.timer = setTimeout(fire, Math.max(200, last + 1000 - Date.now()));
    };
    const onVisible = () => { if (!document.hidden && stale) { stale = false; fire(); } };
    document.addEventListener('visibilitychange', onVisible);
    const offs = [...events, 'reconnect'].map((e) => onServerEvent(e, kick));
    return () => {
      offs.forEach((off) => off());
      clearTimeout(c.timer);
      document.removeEventListener('visibilitychange', onVisible);
    };
  }, [eventKey]); // eslint-disable-line react-hooks/exhaustive-deps

  return { ...state, reload: run };
}

// ---------------------------------------------------------------- navigation

const navListeners = new Set();
export function onNavigate(fn) {
  navListeners.add(fn);
  return () => navListeners.delete(fn);
}

export function navigate(url, { replace = false } = {}) {
  const target = new URL(url, location.origin + '/ui/');
  if (target.origin !== location.origin) {
    location.assign(target.href);
    return;
  }
  const rel = target.pathname + target.search + target.hash;
  if (rel === location.pathname + location.search + location.hash) return;
  if (replace) history.replaceState(null, '', rel);
  else history.pushState(null, '', rel);
  for (const fn of navListeners) fn();
}

function isPlainLeftClick(e) {
  return e.button === 0 && !e.metaKey && !e.ctrlKey && !e.shiftKey && !e.altKey && !e.defaultPrevented;
}

export function Link({ href, children, onClick, ...props }) {
  const click = (e) => {
    onClick?.(e);
    if (!isPlainLeftClick(e) || props.target) return;
    e.preventDefault();
    navigate(href);
  };
  return html`<a href=${href} onClick=${click} ...${props}>${children}</a>`;
}

// ---------------------------------------------------------------- components

export function ErrorBox({ error }) {
  if (!error) return null;
  const message = error.message || String(error);
  const code = error.code;
  const status = error.status;
  return html`<div class="error-box" role="alert" data-testid="error">
    <strong>${status ? `Error ${status}` : 'Error'}</strong>
    ${code ? html` <code class="error-code">${code}</code>` : null}
    <div class="error-message">${message}</div>
  </div>`;
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Clipboard API needs a secure context; fall back to a hidden textarea.
    const ta = document.createElement('textarea');
    ta.value = text;
    ta.setAttribute('readonly', '');
    ta.style.position = 'fixed';
    ta.style.opacity = '0';
    document.body.appendChild(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch { /* ignore */ }
    ta.remove();
    return ok;
  }
}

export function CopyButton({ text, label = 'Copy' }) {
  const [done, setDone] = useState(false);
  const click = async (e) => {
    e.stopPropagation();
    e.preventDefault();
    if (await copyText(text)) {
      setDone(true);
      setTimeout(() => setDone(false), 1200);
    }
  };
  return html`<button type="button" class="copy-btn" onClick=${click} title="Copy to clipboard"
    aria-label=${`${label}: ${text.length > 60 ? text.slice(0, 60) + '…' : text}`}>
    ${done ? 'Copied' : label}</button>`;
}

export function CopyId({ id }) {
  if (!id) return html`<span class="muted">—</span>`;
  return html`<span class="copy-id"><code class="mono">${id}</code><${CopyButton} text=${id} /></span>`;
}

function shellQuote(s) {
  return `'${String(s).replace(/'/g, `'\\''`)}'`;
}

export function curlFor(method, path, body) {
  const parts = ['curl'];
  if (method && method !== 'GET') parts.push('-X', method);
  parts.push(shellQuote(location.origin + path));
  if (sessionStorage.getItem('ratchet.token')) parts.push('-H', '"Authorization: Bearer $RATCHET_TOKEN"');
  if (body !== undefined && body !== null) {
    parts.push('-H', shellQuote('content-type: application/json'));
    parts.push('-d', shellQuote(typeof body === 'string' ? body : JSON.stringify(body)));
  }
  return parts.join(' ');
}

function CodeBlock({ label, text }) {
  return html`<div class="equiv-item">
    <div class="equiv-head"><span>${label}</span><${CopyButton} text=${text} /></div>
    <pre><code>${text}</code></pre>
  </div>`;
}

export function Equivalent({ cli, curl, sql, testid = 'equivalent' }) {
  const asList = (v) => (Array.isArray(v) ? v : v ? [v] : []).join('\n');
  return html`<details class="equivalent" data-testid=${testid}>
    <summary>Show the equivalent</summary>
    ${cli ? html`<${CodeBlock} label="restate CLI" text=${asList(cli)} />` : null}
    ${curl ? html`<${CodeBlock} label="curl" text=${asList(curl)} />` : null}
    ${sql ? html`<${CodeBlock} label="SQL (POST /query)" text=${asList(sql)} />` : null}
  </details>`;
}

export const STATUSES = ['scheduled', 'pending', 'ready', 'running', 'backing-off', 'suspended', 'paused', 'succeeded', 'failed'];

export function StatusBadge({ status }) {
  const s = status || 'unknown';
  return html`<span class=${`badge status-${s.replace(/[^a-z-]/g, '')}`} data-testid="status">${s}</span>`;
}

// ---------------------------------------------------------------- formatters

const pad = (n, w = 2) => String(n).padStart(w, '0');

export function fmtTime(ms) {
  if (ms === null || ms === undefined || ms === '') return '—';
  const d = new Date(Number(ms));
  if (Number.isNaN(d.getTime())) return '—';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(Number(ms))) return '—';
  let v = Math.abs(Number(ms));
  if (v < 1000) return `${Math.round(v)} ms`;
  if (v < 60_000) return `${(v / 1000).toFixed(v < 10_000 ? 2 : 1).replace(/\.?0+$/, '')} s`;
  const parts = [];
  const units = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]];
  for (const [u, size] of units) {
    if (v >= size) {
      parts.push(`${Math.floor(v / size)}${u}`);
      v %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join(' ');
}

export function fmtAgo(ms) {
  if (ms === null || ms === undefined) return '—';
  const diff = Date.now() - Number(ms);
  if (Math.abs(diff) < 1000) return 'just now';
  return diff >= 0 ? `${fmtDuration(diff)} ago` : `in ${fmtDuration(-diff)}`;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  n = Number(n);
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < units.length - 1);
  return `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

// ---------------------------------------------------------------- server info

let versionPromise = null;
export function serverVersion() {
  if (!versionPromise) {
    versionPromise = api('/version').catch((e) => { versionPromise = null; throw e; });
  }
  return versionPromise;
}

export async function ingressBase() {
  const v = await serverVersion();
  const base = v?.ingress_endpoint || `${location.protocol}//${location.hostname}:8080/`;
  return base.endsWith('/') ? base : base + '/';
}

// A button that asks for confirmation before running `onConfirm` (async). Shows the
// server's error next to it on failure. `testid` names the first button; the confirming one
// is `<testid>-confirm`.
export function ConfirmButton({ label, confirmText, confirmLabel = 'Confirm', onConfirm, testid, danger = false, disabled = false, title }) {
  const [phase, setPhase] = useState('idle'); // idle | confirm | busy
  const [error, setError] = useState(null);
  const confirmRef = useRef(null);
  useEffect(() => { if (phase === 'confirm') confirmRef.current?.focus(); }, [phase]);
  const run = async () => {
    setPhase('busy');
    setError(null);
    try {
      await onConfirm();
      setPhase('idle');
    } catch (e) {
      setError(e);
      setPhase('confirm');
    }
  };
  return html`<span class="confirm-btn">
    ${phase === 'idle'
      ? html`<button type="button" class=${danger ? 'danger' : ''} data-testid=${testid} disabled=${disabled}
          title=${title} onClick=${(e) => { e.stopPropagation(); setError(null); setPhase('confirm'); }}>${label}</button>`
      : html`<span class="confirm-ask" role="group" aria-label=${confirmText || label}>
          ${confirmText ? html`<span>${confirmText}</span>` : null}
          <button type="button" class=${danger ? 'danger primary' : 'primary'} data-testid=${testid ? `${testid}-confirm` : undefined}
            disabled=${phase === 'busy'} ref=${confirmRef}
            onClick=${(e) => { e.stopPropagation(); run(); }}>${phase === 'busy' ? 'Working…' : confirmLabel}</button>
          <button type="button" disabled=${phase === 'busy'} onClick=${(e) => { e.stopPropagation(); setPhase('idle'); setError(null); }}>Back</button>
        </span>`}
    ${error ? html`<${ErrorBox} error=${error} />` : null}
  </span>`;
}

// Runs `fn` over `items` with at most `limit` at a time; resolves to [{item, ok, value|error}].
export async function mapLimit(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try { out[i] = { item: items[i], ok: true, value: await fn(items[i]) }; } catch (error) { out[i] = { item: items[i], ok: false, error }; }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

// SQL string literal.
export const sqlStr = (s) => `'${String(s).replace(/'/g, "''")}'`;
