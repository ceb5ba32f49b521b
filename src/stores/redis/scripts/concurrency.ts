/** The concurrency script: leases on a sorted set. */
import { ONE_KEY_OP, PRELUDE } from "./prelude.js";

/**
 * Concurrency leases (src/algorithms/concurrency.ts) on a sorted set: member
 * = lease id, score = expiry. Expired leases are pruned on every call (a
 * holder that crashed frees its slot after the lease TTL); releasing an id
 * not held is a no-op. Without a TTL the score is +inf and the key has no
 * expiry while any lease is held.
 *
 * KEYS[1] the set. ARGV: op ('acquire' | 'release' | 'renew' | 'count'),
 * now ('' for Redis TIME), lease id, ttl ('inf' for none), limit, and the
 * shortest key lifetime in ms (1 with Redis TIME; long with an injected
 * clock, whose milliseconds are not real ones).
 * Reply: one string "ok held retryAfterMs".
 */
export const CONCURRENCY_SCRIPT = `${PRELUDE}${ONE_KEY_OP}local id = ARGV[3]
local ttl = dec(ARGV[4])
local limit = tonumber(ARGV[5])
local floor = tonumber(ARGV[6]) or 1
redis.call('ZREMRANGEBYSCORE', key, '-inf', enc(now))
local function expire()
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #last == 0 then return end
  local at = dec(last[2])
  if at == INF then redis.call('PERSIST', key) else redis.call('PEXPIRE', key, ttlMs(at - now, floor)) end
end
if op == 'acquire' then
  local n = redis.call('ZCARD', key)
  if n >= limit then
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local retry = 0
    if #first > 0 and dec(first[2]) ~= INF then retry = msUntil(now, dec(first[2])) end
    return '0 ' .. n .. ' ' .. enc(retry)
  end
  redis.call('ZADD', key, enc(now + ttl), id)
  expire()
  return '1 ' .. (n + 1) .. ' 0'
elseif op == 'release' then
  local removed = redis.call('ZREM', key, id)
  local n = redis.call('ZCARD', key)
  if n == 0 then redis.call('DEL', key) end
  return removed .. ' ' .. n .. ' 0'
elseif op == 'renew' then
  if not redis.call('ZSCORE', key, id) then return '0 ' .. redis.call('ZCARD', key) .. ' 0' end
  redis.call('ZADD', key, 'XX', enc(now + ttl), id)
  expire()
  return '1 ' .. redis.call('ZCARD', key) .. ' 0'
end
return '1 ' .. redis.call('ZCARD', key) .. ' 0'
`;
