// A Restate TypeScript SDK service that accepts only signed requests, for Ratchet's request
// identity tests (tests/e2e_identity.rs).
//
// Usage: node identity.mjs --port N --identity-key publickeyv1_… [--identity-key …]
//
// Serves HTTP/2 cleartext on 127.0.0.1:N, like service.mjs, with the endpoint's
// `identityKeys` set: the SDK answers 401 to every discovery or invocation request that is
// not signed (`x-restate-signature-scheme: v1`, `x-restate-jwt-v1`) by one of these keys.
//
// Plain JavaScript on purpose: no build step stands between the SDK and the test.

// The TS SDK 1.17 calls `Promise.withResolvers` (Node 22). Define it before the SDK loads, so
// the service runs on Node 20 too.
if (typeof Promise.withResolvers !== "function") {
  Promise.withResolvers = function withResolvers() {
    let resolve;
    let reject;
    const promise = new this((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

const restate = await import("@restatedev/restate-sdk");
const http2 = await import("node:http2");

const HOST = "127.0.0.1";

function parseArgs(argv) {
  const args = { port: null, identityKeys: [] };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === "--port") {
      args.port = Number(value);
      i++;
    } else if (flag === "--identity-key") {
      args.identityKeys.push(value);
      i++;
    } else {
      throw new Error(`unknown argument '${flag}'; usage: identity.mjs --port N --identity-key K`);
    }
  }
  if (!Number.isInteger(args.port) || args.port <= 0) {
    throw new Error("--port N is required");
  }
  if (args.identityKeys.length === 0) {
    throw new Error("--identity-key publickeyv1_… is required");
  }
  return args;
}

const guarded = restate.service({
  name: "Guarded",
  handlers: {
    greet: async (_ctx, name) => `Hello ${name}, signed!`,
  },
});

// Keyed: its requests carry the key as the token's `sub` claim.
const guardedCounter = restate.object({
  name: "GuardedCounter",
  handlers: {
    add: async (ctx, delta) => {
      const next = ((await ctx.get("count")) ?? 0) + delta;
      ctx.set("count", next);
      return next;
    },
  },
});

const args = parseArgs(process.argv.slice(2));
const handler = restate.createEndpointHandler({
  services: [guarded, guardedCounter],
  identityKeys: args.identityKeys,
});

// What `endpoint().listen(port)` does, but bound to loopback only.
const server = http2.createServer(handler);
server.listen(args.port, HOST, () => {
  console.log(`ts-identity-service listening on ${HOST}:${args.port}`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    console.log(`ts-identity-service: ${signal}, exiting`);
    process.exit(0);
  });
}
