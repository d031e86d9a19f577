// Browser tests of UI features the other files leave out: live updates are pushed by the
// server (no request while nothing happens, a refetch when something does), big payloads on
// the detail page (Show more, Download), a delayed idempotent send from the playground, the
// deployments page's update form and drained badge, the "Show the equivalent" panels of the
// invocation list and the state page, the overview's counts against /internal/ui/counts, the
// SQL console's CSV export, and "Retry now" on a backing-off invocation.
//
// The order matters in two places: the idle-window test runs first, while nothing runs on the
// server (a retrying invocation would push `applied` events and refetches); the backing-off
// Stubborn invocation is started by the second test and retried by the last one, so its
// back-off has grown long by then.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { suite, until, untilCount, untilText, untilUrl, tid, rowIds } from './harness.mjs';

const BIG = 200_000; // characters of the big Greeter input (> the preview, > 64 KiB "Show more")

const { stack, uiTest } = suite('coverage', {
  seed: async (s) => {
    for (const name of ['cov-1', 'cov-2']) {
      const r = await s.call('Greeter', 'greet', name);
      assert.equal(r.status, 200, r.text);
    }
    const add = await s.call('Counter', 'add', 3, { key: 'cov' });
    assert.equal(add.status, 200, add.text);
  },
});

/** The backing-off invocation the last test retries (started by `startStubborn`). */
let stubborn = null;
async function startStubborn() {
  stubborn ??= await stack.send('Stubborn', 'work', 'cov-retry');
  return stubborn;
}

/** The text of the code block labelled `label` ("restate CLI", "curl", "SQL (POST /query)")
 *  in the equivalent panel `panel` (opened first). */
async function equivalentText(panel, label) {
  if ((await panel.getAttribute('open')) === null) await panel.locator('summary').click();
  const item = panel.locator('.equiv-item', { has: panel.page().locator('.equiv-head', { hasText: label }) });
  await untilCount(item, 1);
  return item.locator('pre').innerText();
}

/** Reads a download's bytes (bounded: a download that never finishes fails the test). */
async function downloaded(download, ms = 20_000) {
  const path = await Promise.race([
    download.path(),
    new Promise((_, rej) => setTimeout(() => rej(new Error(`download not finished after ${ms} ms`)), ms).unref()),
  ]);
  assert.ok(path, `download failed: ${await download.failure()}`);
  return readFile(path);
}

const isEvents = (url) => new URL(url).pathname === '/internal/ui/events';

uiTest('live updates are pushed: no request while idle, a refetch when an invocation happens', async (page, shot) => {
  const requests = []; // {at, url, type}
  page.on('request', (req) => requests.push({ at: Date.now(), url: req.url(), type: req.resourceType() }));
  await page.goto(stack.ui('invocations?service=Greeter'));
  await untilCount(tid(page, 'inv-row'), 2);
  await until('the event stream to be open', async () => requests.some((r) => isEvents(r.url)));
  // Let the first fetches and any refetch the page's own start causes settle.
  await page.waitForTimeout(1500);

  const idleFrom = Date.now();
  await page.waitForTimeout(3000);
  const idleTo = Date.now();
  const inIdle = requests.filter((r) => r.at >= idleFrom && r.at <= idleTo);
  const data = inIdle.filter((r) => new URL(r.url).pathname.startsWith('/internal/ui/') && !isEvents(r.url));
  assert.deepEqual(data.map((r) => r.url), [], 'the page fetched data while nothing happened');
  // Nor anything else the page fetches by itself (admin API, SQL).
  const fetches = inIdle.filter((r) => (r.type === 'fetch' || r.type === 'xhr') && !isEvents(r.url));
  assert.deepEqual(fetches.map((r) => r.url), [], 'the page polled while nothing happened');
  await shot('idle');

  const before = await rowIds(page);
  const callAt = Date.now();
  const r = await stack.call('Greeter', 'greet', 'cov-live');
  assert.equal(r.status, 200, r.text);
  await until('the new row on the page', async () => (await rowIds(page)).includes(r.id), 10_000);
  const after = await rowIds(page);
  assert.equal(after.length, before.length + 1);
  const refetches = requests.filter((x) => x.at >= callAt && new URL(x.url).pathname === '/internal/ui/invocations');
  assert.ok(refetches.length >= 1, 'the new row came without a refetch of the list');
  await untilText(page.locator(`[data-testid="inv-row"][data-id="${r.id}"]`), 'succeeded');
  await shot('new-row');
});

uiTest('a payload over 4 KiB: Show more grows the inline text, Download gives all of it', async (page, shot) => {
  await startStubborn();
  const input = 'x'.repeat(BIG);
  const r = await stack.call('Greeter', 'greet', input);
  assert.equal(r.status, 200, r.text.slice(0, 200));
  const d = await stack.detail(r.id);
  const entry = d.journal.find((e) => e.size >= BIG && e.preview_truncated && (e.preview || '').includes('xxxx'));
  assert.ok(entry, `no truncated entry of ${BIG}+ bytes: ${JSON.stringify(d.journal.map((e) => [e.index, e.type, e.size]))}`);

  await page.goto(stack.ui(`invocations/${r.id}`));
  await untilText(tid(page, 'facts').getByTestId('status'), 'succeeded');
  const row = page.locator(`[data-testid="journal-row"][data-index="${entry.index}"]`);
  const preview = row.getByTestId('preview');
  await preview.waitFor();
  const small = (await preview.innerText()).length;
  // The detail's preview is short (at most 4 KiB; 512 bytes per journal entry today).
  assert.ok(small >= 256 && small <= 1024, `the first preview has ${small} characters`);
  await shot('preview');

  await row.getByTestId('show-more').click();
  const grown = await until('the inline text to grow', async () => {
    const n = (await preview.innerText({ timeout: 1000 })).length;
    return n > 60_000 && n;
  });
  assert.ok(grown <= 65_536, `Show more put ${grown} characters on the page`);
  await untilText(row, 'first 64 KiB shown');
  const pageText = await page.evaluate(() => document.body.textContent.length);
  assert.ok(pageText < 150_000, `the page holds ${pageText} characters of text`);
  await shot('more');

  // The link names the whole payload; clicking it downloads all of it.
  const link = row.getByTestId('download');
  const href = await link.getAttribute('href');
  assert.match(href, new RegExp(`/internal/ui/invocations/${r.id}/journal/${entry.index}\\?download=1$`));
  const direct = await fetch(new URL(href, stack.admin), { signal: AbortSignal.timeout(20_000) });
  assert.equal(direct.status, 200);
  const whole = Buffer.from(await direct.arrayBuffer());
  assert.equal(whole.length, entry.size);
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 15_000 }), link.click()]);
  const bytes = await downloaded(download);
  assert.equal(bytes.length, entry.size, `downloaded ${bytes.length} bytes of ${entry.size}`);
  assert.ok(bytes.length >= BIG);
  assert.ok(bytes.equals(whole), 'the download differs from the payload');
  // Named after the invocation (the server's content-disposition name wins over the link's).
  assert.ok(download.suggestedFilename().startsWith(r.id), download.suggestedFilename());
});

uiTest('playground: send with a delay and an idempotency key gives a scheduled invocation', async (page, shot) => {
  await page.goto(stack.ui('playground/Greeter/greet'));
  await tid(page, 'pg-input').fill('"Later"');
  await tid(page, 'pg-mode-send').check();
  await tid(page, 'pg-delay').fill('1h');
  await tid(page, 'pg-idem').fill('cov-delayed-1');
  await untilText(tid(page, 'pg-url'), '/Greeter/greet/send?delay=1h');
  await tid(page, 'pg-submit').click();
  await untilText(tid(page, 'pg-status'), /^20[02]/);
  const link = tid(page, 'pg-invocation');
  const id = (await link.innerText()).trim();
  assert.match(id, /^inv_/);
  await shot('sent');

  await link.click();
  await untilUrl(page, (u) => u.pathname === `/ui/invocations/${id}`);
  await untilText(tid(page, 'target'), 'Greeter/greet');
  await untilText(tid(page, 'facts').getByTestId('status'), 'scheduled');
  await untilText(tid(page, 'facts'), 'cov-delayed-1');
  await untilText(tid(page, 'facts'), 'Scheduled start');
  const inv = (await stack.detail(id)).invocation;
  assert.equal(inv.status, 'scheduled');
  assert.equal(inv.idempotency_key, 'cov-delayed-1');
  const inAnHour = inv.scheduled_start_at - Date.now();
  assert.ok(inAnHour > 50 * 60_000 && inAnHour <= 3_600_000, `scheduled start in ${inAnHour} ms`);
  await tid(page, 'waiting-on').locator('[data-kind="scheduled"]').waitFor();
  await shot('scheduled');
});

uiTest('deployments: a superseded deployment shows drained; the update form patches it', async (page, shot) => {
  const first = await stack.startExtraService();
  const second = await stack.startExtraService();
  const a = await stack.adminPost('deployments', { uri: first });
  assert.equal(a.status, 201, a.text);
  const b = await stack.adminPost('deployments', { uri: second });
  assert.equal(b.status, 201, b.text);
  assert.equal((await stack.adminGet('services/UiExtra')).json.deployment_id, b.json.id, 'the second is not the latest');

  await page.goto(stack.ui('deployments'));
  await untilCount(tid(page, 'deployment-row'), 3);
  const rowA = page.locator(`[data-testid="deployment-row"][data-id="${a.json.id}"]`);
  const rowB = page.locator(`[data-testid="deployment-row"][data-id="${b.json.id}"]`);
  const rowMain = page.locator(`[data-testid="deployment-row"][data-id="${stack.deploymentId}"]`);
  // Not the latest for any service, nothing pinned: drained. The others are not.
  await untilText(rowA.getByTestId('pinned'), '0');
  await untilText(rowA.getByTestId('drained'), 'drained');
  await untilText(rowB, 'latest for 1');
  assert.equal(await rowB.getByTestId('drained').count(), 0);
  assert.equal(await rowMain.getByTestId('drained').count(), 0);
  await untilText(rowA.locator('.chip.superseded'), 'UiExtra');
  await shot('drained');

  // Update the drained one: same address, a new header.
  await rowA.getByTestId('edit').click();
  const form = tid(page, 'update-form');
  await untilText(form, a.json.id);
  assert.equal((await tid(page, 'update-uri').inputValue()).replace(/\/$/, ''), first);
  await tid(page, 'update-headers').fill('x-cov-test: yes');
  await tid(page, 'update-submit').click();
  await untilText(form.getByTestId('discovery-result'), 'Updated. The deployment now serves:');
  await untilText(form.getByTestId('discovery-result'), a.json.id);
  // (The server answers `services: []` for a superseded deployment, so the result's table is
  // empty here; the row keeps its superseded UiExtra chip from GET /deployments.)
  assert.equal(await form.getByTestId('error').count(), 0);
  await untilText(rowA, 'headers: x-cov-test');
  await untilText(rowA.locator('.chip.superseded'), 'UiExtra');
  await shot('updated');
  const stored = (await stack.adminGet(`deployments/${a.json.id}`)).json;
  assert.deepEqual(stored.additional_headers, { 'x-cov-test': 'yes' });
  // Updating it in place made it no one's latest again.
  assert.equal((await stack.adminGet('services/UiExtra')).json.deployment_id, b.json.id);
  await untilText(rowA.getByTestId('drained'), 'drained');
  await untilCount(tid(page, 'deployment-row'), 3);
});

uiTest('show the equivalent: the filtered list (SQL, curl, CLI) and an object\'s state (CLI)', async (page, shot) => {
  await page.goto(stack.ui('invocations?service=Greeter&status=succeeded'));
  await tid(page, 'inv-row').first().waitFor();
  const panel = tid(page, 'equivalent');
  const sql = await equivalentText(panel, 'SQL');
  assert.match(sql, /\bFROM sys_invocation\b/);
  assert.match(sql, /target_service_name = 'Greeter'/);
  assert.match(sql, /completion_result = 'success'/);
  const curl = await equivalentText(panel, 'curl');
  const lines = curl.split('\n');
  assert.ok(lines[0].startsWith('curl'), curl);
  assert.match(lines[0], /\/internal\/ui\/invocations\?/);
  assert.match(lines[0], /service=Greeter/);
  assert.match(lines[0], /status=succeeded/);
  const cli = await equivalentText(panel, 'restate CLI');
  assert.ok(cli.startsWith('restate '), cli);
  assert.match(cli, /^restate invocations list --service Greeter --status completed --completion-result success/);
  await shot('list-equivalent');

  await page.goto(stack.ui('state/Counter/cov'));
  await untilText(tid(page, 'state-key'), 'cov');
  await tid(page, 'state-entry').first().waitFor();
  const stateCli = await equivalentText(tid(page, 'equivalent'), 'restate CLI');
  assert.match(stateCli, /^restate kv get Counter cov$/m);
  assert.match(stateCli, /restate kv /);
  await shot('state-equivalent');
});

uiTest('overview numbers equal /internal/ui/counts; SQL console exports CSV', async (page, shot) => {
  await page.goto(stack.ui(''));
  await tid(page, 'count-total').waitFor();
  const cells = async () => ({
    total: await tid(page, 'count-total').innerText(),
    greet: await tid(page, 'count-Greeter-greet-succeeded').getAttribute('data-count'),
    greetAll: await tid(page, 'count-Greeter-all-total').getAttribute('data-count'),
    counter: await tid(page, 'count-Counter-add-succeeded').getAttribute('data-count'),
  });
  const want = (c) => {
    const g = c.services.find((s) => s.service === 'Greeter');
    const k = c.services.find((s) => s.service === 'Counter');
    return {
      total: c.total.toLocaleString('en-US'),
      greet: String(g.handlers.find((h) => h.handler === 'greet').by_status.succeeded),
      greetAll: String(g.total),
      counter: String(k.handlers.find((h) => h.handler === 'add').by_status.succeeded),
    };
  };
  // The retrying Stubborn invocation moves between statuses, never in or out of the totals.
  const seen = await until('the overview to show the counts', async () => {
    const direct = want(await stack.counts());
    const shown = await cells();
    return JSON.stringify(shown) === JSON.stringify(direct) && { shown, direct };
  });
  assert.ok(Number(seen.shown.greet) >= 4, `Greeter/greet succeeded: ${seen.shown.greet}`);
  assert.deepEqual(want(await stack.counts()), seen.shown);
  await shot('overview');

  const q = "SELECT id, target FROM sys_invocation WHERE target = 'Greeter/greet' ORDER BY id";
  const rows = await stack.sql(q);
  await page.goto(stack.ui('sql'));
  await tid(page, 'sql-input').fill(q);
  await tid(page, 'sql-run').click();
  await untilText(tid(page, 'sql-meta'), `${rows.length} rows`);
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 15_000 }), tid(page, 'export-csv').click()]);
  assert.match(download.suggestedFilename(), /^query-.*\.csv$/);
  const csv = (await downloaded(download)).toString('utf8');
  const lines = csv.split('\r\n').filter(Boolean);
  assert.equal(lines[0], 'id,target');
  assert.deepEqual(lines.slice(1), rows.map((r) => `${r.id},${r.target}`));
  await shot('sql-export');
});

uiTest('retry now: a backing-off invocation succeeds at once, before its next scheduled retry', async (page, shot) => {
  const id = await startStubborn();
  // A back-off long enough that the click, not the schedule, makes the next attempt.
  const nextRetry = await until('a back-off of more than 5 s', async () => {
    const inv = (await stack.detail(id)).invocation;
    return inv.status === 'backing-off' && inv.next_retry_at - Date.now() > 5_000 && inv.next_retry_at;
  }, 60_000, 200);
  await page.goto(stack.ui(`invocations/${id}`));
  await untilText(tid(page, 'target'), 'Stubborn/work');
  await untilText(tid(page, 'facts').getByTestId('status'), 'backing-off');
  await untilText(tid(page, 'action-retry-now'), 'Retry now');
  await untilText(tid(page, 'last-failure'), /not yet \(attempt \d+\)/);
  await shot('backing-off');

  assert.equal((await stack.call('Stubborn', 'allow', 'cov-retry')).status, 200);
  const clickedAt = Date.now();
  await tid(page, 'action-retry-now').click();
  await tid(page, 'action-retry-now-confirm').click();
  await untilText(tid(page, 'notice'), 'Retrying now.');
  await untilText(tid(page, 'facts').getByTestId('status'), 'succeeded', Math.max(nextRetry - Date.now() - 500, 2_000));
  const done = (await stack.detail(id)).invocation;
  assert.equal(done.status, 'succeeded');
  assert.ok(done.completed_at < nextRetry, `completed at ${done.completed_at}, the scheduled retry was at ${nextRetry}`);
  assert.ok(done.completed_at - clickedAt < 5_000, `completed ${done.completed_at - clickedAt} ms after the click`);
  assert.equal(await tid(page, 'action-retry-now').count(), 0, 'a succeeded invocation still offers Retry now');
  await shot('succeeded');
});
