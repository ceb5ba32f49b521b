/**
 * The fields of an `event=limited` log line: one shape for the gateway's log,
 * which writes it, and for the features that hand it refusals (the http
 * front's refused requests), so neither copies the other's fields.
 */
import type { RetryAfterFields } from "./retry-after.js";

export interface LimitedLine extends RetryAfterFields {
  remote_addr: string;
  limiter: string;
  reason: string;
  listener?: string;
  /** An http listener's refused request (429): the route's name, what its limit counts by, the method. */
  route?: string;
  key?: string;
  method?: string;
  /** Client-chosen values of a refused request, written last: the client id (a Basic user name at most, never a password), the correlation id, the locked user. */
  client_id?: string;
  request_id?: string;
  user?: string;
}
