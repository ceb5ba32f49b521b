/** Imports the tests share from the HTTP layer, internal modules included. */
export { HttpLimiter, type HttpLimiterOptions } from "../../src/http/index.js";
export { parseForm } from "../../src/http/form-body.js";
