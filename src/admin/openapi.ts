/**
 * The OpenAPI 3.1 description of the admin API, served at /v1/openapi.json.
 * Kept next to the routes it describes; a test holds the two in step.
 */
import { ERROR_CODES } from "./errors.js";

const json = (schema: object) => ({ content: { "application/json": { schema } } });
/** A response with a JSON body: OpenAPI requires every response to have a description. */
const ok = (description: string, schema: object) => ({ description, ...json(schema) });
const error = (description: string) => ({ description, ...json({ $ref: "#/components/schemas/Error" }) });
const common = {
  "401": error("Missing or wrong bearer token (code unauthorized)"),
  "429": { ...error("Admin rate limit (code rate_limited)"), headers: { "Retry-After": { schema: { type: "integer" }, description: "Seconds to wait" } } },
};
const address = { name: "ip", in: "path", required: true, schema: { type: "string" }, description: "An IP address, or an address key such as 2001:db8::/64 (URL-encoded)" };

export function openApiDocument(): object {
  return {
    openapi: "3.1.0",
    info: { title: "Portcullis admin API", version: "1", description: "Inspect and undo bans, read limiter state, metrics and health of one gateway." },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: {
        Error: {
          type: "object",
          required: ["error"],
          properties: {
            error: {
              type: "object",
              required: ["code", "message"],
              properties: { code: { type: "string", enum: Object.keys(ERROR_CODES) }, message: { type: "string" } },
            },
          },
        },
        Ban: {
          type: "object",
          required: ["key", "until", "remaining_ms"],
          properties: { key: { type: "string" }, until: { type: "string", format: "date-time" }, remaining_ms: { type: "integer" }, bans: { type: "integer" } },
        },
      },
    },
    security: [{ bearer: [] }],
    paths: {
      "/healthz": { get: { summary: "Liveness", security: [], responses: { "200": { description: "The process answers" } } } },
      "/readyz": {
        get: {
          summary: "Readiness: every registered check passes (store reachable or insurance active, policy loaded)",
          security: [],
          responses: { "200": { description: "Ready" }, "503": { description: "A check failed; the body lists the checks" } },
        },
      },
      "/metrics": { get: { summary: "Prometheus exposition", responses: { "200": { description: "text/plain; version=0.0.4" }, ...common } } },
      "/v1/openapi.json": { get: { summary: "This document", security: [], responses: { "200": { description: "OpenAPI 3.1" } } } },
      "/v1/bans": {
        get: {
          summary: "Active bans, ordered by key, paged",
          parameters: [
            { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 500, default: 100 } },
            { name: "cursor", in: "query", schema: { type: "string" }, description: "next_cursor of the previous page" },
          ],
          responses: {
            "200": ok("One page of active bans", { type: "object", properties: { bans: { type: "array", items: { $ref: "#/components/schemas/Ban" } }, next_cursor: { type: ["string", "null"] } } }),
            "400": error("Bad limit or cursor (bad_request, invalid_cursor)"),
            ...common,
          },
        },
        post: {
          summary: "Ban an address now",
          requestBody: {
            required: true,
            ...json({
              type: "object",
              required: ["ip"],
              properties: {
                ip: { type: "string" },
                duration: { oneOf: [{ type: "string", example: "10m" }, { type: "number", description: "seconds" }], description: "Default: the penalty box's escalating length" },
                reason: { type: "string", maxLength: 200 },
              },
            }),
          },
          responses: {
            "201": ok("The ban now in force", { $ref: "#/components/schemas/Ban" }),
            "400": error("invalid_address, invalid_duration or bad_request"),
            "413": error("payload_too_large"),
            "415": error("unsupported_media_type"),
            ...common,
          },
        },
      },
      "/v1/bans/{ip}": {
        delete: {
          summary: "Lift a ban: the address may connect again at once",
          parameters: [address],
          responses: { "200": ok("The ban was lifted", { type: "object", properties: { key: { type: "string" }, unbanned: { const: true } } }), "400": error("invalid_address"), "404": error("not_banned"), ...common },
        },
      },
      "/v1/limits/{limiter}/{key}": {
        get: {
          summary: "Current state of one key under one limiter (read only; consumes nothing)",
          parameters: [
            { name: "limiter", in: "path", required: true, schema: { type: "string", enum: ["ban", "max_connections_per_ip", "max_connections", "connection_rate", "prefix_connection_rate"] } },
            { ...address, name: "key" },
          ],
          responses: { "200": ok("The key's state under the limiter", { type: "object", properties: { limiter: { type: "string" }, key: { type: "string" } } }), "400": error("invalid_address"), "404": error("unknown_limiter"), ...common },
        },
      },
      "/v1/reload": {
        post: {
          summary: "Reload the configuration from its file",
          responses: { "200": { description: "Applied" }, "422": error("reload_failed (the running configuration stays)"), "501": error("reload_unavailable"), ...common },
        },
      },
      "/v1/stats": {
        get: {
          summary: "Running totals and state of every listener kind (HTTP refusals, UDP packets and drops, bandwidth), listeners, store mode, reloads, ban reasons and the top offenders of the last 5 minutes (the dashboard's feed)",
          responses: { "200": { description: "Totals" }, ...common },
        },
      },
    },
  };
}
