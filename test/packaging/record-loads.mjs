// `node --import ./record-loads.mjs ...`: prints to stderr, one line each, every
// module URL the process resolves ("loaded <url>"). Used to see which packages
// an entry point pulls in, as Node really loads it.
import { register } from "node:module";

register("./record-loads-hooks.mjs", import.meta.url);
