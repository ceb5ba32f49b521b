/**
 * portcullis/message: a store whose state lives in another process or
 * thread. A primary holds the limits of its workers in a MemoryStore and
 * answers them through a MessageStoreHost per worker; each worker's limiters
 * run on a MessageStore over the channel to the primary.
 */
export { MessageStore, type MessageStoreOptions } from "./stores/message/message-store.js";
export { MessageStoreHost, type MessageStoreHostOptions } from "./stores/message/message-host.js";
export { type MessageChannel, type PortLike, type ProcessLike, portChannel, processChannel } from "./stores/message/channel.js";
export type { StoreMode, StoreEvents, HealthCounters } from "./stores/store-health.js";
