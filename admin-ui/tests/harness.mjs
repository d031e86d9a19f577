// Browser-test harness for the web UI (admin-ui/tests/*.test.mjs): owns starting the ratchet
// binary on loopback random ports, the real TypeScript SDK test service
// (tests/services/ts/service.mjs) and its registration, ingress/admin helpers for seeding and
// checking, Debian's Chromium through playwright-core, per-step screenshots under
// target/ui-screenshots/, and tearing all of it down in `after` (also when a test fails).
//
// Every wait here is bounded. Nothing waits for "network idle": the UI keeps a server-sent
// event stream open.
import { after, before, test } from 'node:test';
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

/** The repository root (paths below do not depend on the working directory). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = resolve(ROOT, process.env.RATCHET_BIN ?? 'target/debug/ratchet');
export const CHROMIUM = process.env.RATCHET_CHROMIUM ?? '/usr/bin/chromium';
export const SHOTS = resolve(ROOT, 'target/ui-screenshots');
const SERVICE_SCRIPT = resolve(ROOT, 'tests/services/ts/service.mjs');

const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** How long one UI wait may take (selectors, text). */
export const UI_WAIT = 15_000;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `promise`, or undefined after `ms` (the timer does not keep the process alive). */
function orAfter(promise, ms) {
  let t;
  const timer = new Promise((r) => { t = setTimeout(r, ms); });
  return Promise.race([promise, timer]).finally(() => clearTimeout(t));
}

/** Polls `fn` until it returns a truthy value; throws `what` (with the last value) after `ms`. */
export async function until(what, fn, ms = UI_WAIT, every = 100) {
  const end = Date.now() + ms;
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > end) {
      const tail = lastErr ? ` (last error: ${lastErr.message})` : ` (last value: ${JSON.stringify(last)})`;
      throw new Error(`timed out after ${ms} ms waiting for ${what}${tail}`);
    }
    await sleep(every);
  }
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

// Children to kill whatever happens (also when the test process exits abruptly).
const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* gone */ }
  }
});

/** Spawns a child whose output goes to `logPath`; resolves once its stdout lines matched all
 *  `want` regexes (their first groups are returned), or kills it and rejects after `ms`. */
function spawnAndRead(what, cmd, args, logPath, want, ms = 30_000) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  const log = createWriteStream(logPath);
  child.stderr.pipe(log, { end: false });
  const found = new Array(want.length).fill(null);
  return new Promise((res, rej) => {
    let buf = '';
    let settled = false;
    const fail = (message) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      rej(new Error(`${message} (log: ${logPath})`));
    };
    const timer = setTimeout(() => fail(`${what} printed no ${want.join(' / ')} within ${ms} ms`), ms);
    child.on('error', (e) => fail(`${what}: cannot start ${cmd}: ${e.message}`));
    child.on('exit', (code, sig) => fail(`${what} exited early (code ${code}, signal ${sig})`));
    child.stdout.on('data', (chunk) => {
      log.write(chunk);
      if (settled) return;
      buf += chunk.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        want.forEach((re, i) => {
          const m = found[i] === null && line.match(re);
          if (m) found[i] = m[1] ?? m[0];
        });
      }
      if (found.every((f) => f !== null)) {
        settled = true;
        clearTimeout(timer);
        res({ child, found });
      }
    });
  });
}

async function kill(child, ms = 5_000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), ms);
  await gone;
  clearTimeout(t);
}

// ------------------------------------------------------------------------------ HTTP helpers

async function http(method, url, body, headers = {}) {
  const init = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, text, json };
}

/** The running stack of one test file. */
export class Stack {
  constructor(name) {
    this.name = name;
    this.admin = null; // "http://127.0.0.1:P/"
    this.ingress = null;
    this.browser = null;
    this.procs = [];
  }

  async start() {
    mkdirSync(SHOTS, { recursive: true });
    // Screenshots and logs of an earlier run of this suite would mislead.
    for (const f of readdirSync(SHOTS)) {
      if (f.startsWith(`${this.name}-`) || f.startsWith(`${this.name}.`)) rmSync(join(SHOTS, f), { force: true });
    }
    if (!existsSync(BIN)) throw new Error(`no ratchet binary at ${BIN} (set RATCHET_BIN or build it)`);
    if (!existsSync(CHROMIUM)) {
      throw new Error(`no Chromium at ${CHROMIUM}: install it with ` +
        '`apt-get install -y --no-install-recommends chromium fonts-liberation` (scripts/test does)');
    }
    this.dir = mkdtempSync(join(tmpdir(), `ratchet-ui-${this.name}-`));
    const server = await spawnAndRead('ratchet server', BIN,
      ['server', '--base-dir', join(this.dir, 'base'), '--bind-ip', '127.0.0.1',
        '--use-random-ports', '--listen-mode', 'tcp'],
      join(SHOTS, `${this.name}.server.log`), [/^Admin: (\S+)/, /^HTTP Ingress: (\S+)/]);
    this.procs.push(server.child);
    [this.admin, this.ingress] = server.found.map((u) => (u.endsWith('/') ? u : `${u}/`));
    await until('the admin /health', async () => (await http('GET', `${this.admin}health`)).status === 200, 30_000);

    this.servicePort = await freePort();
    const svc = await spawnAndRead('TS test service', process.execPath,
      [SERVICE_SCRIPT, '--port', String(this.servicePort)],
      join(SHOTS, `${this.name}.service.log`), [/listening on/]);
    this.procs.push(svc.child);
    this.serviceUri = `http://127.0.0.1:${this.servicePort}`;
    const reg = await this.adminPost('deployments', { uri: this.serviceUri });
    if (reg.status !== 201 && reg.status !== 200) {
      throw new Error(`registering ${this.serviceUri}: ${reg.status} ${reg.text}`);
    }
    this.deploymentId = reg.json?.id;
    await until('the admin API to list Greeter', async () => (await this.adminGet('services/Greeter')).status === 200, 30_000);

    this.browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
  }

  async stop() {
    const errs = [];
    if (this.browser) {
      await orAfter(this.browser.close(), 10_000).catch((e) => errs.push(e));
    }
    for (const p of this.procs.reverse()) await kill(p).catch((e) => errs.push(e));
    // Anything a failed start left behind.
    for (const c of children) c.kill('SIGKILL');
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    if (errs.length) throw errs[0];
  }

  /** Starts admin-ui/tests/extra-service.mjs (service UiExtra) and answers its URI; it is
   *  stopped with the stack. */
  async startExtraService() {
    const port = await freePort();
    const svc = await spawnAndRead('extra TS service', process.execPath,
      [resolve(ROOT, 'admin-ui/tests/extra-service.mjs'), '--port', String(port)],
      join(SHOTS, `${this.name}.extra-service.log`), [/listening on/]);
    this.procs.push(svc.child);
    return `http://127.0.0.1:${port}`;
  }

  // ---- admin API
  adminGet(path) { return http('GET', this.admin + path); }
  adminPost(path, body) { return http('POST', this.admin + path, body); }
  adminReq(method, path, body) { return http(method, this.admin + path, body); }

  /** SQL through `POST /query`; the rows. */
  async sql(query) {
    const r = await http('POST', `${this.admin}query`, { query }, { accept: 'application/json' });
    if (r.status !== 200) throw new Error(`query ${query}: ${r.status} ${r.text}`);
    return r.json.rows;
  }

  // ---- ingress
  /** Calls `service[/key]/handler` and answers {status, json, id}. */
  async call(service, handler, input, { key, headers = {}, send = false, delay } = {}) {
    const path = [service, key, handler].filter((s) => s !== undefined && s !== null)
      .map(encodeURIComponent).join('/');
    const q = delay ? `?delay=${delay}` : '';
    const r = await http('POST', `${this.ingress}${path}${send ? '/send' : ''}${q}`,
      input === undefined ? '' : JSON.stringify(input), headers);
    return { ...r, id: r.headers.get('x-restate-id') ?? r.json?.invocationId ?? null };
  }

  /** Sends (fire and forget) and answers the new invocation's id. */
  async send(service, handler, input, opts = {}) {
    const r = await this.call(service, handler, input, { ...opts, send: true });
    if (r.status !== 202 && r.status !== 200) throw new Error(`send ${service}/${handler}: ${r.status} ${r.text}`);
    return r.id;
  }

  /** `GET /internal/ui/invocations/{id}` (the detail bundle). */
  async detail(id) {
    const r = await this.adminGet(`internal/ui/invocations/${encodeURIComponent(id)}`);
    if (r.status !== 200) throw new Error(`detail ${id}: ${r.status} ${r.text}`);
    return r.json;
  }

  async status(id) { return (await this.detail(id)).invocation.status; }

  /** Waits until invocation `id` has one of `statuses` (comma list or array). */
  async untilStatus(id, statuses, ms = 30_000) {
    const want = Array.isArray(statuses) ? statuses : statuses.split(',');
    return until(`${id} to be ${want.join('|')}`, async () => {
      const d = await this.detail(id);
      return want.includes(d.invocation.status) && d;
    }, ms, 150);
  }

  /** `GET /internal/ui/counts?<filter>`. */
  async counts(filter = {}) {
    const r = await this.adminGet(`internal/ui/counts?${new URLSearchParams(filter)}`);
    if (r.status !== 200) throw new Error(`counts: ${r.status} ${r.text}`);
    return r.json;
  }

  /** The UI URL of `path` (e.g. "invocations?service=Greeter"). */
  ui(path = '') { return `${this.admin}ui/${path}`; }
}

// ------------------------------------------------------------------------------ suites

function slug(s) {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
}

/**
 * One test file = one suite: a fresh server, service and browser, torn down in `after`.
 * `seed(stack)` runs once after start; its answer is `stack.seeded`. Returns `{ stack, uiTest }`, where
 * `uiTest(name, fn(page, shot))` runs `fn` with a fresh browser context and page and saves a
 * screenshot per step (`shot('step')` → target/ui-screenshots/<suite>-<test>-<step>.png) and one
 * on failure.
 */
export function suite(name, { seed } = {}) {
  const stack = new Stack(name);
  const ctx = { stack };
  before(async () => {
    await stack.start();
    if (seed) stack.seeded = await seed(stack);
  }, { timeout: 180_000 });
  after(async () => { await stack.stop(); }, { timeout: 60_000 });

  ctx.uiTest = (title, fn, { timeout = 120_000 } = {}) => test(title, { timeout }, async () => {
    const context = await stack.browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(UI_WAIT);
    const page = await context.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    const base = `${name}-${slug(title)}`;
    let n = 0;
    const shot = async (step) => {
      n += 1;
      await page.screenshot({ path: join(SHOTS, `${base}-${String(n).padStart(2, '0')}-${slug(step)}.png`), fullPage: true })
        .catch(() => {});
    };
    try {
      await fn(page, shot, { pageErrors, context });
      if (pageErrors.length) throw new Error(`uncaught errors in the page: ${pageErrors.join(' | ')}`);
    } catch (e) {
      await page.screenshot({ path: join(SHOTS, `${base}-FAILED.png`), fullPage: true }).catch(() => {});
      throw e;
    } finally {
      await orAfter(context.close(), 10_000).catch(() => {});
    }
  });
  return ctx;
}

/** The text of every element with data-testid `id` on `page`. */
export async function texts(page, id) {
  return page.locator(`[data-testid="${id}"]`).allInnerTexts();
}

/** Locator for data-testid `id`. */
export const tid = (page, id) => page.getByTestId(id);

/** Runs `fn(i)` for i in 0..n with at most `width` at once; answers the results in order. */
export async function times(n, fn, width = 8) {
  const out = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, n) }, async () => {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  }));
  return out;
}

/** Waits until `locator`'s attribute `name` equals `value` (string). */
export function untilAttr(locator, name, value, ms = UI_WAIT) {
  return until(`attribute ${name}="${value}" on ${locator}`, async () => (await locator.getAttribute(name, { timeout: 1000 })) === String(value) || null, ms);
}

/** Waits until `locator` matches exactly `n` elements. */
export function untilCount(locator, n, ms = UI_WAIT) {
  return until(`${n} elements matching ${locator}`, async () => (await locator.count()) === n, ms);
}

/** Waits until the text of `locator` (first match) satisfies `want` (a string it must
 *  contain, or a RegExp). Answers the text. */
export function untilText(locator, want, ms = UI_WAIT) {
  const ok = (t) => (want instanceof RegExp ? want.test(t) : t.includes(want));
  return until(`text ${want} in ${locator}`, async () => {
    const t = await locator.first().innerText({ timeout: 1000 });
    return ok(t) ? t : null;
  }, ms);
}

/** Waits until the page's URL (path + search) satisfies `pred`. */
export function untilUrl(page, pred, ms = UI_WAIT) {
  return until('the URL to change', async () => {
    const u = new URL(page.url());
    return pred(u) ? u : null;
  }, ms);
}

/** The data-id of every invocation row on the page, in order. */
export function rowIds(page) {
  return page.locator('[data-testid="inv-row"]').evaluateAll((rows) => rows.map((r) => r.dataset.id));
}
