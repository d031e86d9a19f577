// Helpers shared by the admin pages (deployments, services, state, objects, workflows, SQL,
// playground, settings): SQL over POST /query, JSON and byte helpers, client-side downloads,
// an inline confirm button, a small async-action hook and the few styles these pages need.
import { html, api, authHeaders, useState, useRef, useEffect, ApiError } from '../lib.js';

// ---------------------------------------------------------------- SQL

/** Runs `query` through POST /query and answers its rows (JSON form). */
export async function runSql(query, { signal } = {}) {
  const res = await api('/query', {
    method: 'POST',
    body: { query },
    headers: { accept: 'application/json' },
    signal,
  });
  return (res && res.rows) || [];
}

/** A SQL string literal. */
export function sqlLit(s) {
  return `'${String(s).replace(/'/g, "''")}'`;
}

/** A shell-quoted word (single quotes). Plain words stay as they are. */
export function shq(s) {
  const t = String(s);
  return /^[A-Za-z0-9_./:@=-]+$/.test(t) ? t : `'${t.replace(/'/g, `'\\''`)}'`;
}

export const enc = encodeURIComponent;

// ---------------------------------------------------------------- JSON and bytes

/** Parses JSON text; answers {ok, value} or {ok:false, message} naming line and column. */
export function parseJson(text) {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (e) {
    let message = e.message || 'not valid JSON';
    const m = /position (\d+)/.exec(message);
    if (m) {
      const pos = Number(m[1]);
      const before = text.slice(0, pos);
      const line = before.split('\n').length;
      const col = pos - before.lastIndexOf('\n');
      message = `${message.replace(/\s*\(line \d+ column \d+\)/, '')} (line ${line}, column ${col})`;
    }
    return { ok: false, message: `Malformed JSON: ${message}` };
  }
}

/** JSON text without the whitespace between tokens (strings untouched): lossless. */
export function minifyJson(text) {
  if (text == null) return text;
  let out = '';
  let inStr = false;
  let esc = false;
  for (const ch of String(text)) {
    if (inStr) {
      out += ch;
      if (esc) esc = false;
      else if (ch === '\\') esc = true;
      else if (ch === '"') inStr = false;
    } else if (ch === '"') {
      inStr = true;
      out += ch;
    } else if (ch !== ' ' && ch !== '\n' && ch !== '\r' && ch !== '\t') {
      out += ch;
    }
  }
  return out;
}

/**
 * JSON text indented for reading, but only when that loses nothing (numbers beyond double
 * precision, say, stay as they were written); otherwise the text as it is.
 */
export function prettyJson(text) {
  const p = parseJson(text);
  if (!p.ok) return text;
  if (JSON.stringify(p.value) !== minifyJson(text)) return text;
  return JSON.stringify(p.value, null, 2);
}

export function utf8Bytes(text) {
  return new TextEncoder().encode(text);
}

/** Decodes UTF-8 strictly; null when the bytes are not UTF-8. */
export function utf8Text(bytes) {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

function concatBytes(parts) {
  const len = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(len);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function base64url(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * The state version the server computes (Restate's): entries sorted by key bytes; SHA-256 over
 * each entry's 8-byte big-endian index, 0x01, key, 0x02, value, 0x03; base64url without
 * padding. `entries` is a Map or array of [name, Uint8Array]. Null when WebCrypto is absent
 * (not a secure context).
 */
export async function stateVersion(entries) {
  if (!globalThis.crypto?.subtle) return null;
  const list = [...entries].map(([k, v]) => [utf8Bytes(k), v]);
  list.sort((a, b) => compareBytes(a[0], b[0]));
  const parts = [];
  list.forEach(([k, v], i) => {
    const idx = new Uint8Array(8);
    new DataView(idx.buffer).setBigUint64(0, BigInt(i));
    parts.push(idx, Uint8Array.of(1), k, Uint8Array.of(2), v, Uint8Array.of(3));
  });
  const digest = await crypto.subtle.digest('SHA-256', concatBytes(parts));
  return base64url(new Uint8Array(digest));
}

export const EMPTY_STATE_VERSION = '47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU';

// ---------------------------------------------------------------- downloads

export function downloadBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Fetches `path` (with the bearer token) and answers its bytes. */
export async function fetchBytes(path) {
  const res = await api(path, { raw: true });
  return new Uint8Array(await res.arrayBuffer());
}

/**
 * A download link for an admin path. A plain link when no token is set (the browser streams
 * the file); with a token, the click fetches with the Authorization header and saves a Blob.
 */
export function DownloadLink({ href, filename, children, testid = 'download' }) {
  const [err, setErr] = useState(null);
  const click = async (e) => {
    if (!Object.keys(authHeaders()).length) return;
    e.preventDefault();
    try {
      const res = await api(href, { raw: true });
      downloadBlob(await res.blob(), filename);
      setErr(null);
    } catch (x) {
      setErr(x);
    }
  };
  return html`<a href=${href} download=${filename} onClick=${click} data-testid=${testid}>${children}</a>${
    err ? html` <span class="form-error" role="alert">${err.message}</span>` : null}`;
}

// ---------------------------------------------------------------- small components and hooks

/** Runs one async action at a time; keeps its error and result. */
export function useAction() {
  const [state, setState] = useState({ busy: false, error: null, result: undefined });
  const alive = useRef(true);
  useEffect(() => () => { alive.current = false; }, []);
  const run = async (fn) => {
    setState({ busy: true, error: null, result: undefined });
    try {
      const result = await fn();
      if (alive.current) setState({ busy: false, error: null, result });
      return result;
    } catch (error) {
      if (alive.current) setState({ busy: false, error, result: undefined });
      return undefined;
    }
  };
  const reset = () => setState({ busy: false, error: null, result: undefined });
  const fail = (message) => setState({ busy: false, error: new LocalError(message), result: undefined });
  return { ...state, run, reset, fail };
}

/** An error found before anything was sent (shown by ErrorBox without an HTTP status). */
export class LocalError extends Error {
  constructor(message) {
    super(message);
    this.name = 'LocalError';
  }
}

export { ApiError };

/** A button that asks "sure?" inline before running `onConfirm`. */
export function ConfirmButton({ label, confirmLabel = 'Yes, do it', question, onConfirm, disabled, testid, danger = true }) {
  const [asking, setAsking] = useState(false);
  if (!asking) {
    return html`<button type="button" class=${danger ? 'danger' : ''} disabled=${disabled}
      data-testid=${testid} onClick=${() => setAsking(true)}>${label}</button>`;
  }
  return html`<span class="confirm-inline" data-testid=${testid ? `${testid}-confirm` : undefined}>
    <span>${question}</span>
    <button type="button" class=${danger ? 'danger' : 'primary'} data-testid=${testid ? `${testid}-yes` : undefined}
      onClick=${() => { setAsking(false); onConfirm(); }}>${confirmLabel}</button>
    <button type="button" onClick=${() => setAsking(false)}>Cancel</button>
  </span>`;
}

/** Text clipped to `max` characters, with a note saying how much was left out. */
export function Clip({ text, max = 2000 }) {
  const s = String(text ?? '');
  if (s.length <= max) return s;
  return html`${s.slice(0, max)}<span class="muted"> … (${s.length - max} more characters)</span>`;
}

/** Parses `Name: value` lines into a header object; throws LocalError on a bad line. */
export function parseHeaderLines(text) {
  const out = {};
  const lines = String(text || '').split('\n');
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*[:=]\s*(.*)$/.exec(line);
    if (!m) throw new LocalError(`Header line ${i + 1} is not "Name: value": ${line}`);
    out[m[1]] = m[2];
  });
  return out;
}

export function headerLines(obj) {
  return Object.entries(obj || {}).map(([k, v]) => `${k}: ${v}`).join('\n');
}

/** Parses RFC 3339 text or epoch ms into epoch ms (null when absent). */
export function toMs(v) {
  if (v === null || v === undefined || v === '') return null;
  if (typeof v === 'number') return v;
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : t;
}

// ---------------------------------------------------------------- styles

// The few styles these pages need beyond style.css, added once to the document.
const CSS = `
.confirm-inline { display: inline-flex; gap: 6px; align-items: center; flex-wrap: wrap; }
.form-grid { display: grid; grid-template-columns: max-content minmax(12em, 36em); gap: 8px 14px; align-items: center; }
.form-grid > label { font-size: 13px; color: var(--text); }
.form-grid input[type=text], .form-grid input:not([type]), .form-grid textarea, .form-grid select { width: 100%; }
.copy-id { white-space: nowrap; }
.hint { color: var(--muted); font-size: 12px; }
.form-actions { display: flex; gap: 8px; align-items: center; margin-top: 10px; flex-wrap: wrap; }
.form-error { color: var(--danger); }
.notice.warn { background: var(--warn-bg); border-color: var(--warn); }
.code-area { width: 100%; min-height: 8em; }
.pre-box { white-space: pre-wrap; overflow-wrap: anywhere; max-height: 24em; overflow: auto; margin: 0; }
.row-actions { display: flex; gap: 6px 12px; flex-wrap: wrap; align-items: center; margin: 4px 0; }
.chips { display: flex; gap: 4px; flex-wrap: wrap; }
.chip { display: inline-block; padding: 0 7px; border-radius: 999px; border: 1px solid var(--border); font-size: 12px; white-space: nowrap; }
.chip.superseded { opacity: .6; }
.badge.drained { background: var(--idle-bg); color: var(--idle); }
.badge.active { background: var(--info-bg); color: var(--info); }
.badge.latest { background: var(--ok-bg); color: var(--ok); }
.sql-hints { display: flex; gap: 4px; flex-wrap: wrap; margin: 4px 0; min-height: 24px; }
.sql-hints button { font-family: var(--mono); font-size: 12px; padding: 0 6px; }
.sql-layout { display: grid; grid-template-columns: minmax(0, 1fr) 240px; gap: 14px; }
@media (max-width: 900px) { .sql-layout { grid-template-columns: 1fr; } }
.sql-tables { max-height: 420px; overflow: auto; font-size: 12.5px; }
.sql-tables ul { margin: 2px 0 6px; padding-left: 16px; }
.table-scroll { overflow: auto; max-height: 70vh; }
.cell-clip { max-width: 32em; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; font-family: var(--mono); font-size: 12.5px; }
.split { display: flex; gap: 16px; flex-wrap: wrap; align-items: baseline; }
`;

let styled = false;
export function usePageStyles() {
  if (styled || typeof document === 'undefined') return;
  styled = true;
  const el = document.createElement('style');
  el.dataset.owner = 'pages/forms.js';
  el.textContent = CSS;
  document.head.appendChild(el);
}
