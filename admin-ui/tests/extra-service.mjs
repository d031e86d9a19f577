// A second, tiny Restate TypeScript SDK endpoint for the browser tests of the deployments page
// (admin-ui/tests/admin-pages.test.mjs): one service, UiExtra, whose names clash with nothing
// in tests/services/ts/service.mjs, so registering and removing it through the UI leaves the
// main deployment alone. Uses the SDK installed under tests/services/ts/node_modules.
//
// Usage: node admin-ui/tests/extra-service.mjs --port N

// The TS SDK 1.17 calls `Promise.withResolvers` (Node 22); define it for Node 20.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers() {
    let resolve_;
    let reject;
    const promise = new this((res, rej) => { resolve_ = res; reject = rej; });
    return { promise, resolve: resolve_, reject };
  };
}

const sdk = new URL('../../tests/services/ts/node_modules/@restatedev/restate-sdk/dist/index.js', import.meta.url);
const restate = await import(sdk.href);
const http2 = await import('node:http2');

const i = process.argv.indexOf('--port');
const port = Number(process.argv[i + 1]);
if (i < 0 || !Number.isInteger(port) || port <= 0) throw new Error('usage: extra-service.mjs --port N');

const extra = restate.service({
  name: 'UiExtra',
  handlers: { hello: async (_ctx, name) => `extra says hi to ${name}` },
});
const server = http2.createServer(restate.createEndpointHandler({ services: [extra] }));
server.listen(port, '127.0.0.1', () => console.log(`ui-extra-service listening on 127.0.0.1:${port}`));
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => process.exit(0));
