/**
 * A listener's signed permission policy across reloads: made when the
 * listener is set up, kept when the reloaded configuration has the same
 * `policy` block, replaced (the old one closed) when it changed, closed when
 * the listener goes away. A listener without `policy` has none.
 */
import type { PermissionContext, PermissionListenerConfig } from "./gateway-view.js";
import { SignedDestinations } from "./signed-destinations.js";

export class PermissionSlot {
  private current: SignedDestinations | undefined;
  private key = "";

  constructor(private readonly ctx: PermissionContext) {}

  get destinations(): SignedDestinations | undefined {
    return this.current;
  }

  /** Applies a listener configuration; throws (changing nothing) when the new policy cannot be set up. */
  configure(cfg: PermissionListenerConfig): void {
    const key = cfg.policy === undefined ? "" : JSON.stringify([cfg.policy, cfg.revoke_closes_tunnels]);
    if (key === this.key) return;
    const next =
      cfg.policy === undefined
        ? undefined
        : new SignedDestinations(cfg.policy, {
            listener: cfg.name,
            revokeClosesTunnels: cfg.revoke_closes_tunnels,
            clock: this.ctx.clock,
            logger: this.ctx.logger,
            auditDestinations: this.ctx.config.log.audit_destinations,
          });
    const old = this.current;
    this.current = next;
    this.key = key;
    void old?.close();
  }

  close(): Promise<void> {
    const old = this.current;
    this.current = undefined;
    this.key = "";
    return old?.close() ?? Promise.resolve();
  }
}
