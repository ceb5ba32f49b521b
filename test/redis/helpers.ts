/**
 * Shared pieces of the Redis tests: the URL under test, a unique key prefix
 * per run (so runs never see each other's keys), cleanup of that prefix, and
 * a bounded wait for a condition.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createConnection } from "node:net";
import { Redis } from "ioredis";
import type { ManualClock } from "../../src/index.js";
import type { RedisRateLimiter } from "../../src/redis.js";
import { waitUntil } from "../helpers/wait.js";
import { freePort } from "../helpers/free-port.js";

export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

export function uniquePrefix(area: string): string {
  return `pct:${area}:${randomUUID().slice(0, 8)}:`;
}

/** Deletes every key under `prefix` (bounded SCAN). */
export async function deletePrefix(prefix: string): Promise<void> {
  const r = new Redis(REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 1 });
  try {
    let cursor = "0";
    let rounds = 0;
    do {
      const [next, keys] = await r.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      if (keys.length > 0) await r.del(...keys);
      cursor = next;
    } while (cursor !== "0" && ++rounds < 10_000);
  } finally {
    r.disconnect();
  }
}

/**
 * Counts the commands `client` (a Redis or Cluster client) sends until
 * `stop()`. A pass-through spy: every command still goes to Redis. Used to
 * show that an instance learned something by a published message, not by
 * asking: a proof that does not depend on how fast the machine is.
 */
export function countCommands(client: object): { readonly count: number; stop(): void } {
  const c = client as { sendCommand: (...args: unknown[]) => unknown };
  const original = c.sendCommand;
  const counter = {
    count: 0,
    stop: () => {
      // The spy is an own property over the prototype's method: removing it restores the client.
      delete (c as Partial<typeof c>).sendCommand;
    },
  };
  c.sendCommand = function (this: unknown, ...args: unknown[]): unknown {
    counter.count++;
    return original.apply(this, args);
  };
  return counter;
}

/** A throw-away redis-server on a free port, for tests that flush, stop or restart Redis. */
export class ThrowawayRedis {
  private child: ChildProcess | undefined;
  constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async create(): Promise<ThrowawayRedis> {
    const r = new ThrowawayRedis(await freePort());
    await r.start();
    return r;
  }

  async start(): Promise<void> {
    this.child = spawn("redis-server", ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: "ignore",
    });
    await waitUntil(() => this.answers(), { timeoutMs: 5000, message: `redis-server on ${this.port}` });
  }

  /** SIGKILL: the server vanishes without closing anything cleanly. */
  /** The running server's process id (undefined while it is down). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  async kill(): Promise<void> {
    const c = this.child;
    this.child = undefined;
    if (c === undefined || c.exitCode !== null) return;
    const exited = new Promise((resolve) => c.once("exit", resolve));
    c.kill("SIGKILL");
    await exited;
  }

  /** One PING on a fresh connection, bounded by 200 ms. */
  async answers(): Promise<boolean> {
    return new Promise((resolve) => {
      const sock = createConnection({ host: "127.0.0.1", port: this.port });
      const done = (ok: boolean): void => {
        clearTimeout(t);
        sock.destroy();
        resolve(ok);
      };
      const t = setTimeout(() => done(false), 200);
      sock.on("error", () => done(false));
      sock.on("connect", () => sock.write("PING\r\n"));
      sock.on("data", (d) => done(d.toString().startsWith("+PONG")));
    });
  }
}

/**
 * The fixed-window queue across two instances: `a` and `b` are limits named
 * alike (permitLimit 3, windowMs 1000, queueLimit 6) on two stores of one
 * Redis, driven by `clock`. Six acquire on `a` (3 pass, 3 wait) and three on
 * `b` (they wait): the queue's 6 places are counted across both, so one more
 * at either is queue_full; every window admits exactly 3 in total; a
 * newcomer does not pass its process's queue.
 */
export async function queueAcrossTwoInstances(a: RedisRateLimiter, b: RedisRateLimiter, clock: ManualClock): Promise<void> {
  const idle = async (): Promise<void> => {
    await waitUntil(() => a.queueIdle() && b.queueIdle(), { timeoutMs: 5000, message: "the queues' Redis calls" });
    await new Promise((r) => setImmediate(r));
  };
  const admitted: string[] = [];
  const all: Promise<void>[] = [];
  for (const [name, l, n] of [["a", a, 6], ["b", b, 3]] as const) {
    for (let i = 0; i < n; i++) {
      all.push(
        l.acquire("k").then((d) => {
          assert.equal(d.allowed, true, `${name} #${i}: ${d.reason}`);
          admitted.push(name);
        }),
      );
      await idle();
    }
  }
  assert.equal(admitted.length, 3, "the first window admits 3");
  const jump = await a.check("k");
  assert.equal(jump.allowed, false, "a newcomer does not pass the waiters of its process");
  assert.equal(jump.reason, "rate_limited");
  // 3 wait at a and 3 at b: the queue's 6 places are taken across both, so one more at either is queue_full.
  assert.equal((await b.acquire("k")).reason, "queue_full");
  assert.equal((await a.acquire("k")).reason, "queue_full");
  for (let w = 1; w <= 2; w++) {
    clock.advance(1000);
    await waitUntil(() => admitted.length >= 3 + 3 * w, { timeoutMs: 5000, message: `window ${w}` });
    await idle();
    assert.equal(admitted.length, 3 + 3 * w, `window ${w} admits exactly 3 across both instances`);
  }
  await Promise.all(all);
  assert.equal(admitted.filter((x) => x === "a").length, 6);
  assert.equal(admitted.filter((x) => x === "b").length, 3);
}

/** Unhandled rejections seen between `start()` and `stop()`: tests of Redis failures assert there were none. */
export class UnhandledRejections {
  readonly seen: unknown[] = [];
  private readonly onRejection = (e: unknown): void => {
    this.seen.push(e);
  };

  start(): void {
    process.on("unhandledRejection", this.onRejection);
  }

  stop(): void {
    process.off("unhandledRejection", this.onRejection);
  }
}
