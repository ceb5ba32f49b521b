/**
 * The readiness check of signed permissions: ready while every connect
 * listener's PostgreSQL policy is connected and listening for changes (a
 * policy that is not fails closed, so the gateway is up but refusing).
 */
export interface PermissionsView {
  permissionsReady(): Array<{ listener: string; ready: boolean }>;
}

export function permissionsReadiness(gateway: PermissionsView): { ok: boolean; detail?: string } {
  const all = gateway.permissionsReady();
  const down = all.filter((p) => !p.ready).map((p) => p.listener);
  if (down.length > 0) return { ok: false, detail: `permission policy unavailable on ${down.join(", ")}` };
  return { ok: true, detail: all.length === 0 ? "no postgres policy" : `${all.length} postgres ${all.length === 1 ? "policy" : "policies"} ready` };
}
