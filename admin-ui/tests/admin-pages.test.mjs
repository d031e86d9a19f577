// Browser tests of the admin pages: deployments (register with a bad address shows the
// server's error and adds nothing; register and remove a second deployment), the service
// list and its filter, a service's
// configuration form (a bad value shows the server's error and changes nothing; a good one
// is saved), the playground (call, send with an idempotency key, the link to the result, a
// malformed JSON input sends nothing) and the SQL console (rows; the server's error).
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { suite, until, untilCount, untilText, untilUrl, tid } from './harness.mjs';

const { stack, uiTest } = suite('admin', {
  seed: async (s) => {
    for (const name of ['sql-1', 'sql-2', 'sql-3']) {
      const r = await s.call('Greeter', 'greet', name);
      assert.equal(r.status, 200, r.text);
    }
  },
});

/** A loopback port nothing listens on. */
function closedPort() {
  return new Promise((res) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

uiTest('deployments: a bad address shows the server error; register and remove another', async (page, shot) => {
  await page.goto(stack.ui('deployments'));
  await untilCount(tid(page, 'deployment-row'), 1);
  const form = tid(page, 'register-form');

  const bad = `http://127.0.0.1:${await closedPort()}`;
  const direct = await stack.adminPost('deployments', { uri: bad });
  assert.ok(direct.status >= 400, `registering ${bad} answered ${direct.status}`);
  await tid(page, 'register-uri').fill(bad);
  await tid(page, 'register-submit').click();
  const err = form.getByTestId('error');
  await untilText(err, String(direct.status));
  // The server's own message, not a made-up one (its first words: the rest names the port).
  await untilText(err, direct.json.message.slice(0, 40));
  await shot('bad-uri');
  assert.equal(await tid(page, 'deployment-row').count(), 1, 'a failed registration added a row');
  assert.equal((await stack.adminGet('deployments')).json.deployments.length, 1);

  const extra = await stack.startExtraService();
  await tid(page, 'register-uri').fill(extra);
  await tid(page, 'register-submit').click();
  await untilText(tid(page, 'discovery-result'), 'Registered a new deployment.');
  await untilText(tid(page, 'discovered-service'), 'UiExtra');
  await untilCount(tid(page, 'deployment-row'), 2);
  assert.equal(await form.getByTestId('error').count(), 0);
  await shot('registered');
  const deps = (await stack.adminGet('deployments')).json.deployments;
  const added = deps.find((d) => (d.uri || '').startsWith(extra));
  assert.ok(added, `no deployment at ${extra}: ${JSON.stringify(deps)}`);
  assert.equal((await stack.adminGet('services/UiExtra')).status, 200);

  const row = page.locator(`[data-testid="deployment-row"][data-id="${added.id}"]`);
  await row.getByTestId('remove').click();
  await row.getByTestId('remove-yes').click();
  await untilText(tid(page, 'deleted'), added.id);
  await untilCount(tid(page, 'deployment-row'), 1);
  await shot('removed');
  assert.equal((await stack.adminGet('deployments')).json.deployments.length, 1);
  assert.equal((await stack.adminGet('services/Greeter')).status, 200, 'removing UiExtra removed Greeter');
});

uiTest('services: the list, its filter and the way to a service', async (page, shot) => {
  const all = (await stack.adminGet('services')).json.services.map((x) => x.name).sort();
  await page.goto(stack.ui('services'));
  await untilCount(tid(page, 'service-row'), all.length);
  const names = await tid(page, 'service-row').evaluateAll((rows) => rows.map((r) => r.dataset.name));
  assert.deepEqual(names, all);
  await page.keyboard.press('/');
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'services-filter');
  // The filter matches service and handler names: Caller has a handler callStubborn.
  await page.keyboard.type('Stubb');
  await untilCount(tid(page, 'service-row'), 2);
  assert.deepEqual(await tid(page, 'service-row').evaluateAll((rows) => rows.map((r) => r.dataset.name)), ['Caller', 'Stubborn']);
  await shot('filtered');
  await tid(page, 'service-row').getByRole('link', { name: 'Stubborn', exact: true }).click();
  await untilUrl(page, (u) => u.pathname === '/ui/services/Stubborn');
  await untilText(tid(page, 'service-name'), 'Stubborn');
  await untilText(tid(page, 'service-type'), 'service');
  const handlers = await tid(page, 'handler-row').evaluateAll((rows) => rows.map((r) => r.dataset.name));
  assert.deepEqual(handlers, ['allow', 'work']);
});

uiTest('service configuration: a bad value shows the server error, a good one is saved', async (page, shot) => {
  const original = (await stack.adminGet('services/Greeter')).json;
  await page.goto(stack.ui('services/Greeter'));
  await untilText(tid(page, 'service-name'), 'Greeter');
  await untilCount(tid(page, 'handler-row'), 2);
  const input = tid(page, 'cfg-idempotency_retention');
  const form = tid(page, 'config-form');

  await input.fill('5 parsecs');
  await tid(page, 'cfg-save').click();
  await untilText(form.getByTestId('error'), /Error 4\d\d/);
  await shot('bad-value');
  const after = (await stack.adminGet('services/Greeter')).json;
  assert.equal(after.idempotency_retention, original.idempotency_retention, 'a rejected value was stored');
  // What the page shows is the server's own message.
  const direct = await stack.adminReq('PATCH', 'services/Greeter', { idempotency_retention: '5 parsecs' });
  assert.ok(direct.status >= 400 && direct.status < 500, `PATCH answered ${direct.status}`);
  await untilText(form.getByTestId('error'), direct.json.message);

  await input.fill('2h');
  await tid(page, 'cfg-save').click();
  await untilText(tid(page, 'cfg-saved'), 'idempotency_retention = 2h');
  assert.equal(await form.getByTestId('error').count(), 0);
  const saved = (await stack.adminGet('services/Greeter')).json.idempotency_retention;
  assert.ok(/^(2h|PT2H|7200s?)$/.test(String(saved)), `stored idempotency_retention: ${saved}`);
  await page.reload();
  await until('the saved value in the form', async () => (await tid(page, 'cfg-idempotency_retention').inputValue()) === String(saved));
  await shot('saved');
});

uiTest('playground: call shows the answer and links to the invocation', async (page, shot) => {
  await page.goto(stack.ui('playground/Greeter/greet'));
  await tid(page, 'pg-input').fill('"Ada"');
  await tid(page, 'pg-submit').click();
  await untilText(tid(page, 'pg-status'), '200');
  await untilText(tid(page, 'pg-body'), 'Hello Ada!');
  const link = tid(page, 'pg-invocation');
  const id = (await link.innerText()).trim();
  assert.match(id, /^inv_/);
  await shot('called');
  await link.click();
  await untilUrl(page, (u) => u.pathname === `/ui/invocations/${id}`);
  await untilText(tid(page, 'target'), 'Greeter/greet');
  await untilText(tid(page, 'facts').getByTestId('status'), 'succeeded');
});

uiTest('playground: send with an idempotency key answers the same invocation twice', async (page, shot) => {
  await page.goto(stack.ui('playground/Greeter/greet'));
  await tid(page, 'pg-input').fill('"Bob"');
  await tid(page, 'pg-mode-send').check();
  await tid(page, 'pg-idem').fill('ui-idem-1');
  await tid(page, 'pg-submit').click();
  await untilText(tid(page, 'pg-status'), /^20[02]/);
  const first = (await tid(page, 'pg-invocation').innerText()).trim();
  assert.match(first, /^inv_/);
  await shot('sent');

  await tid(page, 'pg-submit').click();
  await until('the second answer', async () => {
    const t = await tid(page, 'pg-body').innerText({ timeout: 1000 });
    return /PreviouslyAccepted/.test(t);
  });
  assert.equal((await tid(page, 'pg-invocation').innerText()).trim(), first, 'the same key gave another invocation');
  await shot('sent-again');

  await tid(page, 'pg-invocation').click();
  await untilUrl(page, (u) => u.pathname === `/ui/invocations/${first}`);
  await untilText(tid(page, 'facts'), 'ui-idem-1');
  await untilText(tid(page, 'facts').getByTestId('status'), 'succeeded');
  const list = await stack.adminGet('internal/ui/invocations?idempotency_key=ui-idem-1');
  assert.deepEqual(list.json.items.map((x) => x.id), [first]);
});

uiTest('playground: malformed JSON input shows a message and sends nothing', async (page, shot) => {
  const toIngress = [];
  page.on('request', (req) => { if (req.url().startsWith(stack.ingress)) toIngress.push(req.url()); });
  await page.goto(stack.ui('playground/Greeter/greet'));
  await tid(page, 'pg-input').fill('{"name": ');
  await untilText(tid(page, 'json-error'), 'Malformed JSON');
  await tid(page, 'pg-submit').click();
  await untilText(tid(page, 'playground-form').getByTestId('error'), 'Malformed JSON');
  await page.waitForTimeout(500);
  assert.deepEqual(toIngress, [], 'a malformed input was sent');
  assert.equal(await tid(page, 'pg-result').count(), 0);
  await shot('malformed');
});

uiTest('SQL console: a query shows its rows; malformed SQL shows the server error', async (page, shot) => {
  const q = "SELECT id, target FROM sys_invocation WHERE target = 'Greeter/greet' ORDER BY id";
  const want = await stack.sql(q);
  assert.ok(want.length >= 3);
  await page.goto(stack.ui('sql'));
  await tid(page, 'sql-input').fill(q);
  await tid(page, 'sql-run').click();
  await untilText(tid(page, 'sql-meta'), `${want.length} rows`);
  const cells = await tid(page, 'sql-result').locator('tbody tr td:first-child').allInnerTexts();
  assert.deepEqual(cells, want.map((r) => r.id));
  await shot('rows');

  const bad = 'SELEC nonsense FROM';
  const direct = await stack.adminPost('query', { query: bad });
  assert.ok(direct.status >= 400, `malformed SQL answered ${direct.status}`);
  const message = direct.json?.message ?? direct.text;
  await tid(page, 'sql-input').fill(bad);
  await tid(page, 'sql-run').click();
  await untilText(tid(page, 'error'), String(direct.status));
  await untilText(tid(page, 'error'), message.slice(0, 60));
  assert.equal(await tid(page, 'sql-result').count(), 0, 'the old rows stayed next to the error');
  await shot('error');
});
