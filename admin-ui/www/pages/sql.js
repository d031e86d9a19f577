// SQL console (/ui/sql): a query box over POST /query (Ctrl/Cmd+Enter runs), the result as a
// table with its row count and time, the server's error, the last 20 queries (localStorage),
// table and column completion from information_schema, and CSV / JSON export of the result.
import { html, useState, useEffect, useRef, ErrorBox, Equivalent, curlFor } from '../lib.js';
import { runSql, shq, downloadBlob, usePageStyles } from './forms.js';

const HISTORY_KEY = 'ratchet.sql.history';
const HISTORY_MAX = 20;
const SHOW_ROWS = 500; // rows put on the page at most (export has them all)
const CELL_MAX = 300; // characters of one cell put on the page at most
const DEFAULT_QUERY = 'SELECT id, target, status, created_at FROM sys_invocation ORDER BY created_at DESC LIMIT 20';

function loadHistory() {
  try {
    const v = JSON.parse(localStorage.getItem(HISTORY_KEY) || '[]');
    return Array.isArray(v) ? v.filter((x) => typeof x === 'string').slice(0, HISTORY_MAX) : [];
  } catch {
    return [];
  }
}

function saveHistory(list) {
  try { localStorage.setItem(HISTORY_KEY, JSON.stringify(list.slice(0, HISTORY_MAX))); } catch { /* full or disabled */ }
}

let schemaPromise = null; // information_schema columns, fetched once per page load
function loadSchema() {
  if (!schemaPromise) {
    schemaPromise = runSql("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position")
      .then((rows) => {
        const tables = new Map();
        for (const r of rows) {
          if (!tables.has(r.table_name)) tables.set(r.table_name, []);
          tables.get(r.table_name).push(r.column_name);
        }
        return tables;
      })
      .catch((e) => { schemaPromise = null; throw e; });
  }
  return schemaPromise;
}

function columnsOf(rows) {
  const seen = new Set();
  const cols = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!seen.has(k)) { seen.add(k); cols.push(k); }
  return cols;
}

function cellText(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function toCsv(cols, rows) {
  const q = (s) => (/[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const lines = [cols.map(q).join(',')];
  for (const r of rows) lines.push(cols.map((c) => q(cellText(r[c]))).join(','));
  return lines.join('\r\n') + '\r\n';
}

function wordBefore(text, pos) {
  const m = /[A-Za-z_][A-Za-z0-9_]*$/.exec(text.slice(0, pos));
  return m ? m[0] : '';
}

export default function Page({ query }) {
  usePageStyles();
  const initial = query.get('q');
  const [history, setHistory] = useState(loadHistory);
  const [text, setText] = useState(() => initial || history[0] || DEFAULT_QUERY);
  const [result, setResult] = useState(null); // {rows, cols, ms, query}
  const [error, setError] = useState(null);
  const [running, setRunning] = useState(false);
  const [schema, setSchema] = useState(null);
  const [schemaErr, setSchemaErr] = useState(null);
  const [cursor, setCursor] = useState(0);
  const [hintsOff, setHintsOff] = useState(false);
  const ta = useRef(null);
  const abort = useRef(null);

  useEffect(() => { if (initial) setText(initial); }, [initial]);
  useEffect(() => { loadSchema().then(setSchema, setSchemaErr); }, []);
  useEffect(() => () => abort.current?.abort(), []);

  const run = async () => {
    const q = text.trim();
    if (!q) { setError(new Error('Enter a query.')); return; }
    abort.current?.abort();
    const ctl = new AbortController();
    abort.current = ctl;
    setRunning(true);
    setError(null);
    const t0 = performance.now();
    try {
      const rows = await runSql(q, { signal: ctl.signal });
      if (ctl.signal.aborted) return;
      setResult({ rows, cols: columnsOf(rows), ms: performance.now() - t0, query: q });
      const next = [q, ...history.filter((h) => h !== q)].slice(0, HISTORY_MAX);
      setHistory(next);
      saveHistory(next);
    } catch (e) {
      if (e?.name === 'AbortError') return;
      setError(e);
      setResult(null);
    } finally {
      if (abort.current === ctl) { setRunning(false); abort.current = null; }
    }
  };

  // Completion: names of tables and of columns (of the tables the query names, else all).
  const word = wordBefore(text, cursor);
  let hints = [];
  if (schema && word && !hintsOff) {
    const lw = word.toLowerCase();
    const named = [...schema.keys()].filter((t) => new RegExp(`\\b${t}\\b`, 'i').test(text));
    const cols = new Set((named.length ? named : [...schema.keys()]).flatMap((t) => schema.get(t)));
    const cand = [...schema.keys(), ...cols];
    hints = [...new Set(cand)].filter((n) => n.toLowerCase().startsWith(lw) && n.toLowerCase() !== lw).slice(0, 12);
  }

  const insert = (name, replaceWord = true) => {
    const el = ta.current;
    const pos = el ? el.selectionStart : text.length;
    const start = replaceWord ? pos - wordBefore(text, pos).length : pos;
    const next = text.slice(0, start) + name + text.slice(pos);
    setText(next);
    const at = start + name.length;
    setCursor(at);
    requestAnimationFrame(() => { if (el) { el.focus(); el.setSelectionRange(at, at); } });
  };

  const onKey = (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); return; }
    if (e.key === 'Tab' && hints.length && !e.shiftKey) { e.preventDefault(); insert(hints[0]); return; }
    if (e.key === 'Escape' && hints.length) { e.preventDefault(); e.stopPropagation(); setHintsOff(true); }
  };
  const track = (e) => { setCursor(e.target.selectionStart); };

  const exportAs = (kind) => {
    if (!result) return;
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    if (kind === 'csv') downloadBlob(new Blob([toCsv(result.cols, result.rows)], { type: 'text/csv' }), `query-${stamp}.csv`);
    else downloadBlob(new Blob([JSON.stringify(result.rows, null, 2)], { type: 'application/json' }), `query-${stamp}.json`);
  };

  const q = text.trim() || DEFAULT_QUERY;
  const curl = `${curlFor('POST', '/query', { query: q })} -H 'accept: application/json'`;

  return html`<section>
    <h1>SQL</h1>
    <div class="sql-layout">
      <div>
        <textarea ref=${ta} class="code-area" rows="7" spellcheck="false" aria-label="SQL query" data-testid="sql-input"
          value=${text} onInput=${(e) => { setText(e.target.value); setCursor(e.target.selectionStart); setHintsOff(false); }}
          onKeyDown=${onKey} onKeyUp=${track} onClick=${track}></textarea>
        <div class="sql-hints" data-testid="sql-hints" aria-live="polite">
          ${hints.length ? html`<span class="muted small">Tab completes:</span>${hints.map((h) => html`<button type="button" onClick=${() => insert(h)} data-testid="sql-hint">${h}</button>`)}` : null}
        </div>
        <div class="toolbar">
          <button type="button" class="primary" onClick=${run} disabled=${running} data-testid="sql-run">${running ? 'Running…' : 'Run'}</button>
          <span class="muted small"><kbd>Ctrl</kbd>+<kbd>Enter</kbd> runs</span>
          <span class="spacer"></span>
          ${result ? html`<span data-testid="sql-meta">${result.rows.length} ${result.rows.length === 1 ? 'row' : 'rows'} in ${Math.round(result.ms)} ms</span>
            <button type="button" onClick=${() => exportAs('csv')} data-testid="export-csv">Export CSV</button>
            <button type="button" onClick=${() => exportAs('json')} data-testid="export-json">Export JSON</button>` : null}
        </div>
        <${ErrorBox} error=${error} />
        ${result ? html`<${ResultTable} result=${result} />` : null}
      </div>
      <aside>
        <details open>
          <summary><strong>Tables</strong></summary>
          ${schemaErr ? html`<p class="form-error small">${schemaErr.message}</p>` : null}
          ${schema ? html`<div class="sql-tables" data-testid="sql-tables">${[...schema.entries()].map(([t, cols]) => html`<details key=${t}>
            <summary><button type="button" class="link-btn mono" onClick=${(e) => { e.preventDefault(); insert(t, false); }} title="Insert">${t}</button></summary>
            <ul>${cols.map((c) => html`<li><button type="button" class="link-btn mono small" onClick=${() => insert(c, false)}>${c}</button></li>`)}</ul>
          </details>`)}</div>` : schemaErr ? null : html`<p class="muted small">Loading…</p>`}
        </details>
        <details open=${history.length > 0}>
          <summary><strong>History</strong> <span class="muted small">(${history.length})</span></summary>
          <ol class="small" data-testid="sql-history" style="padding-left:18px">
            ${history.map((h) => html`<li><button type="button" class="link-btn mono small" style="text-align:left"
              onClick=${() => { setText(h); setCursor(h.length); }} title=${h}>${h.length > 120 ? h.slice(0, 120) + '…' : h}</button></li>`)}
          </ol>
          ${history.length ? html`<button type="button" class="small" onClick=${() => { setHistory([]); saveHistory([]); }}>Clear history</button>` : null}
        </details>
      </aside>
    </div>
    <${Equivalent} cli=${`restate sql ${shq(q)}`} curl=${curl} sql=${q} />
  </section>`;
}

function ResultTable({ result }) {
  const { rows, cols } = result;
  if (!rows.length) return html`<p class="notice" data-testid="sql-empty">No rows.</p>`;
  const shown = rows.slice(0, SHOW_ROWS);
  return html`<div>
    ${rows.length > SHOW_ROWS ? html`<p class="notice warn small">Showing the first ${SHOW_ROWS} of ${rows.length} rows; export to get them all.</p>` : null}
    <div class="table-wrap table-scroll"><table data-testid="sql-result">
      <thead><tr>${cols.map((c) => html`<th>${c}</th>`)}</tr></thead>
      <tbody>${shown.map((r, i) => html`<tr key=${i}>${cols.map((c) => {
        const v = r[c];
        const t = cellText(v);
        return html`<td class="cell-clip" title=${t.length > 80 ? t.slice(0, 1000) : undefined}>${v === null || v === undefined
          ? html`<span class="muted">NULL</span>` : t.length > CELL_MAX ? t.slice(0, CELL_MAX) + '…' : t}</td>`;
      })}</tr>`)}</tbody>
    </table></div>
    <p class="muted small">Columns that are NULL in every row are not shown (the JSON answer leaves NULLs out).</p>
  </div>`;
}
