// App shell: navigation bar, the path router under /ui/ (pages are loaded on demand from
// pages/<name>.js), keyboard shortcuts, and the "server unreachable" banner.
import {
  html, render, useState, useEffect, useRef, Link, navigate, onNavigate, onReachability,
  onAuthRequired, serverVersion,
} from './lib.js';

const NAV = [
  ['Overview', '/ui/'],
  ['Invocations', '/ui/invocations'],
  ['Deployments', '/ui/deployments'],
  ['Services', '/ui/services'],
  ['State', '/ui/state'],
  ['Workflows', '/ui/workflows'],
  ['SQL', '/ui/sql'],
  ['Playground', '/ui/playground'],
  ['Settings', '/ui/settings'],
];

// [pattern, page module]; `:name` segments become params (URL-decoded).
const ROUTES = [
  ['/', 'overview'],
  ['/invocations', 'invocations'],
  ['/invocations/:id', 'invocation'],
  ['/deployments', 'deployments'],
  ['/services', 'services'],
  ['/services/:name', 'service'],
  ['/state', 'state'],
  ['/state/:service', 'state'],
  ['/state/:service/:key', 'state'],
  ['/objects/:service/:key', 'objects'],
  ['/workflows', 'workflows'],
  ['/sql', 'sql'],
  ['/playground', 'playground'],
  ['/playground/:service/:handler', 'playground'],
  ['/settings', 'settings'],
].map(([pattern, page]) => [pattern.split('/').filter(Boolean), page]);

export function matchRoute(pathname) {
  let rest = pathname.startsWith('/ui') ? pathname.slice(3) : pathname;
  const segs = rest.split('/').filter(Boolean);
  for (const [pat, page] of ROUTES) {
    if (pat.length !== segs.length) continue;
    const params = {};
    let ok = true;
    for (let i = 0; i < pat.length && ok; i++) {
      if (pat[i].startsWith(':')) {
        try { params[pat[i].slice(1)] = decodeURIComponent(segs[i]); } catch { ok = false; }
      } else ok = pat[i] === segs[i];
    }
    if (ok) return { page, params };
  }
  return null;
}

const pageCache = new Map(); // name -> Promise<module>
const pageLoaded = new Map(); // name -> module, once resolved
function loadPage(name) {
  if (!pageCache.has(name)) {
    const p = import(`./pages/${name}.js`).then(
      (m) => { pageLoaded.set(name, m); return m; },
      (e) => { pageCache.delete(name); throw e; });
    pageCache.set(name, p);
  }
  return pageCache.get(name);
}

function useLocation() {
  const [loc, setLoc] = useState(() => location.pathname + location.search);
  useEffect(() => {
    const update = () => setLoc(location.pathname + location.search);
    window.addEventListener('popstate', update);
    const off = onNavigate(update);
    return () => { window.removeEventListener('popstate', update); off(); };
  }, []);
  return loc;
}

function PageHost({ route, query }) {
  const loaded = pageLoaded.get(route.page);
  const [mod, setMod] = useState(loaded ? { name: route.page, Page: loaded.default } : null);
  const [err, setErr] = useState(null);
  useEffect(() => {
    let live = true;
    setErr(null);
    const m = pageLoaded.get(route.page);
    if (m) { setMod({ name: route.page, Page: m.default }); return undefined; }
    loadPage(route.page).then((m) => live && setMod({ name: route.page, Page: m.default }),
      (e) => live && setErr(e));
    return () => { live = false; };
  }, [route.page]);
  if (err) {
    return html`<div class="error-box" role="alert" data-testid="error">
      Could not load page <code>${route.page}</code>: ${String(err.message || err)}</div>`;
  }
  if (!mod || mod.name !== route.page) return html`<p class="muted">Loading…</p>`;
  const Page = mod.Page;
  return html`<${Page} params=${route.params} query=${query} />`;
}

function NotFound() {
  return html`<section><h1>Not found</h1>
    <p>No page at <code>${location.pathname}</code>. <${Link} href="/ui/">Go to the overview</${Link}>.</p>
  </section>`;
}

function Banner() {
  const [ok, setOk] = useState(true);
  const [auth, setAuth] = useState(false);
  useEffect(() => onReachability(setOk), []);
  useEffect(() => onAuthRequired(setAuth), []);
  if (ok && auth) {
    return html`<div class="banner" role="status" data-testid="auth-required">
      The server asks for a bearer token. <${Link} href="/ui/settings">Set it in Settings</${Link}>.
    </div>`;
  }
  if (ok) return null;
  return html`<div class="banner" role="status" data-testid="unreachable">
    The server is unreachable. Retrying in the background…
    <button type="button" onClick=${() => location.reload()}>Reload now</button>
  </div>`;
}

function isActive(href, pathname) {
  if (href === '/ui/') return pathname === '/ui/' || pathname === '/ui';
  const base = href.replace(/\/$/, '');
  if (base === '/ui/invocations') return pathname === base || pathname.startsWith(base + '/');
  if (base === '/ui/state') return pathname.startsWith('/ui/state') || pathname.startsWith('/ui/objects');
  return pathname === base || pathname.startsWith(base + '/');
}

function Nav({ pathname }) {
  const [version, setVersion] = useState(null);
  useEffect(() => { serverVersion().then((v) => setVersion(v?.version), () => {}); }, []);
  return html`<header class="topbar">
    <${Link} class="brand" href="/ui/">Ratchet</${Link}>
    <nav aria-label="Main">
      <ul>
        ${NAV.map(([label, href]) => html`<li><${Link} href=${href}
          aria-current=${isActive(href, pathname) ? 'page' : undefined}>${label}</${Link}></li>`)}
      </ul>
    </nav>
    <span class="topbar-right">
      ${version ? html`<span class="muted small" title="Server version">v${version}</span>` : null}
      <button type="button" class="link-btn" onClick=${() => openHelp()} aria-label="Keyboard shortcuts">?</button>
    </span>
  </header>`;
}

const SHORTCUTS = [
  ['/', 'Focus the search or filter field'],
  ['g o', 'Go to the overview'],
  ['g i', 'Go to invocations'],
  ['j / k', 'Move the highlighted row down / up'],
  ['Enter', 'Open the highlighted row'],
  ['?', 'Show this help'],
  ['Esc', 'Close dialogs, leave a field'],
];

let openHelp = () => {};

function HelpDialog() {
  const ref = useRef(null);
  useEffect(() => {
    openHelp = () => { if (ref.current && !ref.current.open) ref.current.showModal(); };
    return () => { openHelp = () => {}; };
  }, []);
  return html`<dialog ref=${ref} class="help" aria-labelledby="help-title" data-testid="shortcuts">
    <h2 id="help-title">Keyboard shortcuts</h2>
    <table class="plain"><tbody>
      ${SHORTCUTS.map(([k, d]) => html`<tr><td>${k.split(' ').map((p) => p === '/' && k !== '/' ? ' / ' : html`<kbd>${p}</kbd> `)}</td><td>${d}</td></tr>`)}
    </tbody></table>
    <form method="dialog"><button>Close</button></form>
  </dialog>`;
}

// ---------------------------------------------------------------- keyboard

function isTyping(el) {
  if (!el) return false;
  const tag = el.tagName;
  return tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || el.isContentEditable;
}

function rowsOf() {
  const table = document.querySelector('main [data-rows]');
  if (!table) return [];
  return [...table.querySelectorAll('tbody tr')].filter((r) => !r.hasAttribute('data-norow'));
}

function moveRow(delta) {
  const rows = rowsOf();
  if (!rows.length) return;
  let i = rows.findIndex((r) => r.classList.contains('kb-active'));
  rows.forEach((r) => r.classList.remove('kb-active'));
  i = i < 0 ? (delta > 0 ? 0 : rows.length - 1) : Math.max(0, Math.min(rows.length - 1, i + delta));
  rows[i].classList.add('kb-active');
  rows[i].tabIndex = -1;
  rows[i].focus({ preventScroll: true });
  rows[i].scrollIntoView({ block: 'nearest' });
}

function openRow() {
  const row = rowsOf().find((r) => r.classList.contains('kb-active'));
  if (!row) return false;
  const href = row.getAttribute('data-href');
  if (href) navigate(href);
  else (row.querySelector('a[href]') || row).click();
  return true;
}

function installKeys() {
  let pendingG = 0;
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (isTyping(e.target)) {
      if (e.key === 'Escape') e.target.blur();
      return;
    }
    if (document.querySelector('dialog[open]')) return;
    const now = Date.now();
    if (pendingG && now - pendingG < 1200) {
      pendingG = 0;
      if (e.key === 'o') { e.preventDefault(); navigate('/ui/'); return; }
      if (e.key === 'i') { e.preventDefault(); navigate('/ui/invocations'); return; }
    }
    switch (e.key) {
      case 'g': pendingG = now; break;
      case '/': {
        const input = document.querySelector('main [data-search], main input[type=search], main input[type=text], main input:not([type]), main textarea');
        if (input) { e.preventDefault(); input.focus(); input.select?.(); }
        break;
      }
      case 'j': e.preventDefault(); moveRow(1); break;
      case 'k': e.preventDefault(); moveRow(-1); break;
      case 'Enter':
        if ((e.target === document.body || e.target.id === 'main' || e.target.closest?.('tr.kb-active')) && openRow()) e.preventDefault();
        break;
      case '?': e.preventDefault(); openHelp(); break;
      default: break;
    }
  });
}

// ---------------------------------------------------------------- root

function App() {
  const loc = useLocation();
  const url = new URL(loc, location.origin);
  const route = matchRoute(url.pathname);
  const query = url.searchParams;
  const mainRef = useRef(null);
  const prevPath = useRef(url.pathname);
  useEffect(() => {
    if (prevPath.current !== url.pathname) {
      prevPath.current = url.pathname;
      window.scrollTo(0, 0);
      // Move focus off the clicked link so keyboard shortcuts act on the new page.
      mainRef.current?.focus({ preventScroll: true });
    }
  }, [url.pathname]);
  return html`
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); mainRef.current?.focus(); }}>Skip to content</a>
    <${Nav} pathname=${url.pathname} />
    <${Banner} />
    <main id="main" ref=${mainRef} tabindex="-1">
      ${route
        ? html`<${PageHost} key=${route.page} route=${route} query=${query} />`
        : html`<${NotFound} />`}
    </main>
    <${HelpDialog} />`;
}

installKeys();
const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
