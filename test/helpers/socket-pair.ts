/**
 * A connected pair of real TCP sockets on loopback, both ends allowing
 * half-open (a test can end one direction and keep reading the other), for
 * tests of code that takes sockets: the peek, the shaped pipe.
 */
import { once } from "node:events";
import net from "node:net";
import { withTimeout } from "../gateway/fixtures.js";

export interface SocketPair {
  /** The end that connected. */
  client: net.Socket;
  /** The end the listener accepted. */
  server: net.Socket;
  /** Destroys both ends and closes the listener. */
  close(): void;
}

/** Opens a listener on 127.0.0.1, connects to it, and resolves once both ends are up (bounded by `ms`). */
export async function socketPair(ms = 5_000): Promise<SocketPair> {
  const listener = net.createServer({ allowHalfOpen: true });
  listener.listen(0, "127.0.0.1");
  await withTimeout(once(listener, "listening"), ms, "loopback listener");
  const accepted = once(listener, "connection") as Promise<[net.Socket]>;
  const client = net.connect({ port: (listener.address() as net.AddressInfo).port, host: "127.0.0.1", allowHalfOpen: true });
  client.on("error", () => {});
  const [[server]] = await withTimeout(Promise.all([accepted, once(client, "connect")]), ms, "loopback socket pair");
  server.on("error", () => {});
  return {
    client,
    server,
    close() {
      client.destroy();
      server.destroy();
      listener.close();
    },
  };
}
