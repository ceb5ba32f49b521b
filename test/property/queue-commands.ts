/**
 * Random command sequences for the fixed-window queue, shared by the memory
 * queue's and the Redis queue's model-based properties so both stores are
 * driven by the same scenarios.
 */
import fc from "fast-check";

export type Command =
  | { kind: "acquire"; key: string; cost: number }
  | { kind: "check"; key: string; cost: number }
  | { kind: "cancel"; pick: number }
  | { kind: "checkThenRetry"; key: string; cost: number }
  | { kind: "advance"; ms: number };

const keyArb = fc.constantFrom("a", "b");

export const commandArb = (maxCost: number): fc.Arbitrary<Command> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant("acquire" as const), key: keyArb, cost: fc.integer({ min: 1, max: maxCost }) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("check" as const), key: keyArb, cost: fc.integer({ min: 1, max: maxCost }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("cancel" as const), pick: fc.nat(100) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("checkThenRetry" as const), key: keyArb, cost: fc.integer({ min: 1, max: maxCost }) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 2500 }) }) },
  );

/** A queue configuration and up to 60 commands; costs go one past permitLimit so "never fits" is exercised. */
export const scenarioArb = (size?: fc.SizeForArbitrary) =>
  fc
    .record({
      permitLimit: fc.integer({ min: 1, max: 4 }),
      queueLimit: fc.integer({ min: 1, max: 6 }),
      order: fc.constantFrom("oldest_first" as const, "newest_first" as const),
      start: fc.integer({ min: 0, max: 3000 }),
    })
    .chain((p) => fc.record({ p: fc.constant(p), commands: fc.array(commandArb(p.permitLimit + 1), { maxLength: 60, ...(size ? { size } : {}) }) }));

export type Scenario = { p: { permitLimit: number; queueLimit: number; order: "oldest_first" | "newest_first"; start: number }; commands: Command[] };

/**
 * Scenarios that once failed, replayed before the random ones. Newest first,
 * a plain check goes ahead of a waiter left over when the window opens, so
 * its Retry-After is the next window even with two waiters queued.
 */
export const knownScenarios: [Scenario][] = [
  [
    {
      p: { permitLimit: 3, queueLimit: 5, order: "newest_first", start: 6 },
      commands: [
        { kind: "acquire", key: "b", cost: 3 },
        { kind: "acquire", key: "b", cost: 2 },
        { kind: "acquire", key: "b", cost: 2 },
        { kind: "checkThenRetry", key: "b", cost: 1 },
      ],
    },
  ],
];
