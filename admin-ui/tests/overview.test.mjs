// Browser tests of the overview page (exact counts per service, handler and status, links
// into the filtered list), the shell (every page of the navigation renders, unknown routes),
// dark mode, and the settings page's bearer token being sent as `Authorization` on the UI's
// admin requests.
import assert from 'node:assert/strict';
import {
  suite, times, until, untilAttr, untilCount, untilText, untilUrl, tid,
} from './harness.mjs';

const GREETS = 3;
const FAILS = 2;
const ADDS = 3;

const { stack, uiTest } = suite('overview', {
  seed: async (s) => {
    await times(GREETS, async (i) => {
      const r = await s.call('Greeter', 'greet', `ov-${i}`);
      assert.equal(r.status, 200, r.text);
    });
    await times(FAILS, async () => {
      const r = await s.call('Greeter', 'fail', null);
      assert.ok(r.status >= 400, `Greeter/fail answered ${r.status}`);
    });
    for (let i = 0; i < ADDS; i++) {
      const r = await s.call('Counter', 'add', 1, { key: 'a' });
      assert.equal(r.status, 200, r.text);
    }
    const stubborn = await s.send('Stubborn', 'work', 'overview');
    await until('Stubborn to have failed once', async () => (await s.detail(stubborn)).invocation.retry_count >= 1, 30_000);
    return { stubborn };
  },
});

uiTest('overview counts equal what was seeded and link to the filtered list', async (page, shot) => {
  await page.goto(stack.ui());
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  await untilAttr(tid(page, 'count-Greeter-greet-succeeded'), 'data-count', GREETS);
  await untilAttr(tid(page, 'count-Greeter-fail-failed'), 'data-count', FAILS);
  await untilAttr(tid(page, 'count-Greeter-all-total'), 'data-count', GREETS + FAILS);
  await untilAttr(tid(page, 'count-Counter-add-succeeded'), 'data-count', ADDS);
  await untilAttr(tid(page, 'count-Stubborn-work-total'), 'data-count', 1);
  // Between attempts Stubborn backs off (its attempts are short).
  await untilAttr(tid(page, 'count-Stubborn-work-backing-off'), 'data-count', 1);
  await untilText(tid(page, 'count-total'), String(GREETS + FAILS + ADDS + 1));
  await untilText(tid(page, 'deployments-count'), '1');
  // A zero cell says 0 and links nowhere.
  assert.equal(await tid(page, 'count-Greeter-greet-failed').getAttribute('data-count'), '0');
  assert.equal(await tid(page, 'count-Greeter-greet-failed').locator('a').count(), 0);
  await shot('counts');

  await tid(page, 'count-Greeter-fail-failed').locator('a').click();
  const u = await untilUrl(page, (x) => x.pathname === '/ui/invocations');
  assert.equal(u.searchParams.get('service'), 'Greeter');
  assert.equal(u.searchParams.get('handler'), 'fail');
  assert.equal(u.searchParams.get('status'), 'failed');
  await untilCount(tid(page, 'inv-row'), FAILS);
  const statuses = await tid(page, 'inv-row').evaluateAll((rows) => rows.map((r) => r.dataset.status));
  assert.deepEqual(statuses, Array(FAILS).fill('failed'));
  await shot('list-from-count');
});

uiTest('dark mode changes the computed background colour', async (page, shot) => {
  const bg = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const luminance = (c) => {
    const [r, g, b] = c.match(/\d+(\.\d+)?/g).map(Number);
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  await page.emulateMedia({ colorScheme: 'light' });
  await page.goto(stack.ui());
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  const light = await bg();
  await shot('light');
  await page.emulateMedia({ colorScheme: 'dark' });
  const dark = await until('the background to change', async () => {
    const c = await bg();
    return c !== light && c;
  });
  assert.ok(luminance(dark) < luminance(light) - 100, `dark ${dark} is not darker than light ${light}`);
  await shot('dark');
});

uiTest('a bearer token set in settings is sent as Authorization', async (page, shot) => {
  const seen = [];
  page.on('request', async (req) => {
    // Admin API requests only, not the UI's own files under /ui/.
    if (!req.url().startsWith(stack.admin) || req.url().startsWith(stack.ui())) return;
    const headers = await req.allHeaders().catch(() => ({}));
    seen.push({ url: req.url(), auth: headers.authorization ?? null });
  });
  await page.goto(stack.ui('settings'));
  await tid(page, 'server-version').waitFor();
  assert.ok(seen.length > 0, 'the settings page made no admin request');
  assert.ok(seen.every((r) => r.auth === null), `a request carried a token before one was set: ${JSON.stringify(seen)}`);
  await untilText(tid(page, 'token-state'), 'No token');

  await tid(page, 'token-input').fill('ui-test-token');
  const before = seen.length;
  await tid(page, 'token-save').click();
  await untilText(tid(page, 'token-msg'), 'Saved');
  await untilText(tid(page, 'token-state'), 'A token is set');
  await until('the version request with the token', () => seen.slice(before).some((r) => r.url.endsWith('/version')));
  await shot('saved');

  // Client-side navigation: the list's requests carry it too.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Invocations' }).click();
  await tid(page, 'inv-row').first().waitFor();
  await until('a list request after saving', () => seen.slice(before).some((r) => r.url.includes('/internal/ui/invocations')));
  const after = seen.slice(before);
  const bad = after.filter((r) => r.auth !== 'Bearer ui-test-token');
  assert.deepEqual(bad, [], 'requests after saving the token without it');
  await shot('list-with-token');

  // Clearing it stops sending it.
  await page.goto(stack.ui('settings'));
  await tid(page, 'token-clear').click();
  await untilText(tid(page, 'token-state'), 'No token');
  const mark = seen.length;
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Overview' }).click();
  await tid(page, 'count-total').waitFor();
  await until('an overview request', () => seen.slice(mark).some((r) => r.url.includes('/internal/ui/counts')));
  assert.ok(seen.slice(mark).every((r) => r.auth === null), 'a request carried the cleared token');
});

uiTest('every page of the navigation renders without an error', async (page, shot) => {
  const pages = [
    ['Overview', '/ui/', 'Overview'], ['Invocations', '/ui/invocations', 'Invocations'],
    ['Deployments', '/ui/deployments', 'Deployments'], ['Services', '/ui/services', 'Services'],
    ['State', '/ui/state', 'State'], ['Workflows', '/ui/workflows', 'Workflows'], ['SQL', '/ui/sql', 'SQL'],
    ['Playground', '/ui/playground', 'Playground'], ['Settings', '/ui/settings', 'Settings'],
  ];
  await page.goto(stack.admin); // GET / redirects to /ui/
  await untilUrl(page, (u) => u.pathname === '/ui/');
  const nav = page.getByRole('navigation', { name: 'Main' });
  for (const [label, path, heading] of pages) {
    await nav.getByRole('link', { name: label, exact: true }).click();
    await untilUrl(page, (u) => u.pathname === path);
    await page.getByRole('heading', { level: 1, name: heading, exact: true }).waitFor();
    assert.equal(await nav.getByRole('link', { name: label, exact: true }).getAttribute('aria-current'), 'page');
    // Let the page's first requests answer, then look for an error box.
    await page.waitForTimeout(300);
    await page.locator('main p.muted', { hasText: 'Loading…' }).first().waitFor({ state: 'detached' }).catch(() => {});
    assert.equal(await tid(page, 'error').count(), 0, `${label} shows an error: ${await tid(page, 'error').allInnerTexts()}`);
    await shot(label);
  }
  await page.goto(stack.ui('no/such/page'));
  await page.getByRole('heading', { name: 'Not found' }).waitFor();
  const asset = await stack.adminGet('ui/no-such-file.js');
  assert.equal(asset.status, 404);
});
