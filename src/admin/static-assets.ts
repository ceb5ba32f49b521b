/**
 * The dashboard's files: a fixed table of names, read once when the admin
 * server starts, so no request can name a file of its own choosing and the
 * page works without internet (uPlot is served from the installed package).
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

export interface Asset {
  body: Buffer;
  type: string;
}

const LOCAL: Record<string, [string, string]> = {
  "/": ["index.html", "text/html; charset=utf-8"],
  "/assets/dashboard.js": ["dashboard.js", "text/javascript; charset=utf-8"],
  "/assets/dashboard.css": ["dashboard.css", "text/css; charset=utf-8"],
};

const PACKAGED: Record<string, [string, string]> = {
  "/assets/uPlot.iife.min.js": ["uplot/dist/uPlot.iife.min.js", "text/javascript; charset=utf-8"],
  "/assets/uPlot.min.css": ["uplot/dist/uPlot.min.css", "text/css; charset=utf-8"],
};

export function loadAssets(): Map<string, Asset> {
  const out = new Map<string, Asset>();
  for (const [path, [file, type]] of Object.entries(LOCAL)) out.set(path, { body: readFileSync(new URL(`./assets/${file}`, import.meta.url)), type });
  const require = createRequire(import.meta.url);
  for (const [path, [spec, type]] of Object.entries(PACKAGED)) out.set(path, { body: readFileSync(require.resolve(spec)), type });
  return out;
}

/** The page may talk to its own origin only; this also keeps a stray URL in a template from leaving the host. */
export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
