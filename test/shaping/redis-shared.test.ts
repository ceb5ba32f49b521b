/**
 * Two relay processes on one Redis, one identity connected to both: the
 * identity's bytes come out of one bucket in Redis (leased quotas), so the
 * two together stay within the cap plus one lease slice per gateway.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { systemClock } from "../../src/core/clock.js";
import { blast, connectFrom, sleep, startUpstream, until } from "./harness.js";

const MiB = 1024 * 1024;
const KiB = 1024;

test("two gateways on one Redis hold one identity's cap together", { timeout: 60_000 }, async () => {
  const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  const prefix = `pc-test-${randomBytes(4).toString("hex")}:`;
  const cap = MiB;
  const sliceMs = 100;
  const up = await startUpstream({ send: false });
  const children: ChildProcess[] = [];
  const blasts: { stop(): void }[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < 2; i++) {
      const child = fork(fileURLToPath(new URL("./relay-process.ts", import.meta.url)), [
        JSON.stringify({
          upstreamPort: up.port,
          identity: "alice",
          config: { per_identity: { bytes_per_second: cap, burst: 128 * KiB } },
          redis: { url, prefix, sliceMs },
        }),
      ], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
      children.push(child);
      const [hello] = (await once(child, "message")) as [{ port: number }];
      ports.push(hello.port);
    }
    const a = await connectFrom("127.0.0.2", ports[0]!);
    const b = await connectFrom("127.0.0.3", ports[1]!);
    blasts.push(blast(a), blast(b));
    await until(() => up.meters.length === 2, 10_000, "both upstream connections");
    const t0 = systemClock.now();
    await sleep(6200);
    const from = t0 + 1000;
    const to = from + 5000;
    const each = up.meters.map((m) => m.between(from, to));
    const combined = each[0]! + each[1]!;
    const slice = (cap * sliceMs) / 1000;
    const limit = cap * 5 + 2 * slice;
    console.log(`# two gateways: ${each.map((x) => (x / 5 / MiB).toFixed(3)).join(" + ")} = ${(combined / 5 / MiB).toFixed(3)} MiB/s for a cap of 1 MiB/s (limit with one slice each: ${(limit / 5 / MiB).toFixed(3)})`);
    assert.ok(combined <= limit, `combined ${combined} bytes in 5 s > ${limit}`);
    assert.ok(combined >= cap * 5 * 0.9, `the shared cap is used, not starved: ${combined}`);
    assert.ok(Math.min(...each) > cap * 5 * 0.2, `both gateways get a share: ${each.join(", ")}`);
  } finally {
    for (const b of blasts) b.stop();
    for (const c of children) c.disconnect();
    await up.close();
  }
});
