/**
 * How an http listener's refused requests reach the gateway's event log and
 * metrics: each 429 is one `event=limited` line at info, with the route, the
 * limit, what it counts by, the reason, the wait (flagged when long) and the
 * client's id and correlation id, and one `http_rejection` event for the
 * metrics. The HTTP layer's other messages (shadow refusals, a warning about
 * forwarding headers) pass through as they are.
 */
import type { HttpLimitedEvent, HttpLogger } from "./types.js";
import { retryAfterFields } from "../../core/retry-after.js";
import type { HttpContext } from "./gateway-view.js";

export function httpRefusalLogger(listener: string, ctx: Pick<HttpContext, "logger" | "events" | "config">): HttpLogger {
  return {
    info: (msg, fields) => ctx.logger.info(msg, fields),
    warn: (msg, fields) => ctx.logger.warn(msg, fields),
    limited(e: HttpLimitedEvent) {
      const wait = retryAfterFields(e.retry_after * 1000, ctx.config.log.long_retry_after);
      ctx.logger.limited({
        remote_addr: e.remote_ip,
        listener,
        route: e.endpoint,
        limiter: e.limiter,
        key: e.key,
        reason: e.reason,
        ...wait,
        method: e.method,
        client_id: e.client_id,
        request_id: e.request_id,
        user: e.subject,
      });
      ctx.events.emit("http_rejection", { listener, route: e.endpoint, limiter: e.limiter, remote_addr: e.remote_ip, long_retry_after: wait.long_retry_after });
    },
  };
}
