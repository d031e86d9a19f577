// Browser tests of the keyed pages: the state of an object key (view, edit, and an edit that
// loses a version race against a change made behind the page's back: the page says so and
// nothing is overwritten), an object's lock holder and inbox, and a workflow run by key with
// its promise.
import assert from 'node:assert/strict';
import { suite, until, untilAttr, untilCount, untilText, untilUrl, tid } from './harness.mjs';

const { stack, uiTest } = suite('state');

const bytes = (s) => Array.from(Buffer.from(s, 'utf8'));
const entry = (page, name) => page.locator(`[data-testid="state-entry"][data-name="${name}"]`);

async function counterValue(key) {
  const r = await stack.call('Counter', 'get', undefined, { key });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

/** Opens the editor and makes `count` editable, answering its textarea. */
async function editCount(page) {
  await tid(page, 'edit-state').click();
  const row = page.locator('[data-testid="edit-row"][data-name="count"]');
  await row.getByTestId('edit-entry').click();
  const area = row.getByTestId('edit-value');
  await area.waitFor();
  return area;
}

uiTest('state: view, then edit a value and add an entry', async (page, shot) => {
  assert.equal((await stack.call('Counter', 'add', 5, { key: 'race' })).status, 200);
  await page.goto(stack.ui('state'));
  await page.locator('[data-testid="state-service-row"]', { hasText: 'LazyCounter' }).waitFor();
  await page.locator('[data-testid="state-service-row"]').getByRole('link', { name: 'Counter', exact: true }).click();
  await untilUrl(page, (u) => u.pathname === '/ui/state/Counter');
  const keyRow = page.locator('[data-testid="state-key-row"][data-key="race"]');
  await keyRow.waitFor();
  await keyRow.getByRole('link', { name: 'race' }).click();
  await untilUrl(page, (u) => u.pathname === '/ui/state/Counter/race');
  await untilText(entry(page, 'count').getByTestId('entry-preview'), '5');
  await shot('view');

  const area = await editCount(page);
  await area.fill('11');
  await tid(page, 'new-name').fill('note');
  await tid(page, 'new-value').fill('{"x": 1}');
  await tid(page, 'add-entry').click();
  await page.locator('[data-testid="edit-row"][data-name="note"]').waitFor();
  await tid(page, 'save-state').click();
  await untilAttr(tid(page, 'save-outcome'), 'data-outcome', 'applied');
  await untilText(entry(page, 'count').getByTestId('entry-preview'), '11');
  await untilText(entry(page, 'note').getByTestId('entry-preview'), '"x": 1');
  assert.equal(await counterValue('race'), 11);
  const note = await stack.call('Counter', 'read', 'note', { key: 'race' });
  assert.deepEqual(note.json, { x: 1 });
  await shot('edited');
});

/** Starts an edit of Counter/race (count := 7), changes the state behind the page's back to
 *  `behind`, saves, and checks that the page says so and the newer state stays. */
async function loseRace(page, shot, behind) {
  await page.goto(stack.ui('state/Counter/race'));
  await entry(page, 'count').waitFor();
  const area = await editCount(page);
  await area.fill('7');
  const newState = Object.fromEntries(Object.entries(behind).map(([k, v]) => [k, bytes(v)]));
  const r = await stack.adminPost('services/Counter/state', { object_key: 'race', new_state: newState });
  assert.ok(r.status >= 200 && r.status < 300, `state edit behind the page: ${r.status} ${r.text}`);
  await until('the edit behind the page to apply', async () => (await counterValue('race')) === Number(behind.count));
  await tid(page, 'stale').waitFor();
  await shot('stale');
  await tid(page, 'save-state').click();
  await untilAttr(tid(page, 'save-outcome'), 'data-outcome', 'lost');
  await untilText(tid(page, 'save-outcome'), 'nothing saved');
  await untilText(entry(page, 'count').getByTestId('entry-preview'), behind.count);
  await untilCount(tid(page, 'state-entry'), Object.keys(behind).length);
  await shot('lost');
  await page.waitForTimeout(500);
  assert.equal(await counterValue('race'), Number(behind.count), 'the stale edit overwrote the newer state');
}

uiTest('state: an edit that loses a version race overwrites nothing', async (page, shot) => {
  await loseRace(page, shot, { count: '42', note: '{"x":1}' });
});

uiTest('state: a lost race where an entry kept by the edit was removed behind it', async (page, shot) => {
  // The edit keeps `note` as it is; the change behind the page removes it.
  await loseRace(page, shot, { count: '43' });
});

uiTest('object: the lock holder and the inbox behind it, live', async (page, shot) => {
  const hold = await stack.send('Counter', 'hold', 600_000, { key: 'lk' });
  await stack.untilStatus(hold, 'running,suspended');
  const q1 = await stack.send('Counter', 'add', 1, { key: 'lk' });
  const q2 = await stack.send('Counter', 'add', 1, { key: 'lk' });
  await page.goto(stack.ui('objects/Counter/lk'));
  await untilText(tid(page, 'lock-holder'), hold);
  await untilCount(tid(page, 'inbox-row'), 2);
  const rows = await tid(page, 'inbox-row').allInnerTexts();
  assert.ok(rows[0].includes(q1) && rows[1].includes(q2), `inbox order: ${rows.join(' | ')}`);
  await untilText(tid(page, 'inbox-total'), '2 queued');
  await shot('locked');

  const killed = await stack.adminReq('PATCH', `invocations/${hold}/kill`);
  assert.ok(killed.status < 300, `kill: ${killed.status} ${killed.text}`);
  await tid(page, 'lock-free').waitFor({ timeout: 30_000 });
  await tid(page, 'inbox-empty').waitFor();
  await shot('free');
  await tid(page, 'link-state').click();
  await untilUrl(page, (u) => u.pathname === '/ui/state/Counter/lk');
  await untilText(entry(page, 'count').getByTestId('entry-preview'), '2');
});

uiTest('workflows: a run by key, its promise and state', async (page, shot) => {
  const r = await stack.call('Approval', 'run', 'input-1', { key: 'wf-1', send: true });
  assert.ok(r.status === 202 || r.status === 200, `${r.status} ${r.text}`);
  await stack.untilStatus(r.id, 'running,suspended');

  await page.goto(stack.ui('workflows'));
  await tid(page, 'workflow-key').fill('wf-1');
  await tid(page, 'workflow-picker').getByRole('button', { name: 'Open' }).click();
  await untilUrl(page, (u) => u.searchParams.get('key') === 'wf-1' && u.searchParams.get('service') === 'Approval');
  await untilText(tid(page, 'run-key'), 'wf-1');
  await untilText(tid(page, 'run-link'), r.id);
  await untilText(tid(page, 'run').getByTestId('status'), /running|suspended/);
  await shot('waiting');

  const approved = await stack.call('Approval', 'approve', 'yes', { key: 'wf-1' });
  assert.equal(approved.status, 200, approved.text);
  await untilText(tid(page, 'run').getByTestId('status'), 'succeeded', 30_000);
  const promise = page.locator('[data-testid="promise-row"][data-name="approval"]');
  await untilText(promise, 'completed');
  await untilText(promise, 'yes');
  await shot('approved');

  await page.goto(stack.ui('workflows?service=Approval'));
  const run = page.locator('[data-testid="run-row"][data-key="wf-1"]');
  await untilText(run, 'succeeded');
  await page.goto(stack.ui('state/Approval/wf-1'));
  await untilText(entry(page, 'status').getByTestId('entry-preview'), 'decided');
});
