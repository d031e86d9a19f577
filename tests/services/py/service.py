"""Restate Python SDK test services for Ratchet's end-to-end tests (tests/e2e_python.rs).

Served by hypercorn over HTTP/2 cleartext on 127.0.0.1 (see tests/support):
    hypercorn --bind 127.0.0.1:PORT service:app
Its services call the TypeScript test service's handlers and the other way round, and use
state, ctx.run, sleep, awakeables and workflows with promises.
"""

from datetime import timedelta

import restate
from restate import Context, ObjectContext, Service, VirtualObject, Workflow, WorkflowContext
from restate import WorkflowSharedContext

greeter = Service("PyGreeter")


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    return f"Hello {name} from Python!"


@greeter.handler()
async def fail(ctx: Context) -> str:
    raise restate.TerminalError("python says no", status_code=418)


@greeter.handler()
async def call_ts(ctx: Context, name: str) -> str:
    # A call into the TypeScript SDK's Greeter, JSON in and out.
    out = await ctx.generic_call("Greeter", "greet", arg=f'"{name}"'.encode())
    return "ts said: " + out.decode()


@greeter.handler()
async def steps(ctx: Context, n: int) -> list:
    out = []
    for i in range(n):
        out.append(await ctx.run_typed(f"step {i}", lambda i=i: i * i))
    await ctx.sleep(timedelta(milliseconds=100))
    return out


@greeter.handler()
async def await_awakeable(ctx: Context, tag: str) -> str:
    name, promise = ctx.awakeable(type_hint=str)
    # Publish the id where the test can read it: in an object's state.
    ctx.object_send(set_value, key="awakeables", arg={"name": tag, "value": name})
    return await promise


counter = VirtualObject("PyCounter")


@counter.handler()
async def add(ctx: ObjectContext, n: int) -> int:
    count = (await ctx.get("count", type_hint=int)) or 0
    ctx.set("count", count + n)
    return count + n


@counter.handler()
async def set_value(ctx: ObjectContext, entry: dict) -> None:
    ctx.set(entry["name"], entry["value"])


@counter.handler(kind="shared")
async def get_value(ctx: ObjectContext, name: str) -> str | None:
    return await ctx.get(name, type_hint=str)


approval = Workflow("PyApproval")


@approval.main()
async def run(ctx: WorkflowContext, req: str) -> dict:
    decision = await ctx.promise("decision", type_hint=str).value()
    return {"request": req, "decision": decision}


@approval.handler()
async def decide(ctx: WorkflowSharedContext, decision: str) -> str:
    await ctx.promise("decision", type_hint=str).resolve(decision)
    return "decided"


app = restate.app(services=[greeter, counter, approval])
