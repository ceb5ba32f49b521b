/**
 * Named presets for the common situations of an auth server or API. A
 * profile gives the fixed window used by routes that do not spell out their
 * own numbers, and the subject lockout's failure threshold. Every field can
 * be overridden on its own.
 */
import { InvalidArgumentError } from "../../core/errors.js";

export type ProfileName = "default" | "high_trust" | "air_gapped" | "lockdown";

export interface ProfileSettings {
  permitLimit: number;
  windowMs: number;
  queueLimit: number;
  /** Failures within the lockout window that lock a subject. */
  lockoutMaxFailures: number;
  lockoutWindowMs: number;
  lockoutDurationMs: number;
}

export type ProfileOverrides = Partial<ProfileSettings>;

const MINUTE = 60_000;

/** The presets; frozen so that no caller can change them for everyone else. */
export const PROFILES: Readonly<Record<ProfileName, Readonly<ProfileSettings>>> = Object.freeze({
  // Balances an anonymous quota with headroom for bursts.
  default: Object.freeze({ permitLimit: 30, windowMs: MINUTE, queueLimit: 0, lockoutMaxFailures: 5, lockoutWindowMs: 15 * MINUTE, lockoutDurationMs: 15 * MINUTE }),
  // Known clustered clients behind an allowlist: double the rate, a short queue.
  high_trust: Object.freeze({ permitLimit: 60, windowMs: MINUTE, queueLimit: 5, lockoutMaxFailures: 5, lockoutWindowMs: 15 * MINUTE, lockoutDurationMs: 15 * MINUTE }),
  // Shared bastion hosts: fewer, slower requests.
  air_gapped: Object.freeze({ permitLimit: 10, windowMs: 2 * MINUTE, queueLimit: 0, lockoutMaxFailures: 5, lockoutWindowMs: 15 * MINUTE, lockoutDurationMs: 15 * MINUTE }),
  // Incident response: a trickle, and a subject is locked after three failures.
  lockdown: Object.freeze({ permitLimit: 5, windowMs: 5 * MINUTE, queueLimit: 0, lockoutMaxFailures: 3, lockoutWindowMs: 15 * MINUTE, lockoutDurationMs: 60 * MINUTE }),
});

const FIELDS = Object.keys(PROFILES.default) as (keyof ProfileSettings)[];

/** The settings of profile `name` with `overrides` applied field by field. */
export function resolveProfile(name: ProfileName = "default", overrides: ProfileOverrides = {}): ProfileSettings {
  if (!Object.hasOwn(PROFILES, name)) {
    throw new InvalidArgumentError("profile", `must be one of ${Object.keys(PROFILES).join(", ")}; got ${JSON.stringify(name)}`);
  }
  const out: ProfileSettings = { ...PROFILES[name] };
  for (const [k, v] of Object.entries(overrides)) {
    if (k === "name") continue;
    if (!FIELDS.includes(k as keyof ProfileSettings)) {
      throw new InvalidArgumentError(`profile.${k}`, `is not a profile field (fields: ${FIELDS.join(", ")})`);
    }
    if (v === undefined) continue;
    out[k as keyof ProfileSettings] = v as number;
  }
  return out;
}
