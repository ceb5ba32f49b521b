/**
 * The `connect` listener's protocol: read a CONNECT head within a time and
 * size budget, authenticate (client certificate identity, or Proxy
 * Basic auth with a bounded number of attempts per connection), ask the
 * destination policy, then open the tunnel and relay. Malformed input is
 * closed silently; only the well-formed answers 407, 403 and 502 are ever
 * written, so nothing internal reaches the wire.
 */
import type { X509Certificate } from "node:crypto";
import { systemClock } from "../../core/clock.js";
import type { ListenerConfig } from "../config/schema.js";
import type { Connection } from "../connection.js";
import type { GatewayContext } from "../context.js";
import { parseProxyAuthorization } from "../identity/basic-auth.js";
import { certificateFingerprint, identityFromCertificate } from "../identity/client-cert.js";
import { relay, relayStagesFor } from "../relay.js";
import { headEnd, parseConnectHead } from "./connect-request.js";
import { ConnectMasker } from "../../features/probe-resistance/connect-masker.js";
import { type SignedDestinations, decideDestination } from "../../features/permissions/signed-destinations.js";
import { connectPumped } from "../read-pump.js";
import { retryAfterFields } from "../../core/retry-after.js";

const PROXY_AUTH_REQUIRED = Buffer.from(
  'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="proxy"\r\nContent-Length: 0\r\n\r\n',
);
const LAST_PROXY_AUTH_REQUIRED = Buffer.from(
  'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="proxy"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
);
const FORBIDDEN = Buffer.from("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
const BAD_GATEWAY = Buffer.from("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
const CONNECT_PREFIX = Buffer.from("CONNECT ");
const ESTABLISHED = Buffer.from("HTTP/1.1 200 Connection established\r\n\r\n");

interface Who {
  identity: string;
  user: string | undefined;
  fingerprint: string | undefined;
}

export class ConnectSession {
  private buffered: Buffer[] = [];
  private bytes = 0;
  private failures = 0;
  private deadline: { cancel(): void } | undefined;
  private busy = false;
  private certLogged = false;
  private readonly certWho: Who | undefined;
  /** With probe_resistance: where refused clients go instead of a 407 or a close. */
  private readonly masker: ConnectMasker | undefined;
  /** The parsed head, kept while masking is possible so a masked client's bytes are relayed verbatim. */
  private head: Buffer | undefined;
  private endedEarly = false;
  private readonly certified: boolean;
  /** Aborts when the client's socket closes, so its queued password check is dropped before it runs. */
  private readonly closed = new AbortController();

  constructor(
    private readonly conn: Connection,
    private readonly cfg: ListenerConfig,
    private readonly ctx: GatewayContext,
    peer: X509Certificate | undefined,
    /** With a postgres policy: signed permissions decide instead of [[policy.rule]]. */
    private readonly signed?: SignedDestinations,
  ) {
    // A certificate that verified (tls-setup passes only those) earns priority for a password check too.
    this.certified = peer !== undefined;
    if (peer !== undefined && cfg.tls) {
      const id = identityFromCertificate(peer, cfg.tls.identity);
      if (id !== undefined) this.certWho = { identity: id, user: id, fingerprint: certificateFingerprint(peer) };
    }
    if (cfg.probe_resistance !== undefined) this.masker = new ConnectMasker(conn, cfg.probe_resistance, ctx, cfg.name);
  }

  /**
   * `refusedBy`: the guard refused this address (banned, throttled) and the
   * listener masks: the client goes to the mask host at once, whatever it
   * sends, so it sees what it saw before the ban; only its authenticated
   * path is gone.
   */
  start(refusedBy?: string): void {
    const s = this.conn.stream;
    s.on("data", this.onData);
    s.on("error", () => this.conn.close("error"));
    s.on("end", this.onEnd);
    // Pending deadlines go with the connection, so a flood of short connections leaves no timers behind.
    this.conn.raw.once("close", () => {
      this.deadline?.cancel();
      this.closed.abort();
    });
    if (refusedBy !== undefined && this.masker !== undefined) {
      this.refuse(refusedBy);
      return;
    }
    this.armDeadline();
    // The mask host, dialled if no whole head arrives within the classify window, may end the wait.
    this.masker?.watch(() => {
      if (!this.busy) this.refuse("mask_first");
    });
  }

  /** The whole head must arrive in request_timeout: a client sending one byte a second is closed on time. */
  private armDeadline(): void {
    this.deadline?.cancel();
    this.deadline = systemClock.setTimer(() => this.refuse("request_timeout"), this.cfg.request_timeout);
  }

  /** Closed, or handed to the mask host (by an oversized or slow head while its auth was pending): nothing more to do here. */
  private get gone(): boolean {
    return this.conn.raw.destroyed || this.masker?.masking === true;
  }

  private readonly onEnd = (): void => {
    // A masked client's EOF while its head is being authenticated waits for the verdict (the relay forwards the FIN).
    if (this.masker !== undefined && this.busy) this.endedEarly = true;
    else this.refuse("end");
  };

  /** Ends a client that is not served: masked when configured (every byte read goes to the mask host), else a silent close. */
  private refuse(reason: string, user?: string): void {
    if (this.masker === undefined) {
      this.conn.close(reason);
      return;
    }
    this.deadline?.cancel();
    this.busy = true;
    const s = this.conn.stream;
    s.removeListener("data", this.onData);
    s.removeListener("end", this.onEnd);
    const bytes = Buffer.concat(this.head === undefined ? this.buffered : [this.head, ...this.buffered]);
    this.buffered = [];
    void this.masker.mask(reason, bytes, user);
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.busy) {
      // A client that sends more before hearing our answer: keep it, bounded like the head.
      this.push(chunk);
      return;
    }
    this.push(chunk);
    this.tryHead();
  };

  private push(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.bytes > this.cfg.max_request_bytes) {
      // A masked client's oversized head still goes out whole (the relay caps it), as a web server would see it.
      if (this.masker !== undefined) this.buffered.push(chunk);
      this.refuse("request_too_large");
      return;
    }
    this.buffered.push(chunk);
  }

  private tryHead(): void {
    if (this.buffered.length === 0 || this.masker?.masking === true || this.conn.raw.destroyed) return;
    const buf = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered);
    // Bytes that cannot begin a CONNECT request (TLS, SSH, a GET, garbage) are refused at once, not after the timeout.
    const n = Math.min(buf.length, CONNECT_PREFIX.length);
    if (buf.compare(CONNECT_PREFIX, 0, n, 0, n) !== 0) {
      this.buffered = [buf];
      this.refuse("not_connect");
      return;
    }
    const end = headEnd(buf);
    if (end < 0) {
      this.buffered = [buf];
      return;
    }
    this.masker?.classified();
    const rest = buf.subarray(end);
    this.buffered = rest.length ? [rest] : [];
    this.bytes = rest.length;
    if (this.masker !== undefined) this.head = buf.subarray(0, end);
    const head = parseConnectHead(buf.subarray(0, end));
    if (!head.ok) {
      this.refuse(head.reason);
      return;
    }
    this.busy = true;
    this.conn.stream.pause();
    void this.handle(head.host, head.port, head.authorization).catch((err: unknown) => {
      // A bug must cost one connection, never the process, and never show on the wire.
      this.ctx.logger.error("connect handling failed", { listener: this.cfg.name, error: err instanceof Error ? err.message : String(err) });
      this.conn.close("internal");
    });
  }

  private async handle(host: string, port: number, authorization: string | undefined): Promise<void> {
    let who = this.certWho;
    if (who !== undefined && !this.certLogged) {
      this.certLogged = true;
      this.ctx.logger.auth({ remote_addr: this.conn.remote, user: who.identity, key_fingerprint: who.fingerprint, result: "accept", listener: this.cfg.name });
      this.ctx.events.emit("auth", { listener: this.cfg.name, remote_addr: this.conn.remote, user: who.identity, result: "accept", reason: undefined });
    }
    who ??= await this.basicAuth(authorization);
    if (who === undefined || this.gone) return;
    this.masker?.served();
    if (this.endedEarly) return this.conn.close("end");
    const decision = await decideDestination(this.ctx, this.signed, who.identity, host, port);
    if (this.gone) return;
    this.ctx.events.emit("decision", { listener: this.cfg.name, remote_addr: this.conn.remote, identity: who.identity, allowed: decision.allowed, reason: decision.reason, code: decision.code });
    if (!decision.allowed) {
      // Once per refused tunnel, at info; the destination only with auditing on (the logger decides).
      const reason = decision.code ?? "policy";
      this.ctx.logger.deny({ remote_addr: this.conn.remote, listener: this.cfg.name, reason, detail: decision.reason, user: who.identity, destination: `${host}:${port}` });
      this.answerAndClose(FORBIDDEN);
      return;
    }
    this.ctx.logger.audit({ remote_addr: this.conn.remote, user: who.identity, destination: `${host}:${port}`, listener: this.cfg.name });
    this.conn.identity = who.identity;
    this.open(decision.address ?? host, port, who.identity, `${host}:${port}`);
    if (decision.rowId !== undefined) this.signed?.track(decision.rowId, this.conn);
  }

  /** Verifies Proxy Basic credentials; undefined when rejected (the 407 or close is already on its way). */
  private async basicAuth(header: string | undefined): Promise<Who | undefined> {
    const { guard, logger } = this.ctx;
    const key = this.conn.admission.key;
    const creds = parseProxyAuthorization(header);
    let reason: string;
    let wait: ReturnType<typeof retryAfterFields> = {};
    if (creds === undefined) {
      // No credentials is the normal first step of a Basic handshake, not a failure: ask for them.
      reason = header === undefined ? "" : "malformed";
    } else {
      const checked = this.conn.admission.exempt ? undefined : guard.authCheck(key);
      // Awaited only on a shared store: on memory the check answers at once.
      const gate = checked instanceof Promise ? await checked : checked;
      if (gate !== undefined && !gate.allowed) {
        reason = gate.reason === "banned" ? "banned" : "backoff";
        wait = retryAfterFields(gate.retryAfterMs, this.ctx.config.log.long_retry_after);
      } else {
        // Bounded and prioritized (src/gateway/identity/password-verifier.ts); dropped unstarted if this connection closes.
        const verdict = await this.ctx.verifier.verify({ user: creds.user, password: creds.password, key, certified: this.certified, signal: this.closed.signal });
        if (verdict === "accept") {
          logger.auth({ remote_addr: this.conn.remote, user: creds.user, key_fingerprint: undefined, result: "accept", listener: this.cfg.name });
          this.ctx.events.emit("auth", { listener: this.cfg.name, remote_addr: this.conn.remote, user: creds.user, result: "accept", reason: undefined });
          return { identity: creds.user, user: creds.user, fingerprint: undefined };
        }
        if (verdict === "closed") return undefined;
        // Not checked (queue full, waited too long) answers like a wrong password, but is not counted against the address.
        reason = verdict === "reject" ? "bad_credentials" : verdict;
      }
    }
    if (this.gone) return undefined;
    if (this.masker !== undefined) {
      // Masked: no 407 and no second attempt; the failure is recorded by the masker.
      this.refuse(reason === "" ? "no_credentials" : reason, creds?.user);
      return undefined;
    }
    if (reason === "") {
      this.again(PROXY_AUTH_REQUIRED);
      return undefined;
    }
    this.failures++;
    logger.auth({ remote_addr: this.conn.remote, user: creds?.user, key_fingerprint: undefined, result: "reject", reason, listener: this.cfg.name, ...wait });
    this.ctx.events.emit("auth", { listener: this.cfg.name, remote_addr: this.conn.remote, user: creds?.user, result: "reject", reason, long_retry_after: wait.long_retry_after });
    if (reason === "bad_credentials" && !this.conn.admission.exempt) {
      const recorded = guard.recordAuthFailure(key);
      const r = recorded instanceof Promise ? await recorded : recorded;
      if (r.banned) this.ctx.announceBan(key, this.conn.remote, r.bannedUntil, r.failures, r.shadow);
      if (this.conn.raw.destroyed) return undefined;
    }
    if (this.failures >= guard.config.max_auth_attempts || reason === "banned") this.answerAndClose(LAST_PROXY_AUTH_REQUIRED);
    else this.again(PROXY_AUTH_REQUIRED);
    return undefined;
  }

  /** Answers and waits for the next head on the same connection. */
  private again(answer: Buffer): void {
    this.conn.stream.write(answer);
    this.busy = false;
    this.armDeadline();
    this.conn.stream.resume();
    this.tryHead();
  }

  private answerAndClose(answer: Buffer): void {
    this.deadline?.cancel();
    this.conn.stream.removeListener("data", this.onData);
    this.conn.stream.end(answer);
    // A client that never reads its answer must not hold the connection.
    systemClock.setTimer(() => this.conn.close("answered"), 2000);
  }

  private open(host: string, port: number, user: string, destination: string): void {
    const up = connectPumped({ host, port, allowHalfOpen: true, noDelay: true }, this.ctx.readBuffers);
    this.conn.upstream = up;
    let answered = false;
    // Refused, unreachable or too slow: one `deny reason=no_route` line and a 502.
    const failed = (why: string): void => {
      timer.cancel();
      if (answered) return;
      answered = true;
      up.destroy();
      if (this.conn.raw.destroyed) return;
      this.ctx.logger.deny({ remote_addr: this.conn.remote, listener: this.cfg.name, reason: "no_route", detail: why, user, destination });
      this.answerAndClose(BAD_GATEWAY);
    };
    const timer = systemClock.setTimer(() => failed("connect_timeout"), this.cfg.connect_timeout);
    const onError = (err: NodeJS.ErrnoException): void => failed(err.code ?? "connect_failed");
    up.once("error", onError);
    up.once("connect", () => {
      timer.cancel();
      up.removeListener("error", onError);
      if (this.conn.raw.destroyed) {
        up.destroy();
        return;
      }
      this.deadline?.cancel();
      const s = this.conn.stream;
      s.removeListener("data", this.onData);
      s.removeAllListeners("end");
      s.write(ESTABLISHED);
      // Bytes the client sent right after its head go first.
      for (const b of this.buffered) up.write(b);
      this.buffered = [];
      relay(s, up, relayStagesFor(this.conn), { idleTimeoutMs: this.cfg.idle_timeout });
      s.resume();
    });
  }
}
