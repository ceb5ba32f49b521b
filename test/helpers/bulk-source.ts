/**
 * Test servers for relay measurements: a source that, on the first bytes it
 * reads, sends a payload in 16 KiB writes (honouring backpressure) and ends;
 * and an Rng that counts its draws (in the relay path only inter-packet
 * timing draws, so the count shows the IPT stage ran).
 */
import net from "node:net";
import { type Rng, seededRng } from "../../src/core/random.js";

export interface BulkSource {
  port: number;
  close(): Promise<void>;
}

/** Listens on 127.0.0.1; each connection gets `payload` once it has sent anything, then the end. */
export async function startBulkSource(payload: Buffer): Promise<BulkSource> {
  const open = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    open.add(s);
    s.on("close", () => open.delete(s));
    s.on("error", () => s.destroy());
    s.once("data", () => {
      let at = 0;
      const pump = (): void => {
        while (at < payload.length) {
          const chunk = payload.subarray(at, at + 16 * 1024);
          at += chunk.length;
          if (!s.write(chunk)) return void s.once("drain", pump);
        }
        s.end();
      };
      pump();
    });
    s.resume();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of open) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A seeded Rng that counts how often it was drawn from. */
export class CountingRng implements Rng {
  draws = 0;
  private readonly inner: Rng;
  constructor(seed: number) {
    this.inner = seededRng(seed);
  }
  next(): number {
    this.draws++;
    return this.inner.next();
  }
}
