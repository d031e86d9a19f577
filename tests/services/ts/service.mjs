// Restate TypeScript SDK test services for Ratchet's end-to-end tests (tests/e2e_sdk.rs).
//
// Usage: node service.mjs --port N [--stats-port M] [--request-response]
//
// With --request-response the endpoint reports (and speaks) request-response mode: the
// server sends the journal, closes the request, and the SDK suspends whenever it would wait.
//
// Serves the SDK endpoint as HTTP/2 cleartext (what `endpoint().listen()` does) on
// 127.0.0.1:N, and a plain HTTP/1 server on 127.0.0.1:M whose `GET /stats` returns the
// in-process side-effect counters as JSON, so a test can check that an effect ran exactly
// once even when the server under test was killed and restarted in between.
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
const http = await import("node:http");
const http2 = await import("node:http2");

const HOST = "127.0.0.1";

function parseArgs(argv) {
  const args = { port: null, statsPort: null, requestResponse: false, http1: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === "--port") {
      args.port = Number(value);
      i++;
    } else if (flag === "--stats-port") {
      args.statsPort = Number(value);
      i++;
    } else if (flag === "--request-response") {
      args.requestResponse = true;
    } else if (flag === "--http1") {
      // HTTP/1.1 cannot stream both ways: request-response it is.
      args.http1 = true;
      args.requestResponse = true;
    } else {
      throw new Error(`unknown argument '${flag}'; usage: service.mjs --port N [--stats-port M] [--request-response] [--http1]`);
    }
  }
  if (!Number.isInteger(args.port) || args.port <= 0) {
    throw new Error("--port N is required");
  }
  return args;
}

// Side-effect counters, keyed by name. Only ever incremented; read through GET /stats.
const stats = new Map();
function bump(name) {
  const next = (stats.get(name) ?? 0) + 1;
  stats.set(name, next);
  return next;
}

const SLOW_ADD_SLEEP_MS = 500;

const greeter = restate.service({
  name: "Greeter",
  handlers: {
    greet: async (_ctx, name) => `Hello ${name}!`,
    fail: async (_ctx) => {
      throw new restate.TerminalError("bad input", { errorCode: 418 });
    },
  },
});

// The same state handlers, once with eager state (Counter) and once with lazy state.
function counterHandlers() {
  return {
    add: async (ctx, n) => {
      const count = ((await ctx.get("count")) ?? 0) + n;
      ctx.set("count", count);
      return count;
    },
    // Read, sleep, write: concurrent calls on one key only come out exact if the server runs
    // exclusive handlers one at a time per key.
    slowAdd: async (ctx, n) => {
      const before = (await ctx.get("count")) ?? 0;
      await ctx.sleep(SLOW_ADD_SLEEP_MS);
      const count = before + n;
      ctx.set("count", count);
      return count;
    },
    // Holds the key (an exclusive handler in flight) for `ms` milliseconds.
    hold: async (ctx, ms) => {
      bump(`hold:${ctx.key}`);
      await ctx.sleep(ms);
      return "held";
    },
    put: async (ctx, entry) => {
      ctx.set(entry.name, entry.value);
    },
    get: restate.handlers.object.shared(async (ctx) => (await ctx.get("count")) ?? 0),
    read: restate.handlers.object.shared(async (ctx, name) => (await ctx.get(name)) ?? null),
    keys: restate.handlers.object.shared(async (ctx) => (await ctx.stateKeys()).sort()),
    clear: async (ctx, name) => {
      ctx.clear(name ?? "count");
    },
    clearAll: async (ctx) => {
      ctx.clearAll();
    },
  };
}

const counter = restate.object({ name: "Counter", handlers: counterHandlers() });

const lazyCounter = restate.object({
  name: "LazyCounter",
  handlers: counterHandlers(),
  options: { enableLazyState: true },
});

const runner = restate.service({
  name: "Runner",
  handlers: {
    // The effect runs inside ctx.run: once per invocation, whatever retries or replays happen.
    once: async (ctx, tag) => {
      bump(`attempt:${tag}`);
      const first = await ctx.run("effect", () => bump(`run:${tag}`));
      return first;
    },
    // Two steps, each counted where it runs: a restart-as-new from a journal prefix that
    // holds step `a` runs only step `b` again.
    steps: async (ctx, tag) => {
      const a = await ctx.run("a", () => bump(`steps-a:${tag}`));
      const b = await ctx.run("b", () => bump(`steps-b:${tag}`));
      return { a, b };
    },
  },
});

const sleeper = restate.service({
  name: "Sleeper",
  handlers: {
    // Durable sleep; the effect after it (in ctx.run) must run exactly once, also when the
    // server is killed during the sleep and the invocation resumes after a restart.
    sleep: async (ctx, req) => {
      bump(`sleep-attempt:${req.tag}`);
      await ctx.run("before", () => bump(`sleep-before:${req.tag}`));
      await ctx.sleep(req.ms);
      await ctx.run("after", () => bump(`sleep-after:${req.tag}`));
      return `slept ${req.ms} ms`;
    },
  },
});

const caller = restate.service({
  name: "Caller",
  handlers: {
    greet: async (ctx, name) => ctx.serviceClient(greeter).greet(name),
    addTo: async (ctx, req) => ctx.objectClient(counter, req.key).add(req.n),
    sendAdd: async (ctx, req) => {
      ctx.objectSendClient(counter, req.key).add(req.n);
      return "sent";
    },
    // Waits on a callee that keeps failing until `Stubborn/allow(tag)`: the web UI's
    // blocked-by chain follows it down to the callee.
    // (`stubborn` is defined below; it exists by the time a handler runs.)
    callStubborn: async (ctx, tag) => ctx.serviceClient(stubborn).work(tag),
    // The callee's terminal error propagates: this invocation fails with it too.
    callFail: async (ctx) => ctx.serviceClient(greeter).fail(),
    // The callee's terminal error as the caller sees it.
    callFailCaught: async (ctx) => {
      try {
        await ctx.serviceClient(greeter).fail();
        return { caught: false };
      } catch (e) {
        if (e instanceof restate.TerminalError) {
          return { caught: true, code: e.code, message: e.message };
        }
        throw e;
      }
    },
  },
});

// Records the order in which pushes arrive: emission order must survive delivery.
const seq = restate.object({
  name: "Seq",
  handlers: {
    push: async (ctx, n) => {
      const list = (await ctx.get("list")) ?? [];
      list.push(n);
      ctx.set("list", list);
    },
    list: restate.handlers.object.shared(async (ctx) => (await ctx.get("list")) ?? []),
    // A state key over the server's key limit: the invocation must fail, nothing else.
    putBigKey: async (ctx) => {
      ctx.set("x".repeat(65 * 1024), 1);
      return "unreachable";
    },
    // n journal entries: past the server's journal limit the invocation must fail.
    manySets: async (ctx, n) => {
      for (let i = 0; i < n; i++) {
        ctx.set(`k${i}`, i);
      }
      return n;
    },
    // A value of `kib` KiB under `name`.
    putLarge: async (ctx, req) => {
      ctx.set(req.name, "x".repeat(req.kib * 1024));
    },
    // The length of the value under `name` (null when absent).
    lengthOf: restate.handlers.object.shared(async (ctx, name) => {
      const v = await ctx.get(name);
      return v === null ? null : v.length;
    }),
  },
});

let busyNow = 0;
let busyBig = 0;
const core = restate.service({
  name: "Core",
  handlers: {
    // Sends push(0), push(1), … push(k-1) to Seq/key, in this order.
    sendSeq: async (ctx, req) => {
      for (let i = 0; i < req.k; i++) {
        ctx.objectSendClient(seq, req.key).push(i);
      }
      return "sent";
    },
    // Holds its attempt for `ms` (not a durable sleep) and records the most attempts that
    // ran at once.
    spin: async (_ctx, ms) => {
      busyNow += 1;
      const max = Math.max(stats.get("spin:max") ?? 0, busyNow);
      stats.set("spin:max", max);
      bump("spin:started");
      await new Promise((r) => setTimeout(r, ms));
      busyNow -= 1;
      return "spun";
    },
    // As spin, with a big input (so a big journal): how many of these the server runs at
    // once is bounded by its memory budget, not only by the in-flight limit.
    spinBig: async (_ctx, req) => {
      busyBig += 1;
      stats.set("spinBig:max", Math.max(stats.get("spinBig:max") ?? 0, busyBig));
      bump("spinBig:started");
      await new Promise((r) => setTimeout(r, req.ms));
      busyBig -= 1;
      bump("spinBig:done");
      return req.pad.length;
    },
    // The request headers named in the input, as the handler sees them (null when absent).
    headers: async (ctx, names) =>
      Object.fromEntries(names.map((n) => [n, ctx.request().headers.get(n) ?? null])),
  },
});

// Awakeables, signals, cancel, kill and attach (tests/e2e_model.rs). Ids the tests need are
// published into the stats map (inside ctx.run, so once per invocation).
function publish(ctx, name, value) {
  return ctx.run(`publish ${name}`, () => {
    stats.set(name, value);
  });
}

async function outcomeOf(promise) {
  try {
    return { value: await promise };
  } catch (e) {
    if (e instanceof restate.TerminalError) {
      return { error: e.message, code: e.code };
    }
    throw e;
  }
}

const signals = restate.service({
  name: "Signals",
  handlers: {
    // Creates an awakeable, publishes its id as `awk:<tag>`, returns how it was completed.
    awaitAwakeable: async (ctx, tag) => {
      const { id, promise } = ctx.awakeable();
      await publish(ctx, `awk:${tag}`, id);
      const result = await outcomeOf(promise);
      bump(`awk-done:${tag}`);
      return result;
    },
    resolve: async (ctx, req) => {
      ctx.resolveAwakeable(req.id, req.value);
      return "resolved";
    },
    reject: async (ctx, req) => {
      ctx.rejectAwakeable(req.id, req.reason);
      return "rejected";
    },
    // Publishes its own invocation id as `sig:<tag>`, then waits for the named signal "go".
    awaitSignal: async (ctx, tag) => {
      await publish(ctx, `sig:${tag}`, ctx.request().id);
      return outcomeOf(ctx.signal("go"));
    },
    sendSignal: async (ctx, req) => {
      ctx.invocation(req.id).signal("go").resolve(req.value);
      return "sent";
    },
    // Calls Sleeper.sleep and publishes the child's invocation id as `child:<tag>`.
    callSleep: async (ctx, req) => {
      const child = ctx.serviceClient(sleeper).sleep({ tag: req.tag, ms: req.ms });
      await publish(ctx, `child:${req.tag}`, await child.invocationId);
      return child;
    },
    attachTo: async (ctx, id) => outcomeOf(ctx.invocation(id).attach()),
    // A call into another SDK's service by name (the Python test service's PyGreeter).
    callPy: async (ctx, name) =>
      ctx.genericCall({
        service: "PyGreeter",
        method: "greet",
        parameter: name,
        inputSerde: restate.serde.json,
        outputSerde: restate.serde.json,
      }),
    cancelIt: async (ctx, id) => {
      ctx.invocation(id).cancel();
      return "cancelled";
    },
    // Calls into the Rust test service by name (tests/e2e_rust_model.rs).
    callRust: async (ctx, name) =>
      ctx.genericCall({
        service: "RustGreeter",
        method: "greet",
        parameter: name,
        inputSerde: restate.serde.json,
        outputSerde: restate.serde.json,
      }),
    callRustFail: async (ctx) =>
      outcomeOf(
        ctx.genericCall({
          service: "RustGreeter",
          method: "fail",
          parameter: new Uint8Array(0),
          outputSerde: restate.serde.json,
        }),
      ),
    addRust: async (ctx, req) =>
      ctx.genericCall({
        service: "RustCounter",
        key: req.key,
        method: "add",
        parameter: req.n,
        inputSerde: restate.serde.json,
        outputSerde: restate.serde.json,
      }),
    // Records one execution per invocation: `stamp:<tag>` counts them, `stamp-at:<tag>` is
    // the wall-clock time (ms) of the last one. The target of delayed sends.
    stamp: async (ctx, tag) => {
      await ctx.run("stamp", () => {
        bump(`stamp:${tag}`);
        stats.set(`stamp-at:${tag}`, Date.now());
      });
      return tag;
    },
    // Sends stamp(tag) after `ms`; returns the new invocation's id (tests/e2e_durability.rs).
    sendLater: async (ctx, req) => {
      const opts = restate.rpc.sendOpts({ delay: req.ms });
      return ctx.serviceSendClient(signals).stamp(req.tag, opts).invocationId;
    },
    // Attaches to the workflow Approval/<key> from a handler. The SDK attaches by invocation id
    // only: a send to the workflow's run handler is de-duplicated into the existing workflow
    // and answers its invocation id, which the handler then attaches to.
    attachWorkflow: async (ctx, key) => {
      const id = await ctx.workflowSendClient(approval, key).run("attach").invocationId;
      return { id, outcome: await outcomeOf(ctx.invocation(id).attach()) };
    },
    // Calls the workflow's run handler again from a handler.
    callWorkflow: async (ctx, key) => outcomeOf(ctx.workflowClient(approval, key).run("again")),
  },
});

// A workflow: `run` waits for the promise "approval" that a shared handler resolves.
const approval = restate.workflow({
  name: "Approval",
  handlers: {
    run: async (ctx, req) => {
      bump(`wf-run:${ctx.key}`);
      ctx.set("status", "waiting");
      const decision = await outcomeOf(ctx.promise("approval").get());
      ctx.set("status", "decided");
      await ctx.run("after", () => bump(`wf-after:${ctx.key}`));
      return { input: req, decision };
    },
    approve: async (ctx, value) => {
      try {
        await ctx.promise("approval").resolve(value);
        return "approved";
      } catch (e) {
        if (e instanceof restate.TerminalError) {
          return { error: e.message, code: e.code };
        }
        throw e;
      }
    },
    deny: async (ctx, reason) => {
      await ctx.promise("approval").reject(reason);
      return "denied";
    },
    peek: async (ctx) => (await ctx.promise("approval").peek()) ?? null,
    status: async (ctx) => (await ctx.get("status")) ?? null,
  },
});

// Counts executions per idempotency test tag.
const idem = restate.service({
  name: "Idem",
  handlers: {
    once: async (ctx, tag) => {
      const n = await ctx.run("count", () => bump(`idem:${tag}`));
      return { tag, n };
    },
    // The idempotency key this invocation was made with, as the SDK sees it.
    key: async (ctx) => ctx.request().idempotencyKey ?? null,
    // Calls Idem.key with an idempotency key from a handler.
    callKey: async (ctx, k) =>
      ctx.serviceClient(idem).key(undefined, restate.rpc.opts({ idempotencyKey: k })),
    // Calls Idem.once twice with one idempotency key from a handler.
    callTwice: async (ctx, tag) => {
      const opts = restate.rpc.opts({ idempotencyKey: `k-${tag}` });
      const a = await ctx.serviceClient(idem).once(tag, opts);
      const b = await ctx.serviceClient(idem).once(tag, opts);
      return [a, b];
    },
  },
});

// Kept for one second after completion (journal and idempotency retention).
const brief = restate.service({
  name: "Brief",
  handlers: {
    once: async (ctx, tag) => ({ tag, n: await ctx.run("count", () => bump(`brief:${tag}`)) }),
  },
  options: { journalRetention: 1000, idempotencyRetention: 1000 },
});

// Keeps no journal after completion (journalRetention 0): an idempotent request's result is
// kept, but it cannot be restarted as new.
const forgetful = restate.service({
  name: "Forgetful",
  handlers: { once: async (_ctx, tag) => tag },
  options: { journalRetention: 0 },
});

// Fails with a retryable error until `allow(tag)` was called. Flaky pauses after two
// attempts (its own retry policy); Stubborn follows the server's default policy.
const allowed = new Set();
function failingHandlers() {
  return {
    work: async (_ctx, tag) => {
      const n = bump(`attempts:${tag}`);
      if (!allowed.has(tag)) {
        throw new Error(`not yet (attempt ${n})`);
      }
      return `done after ${n} attempts`;
    },
    allow: async (_ctx, tag) => {
      allowed.add(tag);
      return "allowed";
    },
  };
}
const flaky = restate.service({
  name: "Flaky",
  handlers: failingHandlers(),
  options: { retryPolicy: { maxAttempts: 2, onMaxAttempts: "pause", initialInterval: 10 } },
});
const stubborn = restate.service({ name: "Stubborn", handlers: failingHandlers() });

const args = parseArgs(process.argv.slice(2));

const services = [
  greeter,
  counter,
  lazyCounter,
  runner,
  sleeper,
  caller,
  seq,
  core,
  signals,
  approval,
  idem,
  brief,
  forgetful,
  flaky,
  stubborn,
];
const handler = args.requestResponse
  ? restate.createEndpointHandler({ services, bidirectional: false })
  : restate.createEndpointHandler({ services });

// What `endpoint().listen(port)` does, but bound to loopback only.
const server = args.http1 ? http.createServer(handler) : http2.createServer(handler);
server.listen(args.port, HOST, () => {
  console.log(`ts-test-service listening on ${HOST}:${args.port}`);
});

if (args.statsPort !== null) {
  const statsServer = http.createServer((req, res) => {
    if (req.method === "GET" && req.url === "/stats") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(Object.fromEntries(stats)));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  statsServer.listen(args.statsPort, HOST, () => {
    console.log(`ts-test-service stats on ${HOST}:${args.statsPort}`);
  });
}

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    console.log(`ts-test-service: ${signal}, exiting`);
    process.exit(0);
  });
}
process.on("exit", (code) => console.log(`ts-test-service: exit ${code}`));
