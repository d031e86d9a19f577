// Browser tests of the invocation detail page (/ui/invocations/:id): a failing invocation's
// last failure and retry count, blocked-by chains (a call waiting on a failing callee, with
// the inline action; a call queued behind a failing lock holder), what it waits on, the journal and timeline, and every action: pause, resume, kill, cancel, purge,
// restart as new and restart from a journal entry.
import assert from 'node:assert/strict';
import { suite, until, untilCount, untilText, untilUrl, tid } from './harness.mjs';

const { stack, uiTest } = suite('invocation');

/** The status badge of the facts block (other badges sit in chains and tables). */
const factStatus = (page) => tid(page, 'facts').getByTestId('status');

async function untilFactStatus(page, want, ms) {
  const ok = Array.isArray(want) ? want : [want];
  return until(`status ${ok.join('|')} on the page`, async () => {
    const t = (await factStatus(page).innerText({ timeout: 1000 })).trim();
    return ok.includes(t) && t;
  }, ms);
}

/** Clicks an action button and its confirm button (lib.js ConfirmButton). */
async function act(page, testid) {
  await tid(page, testid).click();
  await tid(page, `${testid}-confirm`).click();
}

uiTest('a failing invocation: last failure, live retry count, pause, resume, kill', async (page, shot) => {
  const id = await stack.send('Stubborn', 'work', 'detail');
  await until('two failed attempts', async () => (await stack.detail(id)).invocation.retry_count >= 2, 30_000);
  await page.goto(stack.ui(`invocations/${id}`));
  await untilText(tid(page, 'target'), 'Stubborn/work');
  await untilFactStatus(page, 'backing-off');
  await untilText(tid(page, 'last-failure'), /not yet \(attempt \d+\)/);
  const retries = Number((await tid(page, 'retry-count').innerText()).match(/\d+/)[0]);
  assert.ok(retries >= 2, `retry count ${retries}`);
  await tid(page, 'timeline').waitFor();
  assert.ok(await tid(page, 'journal-row').count() >= 1, 'no journal row');
  await shot('backing-off');
  // The page follows the retries by itself.
  await until('the retry count to grow on the page', async () => {
    const n = Number((await tid(page, 'retry-count').innerText()).match(/\d+/)[0]);
    return n > retries;
  }, 20_000);

  await act(page, 'action-pause');
  await untilText(tid(page, 'notice'), 'Paused.');
  await untilFactStatus(page, 'paused', 20_000);
  assert.equal(await stack.status(id), 'paused');
  await shot('paused');

  await act(page, 'action-resume');
  await untilText(tid(page, 'notice'), 'Resumed.');
  await untilFactStatus(page, ['running', 'backing-off'], 20_000);

  await act(page, 'action-kill');
  await untilText(tid(page, 'notice'), 'Killed.');
  await untilFactStatus(page, 'failed', 20_000);
  assert.equal(await stack.status(id), 'failed');
  // The equivalent commands name this invocation.
  await tid(page, 'equivalent').locator('summary').click();
  await untilText(tid(page, 'equivalent'), `restate invocations kill ${id}`);
  await shot('killed');
});

uiTest('blocked-by: a call waiting on a failing callee; the inline resume lets it finish', async (page, shot) => {
  const caller = await stack.send('Caller', 'callStubborn', 'chain');
  const d = await until('a two-link chain', async () => {
    const x = await stack.detail(caller);
    return x.blocked_by.length === 2 && x;
  }, 30_000);
  const root = d.blocked_by[1].invocation_id;
  // Wait for a long back-off, so the retry the inline action starts comes before the next
  // scheduled one.
  const nextRetry = await until('a back-off of more than 5 s', async () => {
    const inv = (await stack.detail(root)).invocation;
    return inv.status === 'backing-off' && inv.next_retry_at - Date.now() > 5_000 && inv.next_retry_at;
  }, 60_000, 200);

  await page.goto(stack.ui(`invocations/${caller}`));
  await untilText(tid(page, 'target'), 'Caller/callStubborn');
  await untilCount(tid(page, 'blocked-link'), 1);
  await untilText(tid(page, 'blocked-link'), 'waits for the result of its call to Stubborn/work');
  await untilText(tid(page, 'blocked-root'), 'Stubborn/work');
  await untilText(tid(page, 'blocked-root'), /failing: \d+ attempts failed, last: .*not yet/);
  await tid(page, 'waiting-on').locator(`[data-kind="call"]`).waitFor();
  await untilText(tid(page, 'blocked-action'), 'Resume');
  await shot('chain');

  // Let the callee succeed from now on, then retry it at once through the chain's action.
  assert.equal((await stack.call('Stubborn', 'allow', 'chain')).status, 200);
  await act(page, 'blocked-action');
  // The chain (with the action's "done" note) goes away as soon as the call completes.
  await untilFactStatus(page, 'succeeded', 30_000);
  await untilCount(tid(page, 'blocked-by'), 0);
  const done = (await stack.detail(root)).invocation;
  assert.equal(done.status, 'succeeded');
  assert.ok(done.completed_at < nextRetry, 'the callee finished by its scheduled retry, not by the inline action');
  await shot('finished');
});

uiTest('blocked-by: a call queued behind a failing lock holder', async (page, shot) => {
  // Counter/blk/put(null) throws (retryable) while holding the key's lock; Caller/addTo calls
  // Counter/blk/add, which queues behind it.
  const root = await stack.send('Counter', 'put', null, { key: 'blk' });
  await stack.untilStatus(root, 'backing-off,running');
  const caller = await stack.send('Caller', 'addTo', { key: 'blk', n: 1 });
  const d = await until('a three-link chain', async () => {
    const x = await stack.detail(caller);
    return x.blocked_by.length === 3 && x;
  }, 30_000);
  const callee = d.blocked_by[1].invocation_id;

  await page.goto(stack.ui(`invocations/${caller}`));
  await tid(page, 'blocked-by').waitFor();
  await untilCount(tid(page, 'blocked-link'), 2);
  await untilCount(tid(page, 'blocked-root'), 1);
  const links = tid(page, 'blocked-link');
  await untilText(links.nth(0), 'waits for the result of its call');
  await untilText(links.nth(1), 'queued behind the lock of Counter/blk');
  await untilText(tid(page, 'blocked-root'), /failing: \d+ attempts failed/);
  await untilText(tid(page, 'blocked-root'), 'put');
  assert.ok(await links.nth(1).locator(`a[href$="${callee}"]`).count() === 1, 'the queued callee is not linked');
  await tid(page, 'waiting-on').locator('[data-kind="call"]').waitFor();
  await shot('chain');

  // The root's inline action (resume = retry now while backing off).
  const before = (await stack.detail(root)).invocation.retry_count;
  await act(page, 'blocked-action');
  await untilText(tid(page, 'blocked-action-result'), 'done');
  await until('the root to retry', async () => (await stack.detail(root)).invocation.retry_count > before, 20_000);
  await shot('action-done');

  // Follow the chain to the root and kill it: the call goes through.
  await tid(page, 'blocked-root').locator(`a[href$="${root}"]`).click();
  await untilUrl(page, (u) => u.pathname === `/ui/invocations/${root}`);
  await untilText(tid(page, 'target'), 'Counter/blk/put');
  await act(page, 'action-kill');
  await untilFactStatus(page, 'failed', 20_000);
  await page.goBack();
  await untilUrl(page, (u) => u.pathname === `/ui/invocations/${caller}`);
  await untilFactStatus(page, 'succeeded', 30_000);
  await untilCount(tid(page, 'blocked-by'), 0);
  await shot('unblocked');
});

uiTest('cancel a sleeping invocation', async (page, shot) => {
  const id = await stack.send('Sleeper', 'sleep', { tag: 'cancel', ms: 600_000 });
  await stack.untilStatus(id, 'running,suspended');
  await page.goto(stack.ui(`invocations/${id}`));
  await tid(page, 'waiting-on').locator('[data-kind="sleep"]').waitFor();
  await shot('sleeping');
  await act(page, 'action-cancel');
  await untilText(tid(page, 'notice'), 'Cancellation requested.');
  await untilFactStatus(page, 'failed', 20_000);
  await shot('cancelled');
});

uiTest('purge a completed invocation', async (page, shot) => {
  const r = await stack.call('Greeter', 'greet', 'purge-me');
  assert.equal(r.status, 200);
  await page.goto(stack.ui(`invocations/${r.id}`));
  await untilFactStatus(page, 'succeeded');
  assert.equal(await tid(page, 'action-cancel').count(), 0, 'a completed invocation offers cancel');
  await act(page, 'action-purge');
  await untilText(tid(page, 'notice'), 'was purged');
  await shot('purged');
  const gone = await stack.adminGet(`internal/ui/invocations/${r.id}`);
  assert.equal(gone.status, 404);
});

uiTest('restart as new opens the new invocation, which links back', async (page, shot) => {
  const r = await stack.call('Greeter', 'greet', 'again');
  assert.equal(r.status, 200);
  await page.goto(stack.ui(`invocations/${r.id}`));
  await untilFactStatus(page, 'succeeded');
  await act(page, 'action-restart-as-new');
  const u = await untilUrl(page, (x) => x.pathname.startsWith('/ui/invocations/inv_') && !x.pathname.endsWith(r.id));
  const fresh = decodeURIComponent(u.pathname.split('/').pop());
  await untilText(tid(page, 'target'), 'Greeter/greet');
  await untilFactStatus(page, 'succeeded', 20_000);
  await untilText(tid(page, 'facts'), r.id); // "Restarted from"
  assert.equal((await stack.detail(fresh)).invocation.restarted_from, r.id);
  await shot('restarted');
});

uiTest('restart from a journal entry keeps the entries up to it', async (page, shot) => {
  const r = await stack.call('Runner', 'steps', 'from-here');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { a: 1, b: 1 });
  await page.goto(stack.ui(`invocations/${r.id}`));
  await untilFactStatus(page, 'succeeded');
  await tid(page, 'journal-row').first().waitFor();
  await shot('journal');
  // The first entry named "a" (the run of step a).
  const index = await tid(page, 'journal-row').evaluateAll((rows) => {
    const row = rows.find((tr) => tr.cells[2]?.firstChild?.textContent.trim() === 'a');
    return row ? row.dataset.index : null;
  });
  assert.ok(index !== null, 'no journal entry named a');
  const row = page.locator(`[data-testid="journal-row"][data-index="${index}"]`);
  await row.getByTestId('restart-from').click();
  await row.getByTestId('restart-from-confirm').click();
  const u = await untilUrl(page, (x) => x.pathname.startsWith('/ui/invocations/inv_') && !x.pathname.endsWith(r.id));
  const fresh = decodeURIComponent(u.pathname.split('/').pop());
  await untilFactStatus(page, 'succeeded', 20_000);
  // Step a was kept (its count stays 1), step b ran again (its count is now 2).
  await until('the new output in the journal', async () => {
    const previews = await page.locator('[data-testid="journal-row"] [data-testid="preview"]').allInnerTexts();
    return previews.some((t) => /"a":\s*1/.test(t) && /"b":\s*2/.test(t));
  });
  assert.equal((await stack.detail(fresh)).invocation.restarted_from, r.id);
  await shot('restarted-from-a');
});
