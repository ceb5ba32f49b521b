/**
 * Pieces of the gateway bandwidth tests: CONNECT tunnels opened through a
 * real Gateway, and the metered upstream and greedy sender of the shaping
 * tests. Every wait is bounded.
 */
import net from "node:net";
import { systemClock } from "../../../src/core/clock.js";
import { connectHead, userHash, withTimeout } from "../../gateway/fixtures.js";
import { blast, Meter, startUpstream, type Upstream } from "./harness.js";
import { sleep } from "../../helpers/wait.js";

export { blast, Meter, startUpstream, type Upstream };

export const PASSWORD = "s3cret";

/** A connect-listener document: users alice, bob and carol, all allowed to loopback, and a `[bandwidth]` section. */
export async function bandwidthDoc(bandwidth: Record<string, unknown> | undefined, extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const hash = await userHash(PASSWORD);
  return {
    log: { format: "json", level: "warn" },
    users: { alice: hash, bob: hash, carol: hash },
    policy: { rule: [{ identities: ["*"], hosts: ["*"], ports: ["1-65535"], cidrs: ["127.0.0.0/8"] }] },
    listener: [{ name: "egress", kind: "connect", bind: "127.0.0.1:0" }],
    ...(bandwidth === undefined ? {} : { bandwidth }),
    ...extra,
  };
}

/** Opens a tunnel to 127.0.0.1:`target` through the connect listener at `proxyPort` as `user`; resolves once established. */
export async function openTunnel(proxyPort: number, target: number, user: string, localAddress = "127.0.0.1"): Promise<net.Socket> {
  const s = net.connect({ port: proxyPort, host: "127.0.0.1", localAddress, allowHalfOpen: true });
  s.on("error", () => {});
  s.write(connectHead(`127.0.0.1:${target}`, { user, password: PASSWORD }));
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      let head = "";
      const onData = (d: Buffer): void => {
        head += d.toString("latin1");
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) return;
        s.off("data", onData);
        s.pause();
        if (!head.startsWith("HTTP/1.1 200")) return reject(new Error(`tunnel refused: ${head.split("\r\n")[0]}`));
        const rest = Buffer.from(head.slice(end + 4), "latin1");
        if (rest.length > 0) s.unshift(rest);
        resolve();
      };
      s.on("data", onData);
      s.once("close", () => reject(new Error("closed before the tunnel was established")));
    }),
    5000,
    "tunnel established",
  );
  return s;
}

/** Now on the clock the meters use. */
export const now = (): number => systemClock.now();

/** The meter of the `i`-th upstream connection, once it exists. */
export async function meterOf(up: Upstream, i: number): Promise<Meter> {
  const deadline = now() + 5000;
  while (up.meters[i] === undefined) {
    if (now() > deadline) throw new Error(`no upstream connection #${i}`);
    await sleep(10);
  }
  return up.meters[i]!;
}

/** A sink for what the upstream sends back: meters bytes arriving at the client. */
export function meterDownload(s: net.Socket): Meter {
  const m = new Meter();
  s.on("data", (d: Buffer) => m.record(d.length));
  s.resume();
  return m;
}
