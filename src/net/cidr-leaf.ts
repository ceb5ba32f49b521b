/**
 * The configuration schema leaf of a network (an address or CIDR block),
 * by the rules of ./cidr.ts and with its one message; the value is kept as
 * written. Every config section that takes networks uses this leaf, so a bad
 * CIDR reads the same everywhere apart from its key path.
 */
import { z } from "zod";
import { cidrProblem } from "./cidr.js";

export const cidr = z.unknown().transform((v, ctx): string => {
  const problem = cidrProblem(v);
  if (problem === undefined) return v as string;
  ctx.addIssue({ code: "custom", message: problem });
  return z.NEVER;
});
