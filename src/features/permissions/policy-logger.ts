/**
 * What the permission policy logs through. The policy never puts a
 * destination (host, port, address, host pattern) in `fields` unless
 * destination auditing is on.
 */
export interface PolicyLogger {
  info(msg: string, fields: Record<string, unknown>): void;
  warn(msg: string, fields: Record<string, unknown>): void;
}

export const silentLogger: PolicyLogger = {
  info: () => {},
  warn: () => {},
};
