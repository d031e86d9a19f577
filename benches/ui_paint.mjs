// First paint of the web UI in a real browser, for benches/ui_perf.py (which starts the server
// and seeds it; this script only drives Chromium).
//
// Usage: node benches/ui_paint.mjs <admin base URL> <runs> <chromium> <playwright-core dir>
//
// For each page (/ui/ and /ui/invocations) it loads the page `runs` times, each in a new
// browser context (empty cache and storage), after one discarded warm-up load, and records,
// relative to navigation start (performance.timeOrigin):
//   fcp  — the `first-contentful-paint` entry of the Performance API;
//   data — the first animation frame after the page's data is in the DOM (overview: a count
//          cell `[data-testid^="count-"]`; list: a row `[data-testid="inv-row"]`), seen by a
//          MutationObserver installed before any page script runs.
// Also, from the Resource Timing API, when the last module script arrived (`scripts`) and the
// page's data request (`req_start`, `req_end`: GET /internal/ui/counts or /internal/ui/invocations).
// Prints one JSON object on stdout: {"overview": {"fcp": [ms…], "data": [ms…], …}, "invocations": …}.
// Any page that does not answer 200 or never shows its data within 15 s fails the whole run
// with a message naming what is missing (no partial or made-up figures).
import { createRequire } from 'node:module';
import { resolve } from 'node:path';

const [, , base, runsArg, chromiumPath, playwrightDir] = process.argv;
if (!base || !runsArg || !chromiumPath || !playwrightDir) {
  console.error('usage: node ui_paint.mjs <admin base URL> <runs> <chromium> <playwright-core dir>');
  process.exit(2);
}
const RUNS = Number(runsArg);
const WAIT_MS = 15_000;
const ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const PAGES = [
  { name: 'overview', path: 'ui/', selector: '[data-testid^="count-"]', route: '/internal/ui/counts' },
  { name: 'invocations', path: 'ui/invocations', selector: '[data-testid="inv-row"]', route: '/internal/ui/invocations' },
];

const { chromium } = createRequire(import.meta.url)(resolve(playwrightDir));

class Fail extends Error {}
function fail(msg) {
  throw new Fail(msg);
}

// Runs in the page before its own scripts: notes when `selector` first matches, then the time
// of the next animation frame (the frame that paints it).
function watch(selector) {
  const mark = { dom: null, frame: null };
  window.__uiBench = mark;
  const check = () => {
    if (mark.dom !== null || !document.querySelector(selector)) return;
    mark.dom = performance.now();
    obs.disconnect();
    requestAnimationFrame(() => { mark.frame = performance.now(); });
  };
  const obs = new MutationObserver(check);
  obs.observe(document, { childList: true, subtree: true, attributes: true });
}

async function loadOnce(browser, page) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  try {
    await context.addInitScript(watch, page.selector);
    const tab = await context.newPage();
    const errors = [];
    tab.on('pageerror', (e) => errors.push(String(e.message || e)));
    tab.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    const url = new URL(page.path, base).href;
    const resp = await tab.goto(url, { waitUntil: 'commit', timeout: WAIT_MS });
    if (!resp || resp.status() !== 200) {
      fail(`GET ${url} answered ${resp ? resp.status() : 'nothing'}: the UI page is not served ` +
        '(is admin-ui/www built into this binary?)');
    }
    try {
      await tab.waitForFunction(() => window.__uiBench && window.__uiBench.frame !== null, null,
        { timeout: WAIT_MS, polling: 50 });
    } catch (e) {
      if (e instanceof Fail) throw e;
      const text = (await tab.evaluate(() => document.body?.innerText ?? '').catch(() => '')).slice(0, 400);
      fail(`${url} showed no ${page.selector} within ${WAIT_MS} ms — the page does not exist yet ` +
        `or lacks that data-testid. Page text: ${JSON.stringify(text)}` +
        (errors.length ? `; page errors: ${errors.slice(0, 3).join(' | ')}` : ''));
    }
    let fcp = null;
    try {
      await tab.waitForFunction(
        () => performance.getEntriesByType('paint').some((e) => e.name === 'first-contentful-paint'),
        null, { timeout: 5_000, polling: 50 });
      fcp = await tab.evaluate(
        () => performance.getEntriesByType('paint').find((e) => e.name === 'first-contentful-paint').startTime);
    } catch (e) {
      if (e instanceof Fail) throw e;
      fail(`${url}: the browser reported no first-contentful-paint entry`);
    }
    const data = await tab.evaluate(() => window.__uiBench.frame);
    // Where the time went: when the last module script arrived, and the page's data request
    // (the first request of its route) from start to its last byte.
    const parts = await tab.evaluate((route) => {
      const rs = performance.getEntriesByType('resource');
      const scripts = rs.filter((r) => r.initiatorType === 'script' || r.name.endsWith('.js') || r.name.endsWith('.mjs'));
      const req = rs.find((r) => new URL(r.name).pathname === route);
      return {
        scripts: scripts.length ? Math.max(...scripts.map((r) => r.responseEnd)) : null,
        req_start: req ? req.startTime : null,
        req_end: req ? req.responseEnd : null,
      };
    }, page.route);
    return { fcp, data, ...parts };
  } finally {
    await context.close();
  }
}

const browser = await chromium.launch({ executablePath: chromiumPath, args: ARGS, timeout: 60_000 });
const out = {};
try {
  for (const page of PAGES) {
    await loadOnce(browser, page); // warm-up: browser and renderer start, not counted
    const res = { fcp: [], data: [], scripts: [], req_start: [], req_end: [] };
    for (let i = 0; i < RUNS; i++) {
      const r = await loadOnce(browser, page);
      for (const k of Object.keys(res)) res[k].push(r[k]);
    }
    out[page.name] = res;
  }
  console.log(JSON.stringify(out));
} catch (e) {
  console.error(`ui_paint: ${e instanceof Fail ? e.message : e.stack || e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
