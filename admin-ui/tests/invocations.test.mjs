// Browser tests of the invocation list (/ui/invocations): filters taken from the URL, the
// quick filter and status boxes, presets, keyset paging past one page, a bad filter's error,
// live updates without reload, keyboard navigation (/, j, k, Enter, ?), the column chooser,
// actions on selected rows, and actions over everything matching a filter (dry-run count,
// then run).
import assert from 'node:assert/strict';
import {
  suite, times, until, untilAttr, untilCount, untilText, untilUrl, tid, rowIds,
} from './harness.mjs';

const GREETS = 55; // more than one page (50)
const FAILS = 2;
const ADDS = 3;

const { stack, uiTest } = suite('invocations', {
  seed: async (s) => {
    const greets = await times(GREETS, async (i) => {
      const r = await s.call('Greeter', 'greet', `inv-${i}`);
      assert.equal(r.status, 200, r.text);
      return r.id;
    });
    const fails = await times(FAILS, async () => (await s.call('Greeter', 'fail', null)).id);
    const adds = [];
    for (let i = 0; i < ADDS; i++) adds.push((await s.call('Counter', 'add', 1, { key: 'a' })).id);
    const stubborn = await s.send('Stubborn', 'work', 'list');
    await until('Stubborn to have failed once', async () => (await s.detail(stubborn)).invocation.retry_count >= 1, 30_000);
    return { greets, fails, adds, stubborn };
  },
});
const seed = () => stack.seeded;

uiTest('filters in the URL select the rows, and paging walks past one page', async (page, shot) => {
  const { greets } = seed();
  await page.goto(stack.ui('invocations?service=Greeter&handler=greet'));
  await untilCount(tid(page, 'inv-row'), 50);
  await untilText(tid(page, 'summary-total'), String(GREETS));
  const first = await rowIds(page);
  assert.equal(new Set(first).size, 50);
  await shot('page-1');

  assert.equal(await tid(page, 'prev-page').isDisabled(), true);
  await tid(page, 'next-page').click();
  await untilCount(tid(page, 'inv-row'), GREETS - 50);
  const second = await rowIds(page);
  assert.equal(second.filter((id) => first.includes(id)).length, 0, 'page 2 repeats rows of page 1');
  assert.deepEqual([...first, ...second].sort(), [...greets].sort(), 'the two pages are not exactly the seeded calls');
  assert.equal(await tid(page, 'next-page').isDisabled(), true);
  await shot('page-2');

  await tid(page, 'prev-page').click();
  await untilCount(tid(page, 'inv-row'), 50);
  assert.deepEqual(await rowIds(page), first);

  await page.goto(stack.ui('invocations?status=failed'));
  await untilCount(tid(page, 'inv-row'), FAILS);
  const rows = tid(page, 'inv-row');
  for (let i = 0; i < FAILS; i++) {
    assert.equal(await rows.nth(i).getAttribute('data-status'), 'failed');
    assert.match(await rows.nth(i).innerText(), /Greeter\/fail/);
  }
  await shot('status-failed');

  await page.goto(stack.ui('invocations?service=Counter&key=a'));
  await untilCount(tid(page, 'inv-row'), ADDS);
  assert.deepEqual((await rowIds(page)).sort(), [...seed().adds].sort());

  await page.goto(stack.ui(`invocations?id=${seed().stubborn}`));
  await untilCount(tid(page, 'inv-row'), 1);
  assert.deepEqual(await rowIds(page), [seed().stubborn]);

  await page.goto(stack.ui('invocations?service=NoSuchService'));
  await page.getByText('No invocations match.').waitFor();
  assert.equal(await tid(page, 'inv-row').count(), 0);

  // A bad value: the server's 400 naming the parameter.
  await page.goto(stack.ui('invocations?status=bogus'));
  await untilText(tid(page, 'error'), /status/);
  await untilText(tid(page, 'error'), /400/);
  await shot('bad-filter');
});

uiTest('presets narrow the list within the current scope', async (page, shot) => {
  await page.goto(stack.ui('invocations?service=Greeter'));
  await untilText(tid(page, 'summary-total'), String(GREETS + FAILS));
  await tid(page, 'preset-failed').click();
  const u = await untilUrl(page, (x) => x.searchParams.get('status') === 'failed');
  assert.equal(u.searchParams.get('service'), 'Greeter');
  await untilCount(tid(page, 'inv-row'), FAILS);
  await shot('greeter-failed');

  await page.goto(stack.ui('invocations?service=Stubborn'));
  await tid(page, 'preset-failing-backing-off').click();
  await untilUrl(page, (x) => x.searchParams.get('status') === 'backing-off');
  await until('the backing-off Stubborn row', async () => {
    const ids = await rowIds(page);
    return ids.length === 1 && ids[0] === seed().stubborn;
  });

  await page.goto(stack.ui('invocations?service=Greeter'));
  await tid(page, 'preset-in-flight').click();
  await untilUrl(page, (x) => x.searchParams.get('status_not') === 'succeeded,failed');
  await page.getByText('No invocations match.').waitFor();
  await shot('greeter-in-flight');
});

uiTest('an invocation made while the list is open appears without a reload', async (page, shot) => {
  await page.goto(stack.ui('invocations?service=Greeter&handler=greet'));
  await untilCount(tid(page, 'inv-row'), 50);
  await page.evaluate(() => { window.__noReload = true; });
  const r = await stack.call('Greeter', 'greet', 'live');
  assert.equal(r.status, 200);
  await until('the new row', async () => (await rowIds(page))[0] === r.id);
  await untilText(tid(page, 'summary-total'), String(GREETS + 1));
  assert.equal(await page.evaluate(() => window.__noReload), true, 'the page was reloaded');
  await shot('live-row');
});

uiTest('keyboard: / focuses the filter, j/k move, Enter opens the row, ? shows help', async (page, shot) => {
  await page.goto(stack.ui('invocations?service=Greeter&handler=fail'));
  await untilCount(tid(page, 'inv-row'), FAILS);
  const ids = await rowIds(page);

  await page.keyboard.press('/');
  assert.equal(await page.evaluate(() => document.activeElement?.hasAttribute('data-search')), true,
    '/ did not focus the filter field');
  await page.keyboard.press('Escape');
  assert.equal(await page.evaluate(() => document.activeElement === document.body), true, 'Escape did not leave the field');

  const active = () => tid(page, 'inv-row').evaluateAll((rows) => rows.findIndex((r) => r.classList.contains('kb-active')));
  await page.keyboard.press('j');
  assert.equal(await active(), 0);
  await page.keyboard.press('j');
  assert.equal(await active(), 1);
  await page.keyboard.press('k');
  assert.equal(await active(), 0);
  await shot('row-highlighted');

  await page.keyboard.press('?');
  await until('the shortcuts dialog', () => tid(page, 'shortcuts').evaluate((d) => d.open));
  await page.keyboard.press('Escape');
  await until('the dialog to close', async () => !(await tid(page, 'shortcuts').evaluate((d) => d.open)));

  await page.keyboard.press('Enter');
  await untilUrl(page, (x) => x.pathname === `/ui/invocations/${ids[0]}`);
  await untilText(tid(page, 'target'), 'Greeter/fail');
  await shot('opened');
});

uiTest('quick filter, status checkboxes and the column chooser', async (page, shot) => {
  await page.goto(stack.ui('invocations'));
  await tid(page, 'inv-row').first().waitFor();
  const quick = page.locator('main input[data-search]');
  await quick.fill('Greeter/fail');
  await quick.press('Enter');
  const u = await untilUrl(page, (x) => x.searchParams.get('handler') === 'fail');
  assert.equal(u.searchParams.get('service'), 'Greeter');
  await untilCount(tid(page, 'inv-row'), FAILS);

  // Ticking a status adds it to the URL's filter.
  await page.goto(stack.ui('invocations?service=Greeter'));
  await untilText(tid(page, 'summary-total'), String((await stack.counts({ service: 'Greeter' })).total));
  await tid(page, 'status-failed').check();
  await untilUrl(page, (x) => x.searchParams.get('status') === 'failed' && x.searchParams.get('service') === 'Greeter');
  await untilCount(tid(page, 'inv-row'), FAILS);
  await tid(page, 'status-failed').uncheck();
  await untilUrl(page, (x) => !x.searchParams.get('status'));
  await shot('status-box');

  // A column shown stays shown after a reload.
  const headers = () => tid(page, 'inv-table').locator('thead th').allInnerTexts();
  assert.ok(!(await headers()).includes('Deployment'));
  await tid(page, 'column-chooser').locator('summary').click();
  await tid(page, 'col-deployment').check();
  await until('the Deployment column', async () => (await headers()).includes('Deployment'));
  await page.reload();
  await tid(page, 'inv-row').first().waitFor();
  assert.ok((await headers()).includes('Deployment'), 'the column choice was not kept');
  await untilText(tid(page, 'inv-row').first(), stack.deploymentId);
  await shot('columns');
});

uiTest('selected rows: kill two of them', async (page, shot) => {
  const ids = [];
  for (const key of ['sel-1', 'sel-2', 'sel-3']) ids.push(await stack.send('Counter', 'hold', 600_000, { key }));
  for (const id of ids) await stack.untilStatus(id, 'running,suspended');
  await page.goto(stack.ui('invocations?service=Counter&handler=hold'));
  await untilCount(tid(page, 'inv-row'), 3);
  const chosen = ids.slice(0, 2);
  for (const id of chosen) await page.locator(`[data-testid="inv-row"][data-id="${id}"] input[type=checkbox]`).check();
  await untilText(tid(page, 'selection-actions'), '2 selected');
  await tid(page, 'selection-kill').click();
  await tid(page, 'selection-kill-confirm').click();
  await untilText(tid(page, 'selection-result'), 'Kill: 2 succeeded, 0 failed.');
  for (const id of chosen) await stack.untilStatus(id, 'failed');
  await until('the killed rows to show failed', async () => {
    const st = await tid(page, 'inv-row').evaluateAll((rows) => Object.fromEntries(rows.map((r) => [r.dataset.id, r.dataset.status])));
    return st[chosen[0]] === 'failed' && st[chosen[1]] === 'failed' && st[ids[2]] !== 'failed';
  });
  await shot('killed');
  const kill = await stack.adminReq('PATCH', `invocations/${ids[2]}/kill`);
  assert.ok(kill.status < 300, kill.text);
});

uiTest('batch by filter: dry-run count, then cancel them all', async (page, shot) => {
  const ids = await times(3, (i) => stack.send('Sleeper', 'sleep', { tag: `batch-${i}`, ms: 600_000 }));
  for (const id of ids) await stack.untilStatus(id, 'running,suspended');
  await page.goto(stack.ui('invocations?service=Sleeper&status_not=succeeded,failed'));
  await untilCount(tid(page, 'inv-row'), 3);
  assert.deepEqual((await rowIds(page)).sort(), [...ids].sort());

  await tid(page, 'batch-op').selectOption('cancel');
  await tid(page, 'batch-dry-run').click();
  await untilAttr(tid(page, 'batch-matched'), 'data-matched', 3);
  await shot('dry-run');
  // The dry run changed nothing.
  for (const id of ids) assert.notEqual(await stack.status(id), 'failed');

  await tid(page, 'batch-run').click();
  await untilText(tid(page, 'batch-succeeded'), '3');
  await untilText(tid(page, 'batch-failed'), '0');
  // The list follows without a reload: nothing of Sleeper is in flight any more.
  await page.getByText('No invocations match.').waitFor({ timeout: 30_000 });
  await shot('ran');
  for (const id of ids) await stack.untilStatus(id, 'failed');

  await page.goto(stack.ui('invocations?service=Sleeper&status=failed'));
  await untilCount(tid(page, 'inv-row'), 3);
});
