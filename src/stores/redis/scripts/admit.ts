/** The admission script: concurrency leases and rate checks in one call, all or nothing. */
import { PRELUDE_CLOCK, PRELUDE_NUMBERS } from "./prelude.js";
import { RATE_ALGORITHMS, RATE_DECIDE } from "./rate.js";

/**
 * An admission in one call, all or nothing: concurrency leases (the sorted
 * sets of scripts/concurrency.ts), then rate checks (the rate script's
 * 'all' mode). Every lease is decided first, writing nothing; then the
 * rates; the leases are added only when nothing refused, so after a
 * refusal (of a limit not in shadow mode) no lease is taken and no rate
 * charged. The lease keys must be distinct.
 *
 * KEYS: the L lease sets, then the rate keys. ARGV[1] = L; then per lease:
 * now ('' for Redis TIME), lease id, ttl ('inf' for none), limit, the
 * shortest key lifetime, and 's' for a shadow limit ('0' otherwise); then
 * the rate groups as the rate script reads them.
 * Reply: per lease decided, three little-endian doubles (1 taken or 0
 * full, leases held, ms until the earliest lease expires when full), then
 * the rate script's reply for the rates decided.
 */
export const ADMIT_SCRIPT = `${PRELUDE_NUMBERS}${PRELUDE_CLOCK}${RATE_ALGORITHMS}
local nL = tonumber(ARGV[1])
local all = true
local k0, a = nL, 2 + 6 * nL
local out, o = {}, 0
local rejected = false
local function score(v)
  if v == 'inf' then return INF end
  return tonumber(v)
end
local taken, nTaken = {}, 0
for j = 1, nL do
  local b = 2 + 6 * (j - 1)
  local key = KEYS[j]
  local now = clockArg(ARGV[b])
  rcall('ZREMRANGEBYSCORE', key, '-inf', enc(now))
  local n = rcall('ZCARD', key)
  if n >= tonumber(ARGV[b + 3]) then
    local retry = 0
    local first = rcall('ZRANGE', key, 0, 0, 'WITHSCORES')
    if #first > 0 and score(first[2]) ~= INF then retry = msUntil(now, score(first[2])) end
    o = o + 1
    out[o] = spack('<ddd', 0, n, retry)
    if ARGV[b + 5] ~= 's' then
      rejected = true
      break
    end
  else
    o = o + 1
    out[o] = spack('<ddd', 1, n + 1, 0)
    nTaken = nTaken + 1
    taken[nTaken] = { key, now, b }
  end
end
${RATE_DECIDE}
if not rejected then
  for t = 1, nTaken do
    local key, now, b = taken[t][1], taken[t][2], taken[t][3]
    rcall('ZADD', key, enc(now + score(ARGV[b + 2])), ARGV[b + 1])
    local last = rcall('ZRANGE', key, -1, -1, 'WITHSCORES')
    local at = score(last[2])
    if at == INF then
      rcall('PERSIST', key)
    else
      local t2 = mceil(at - now) + 1
      local least = tonumber(ARGV[b + 4]) or 1
      if t2 < least then t2 = least end
      rcall('PEXPIRE', key, encInt(t2))
    end
  end
end
return table.concat(out)
`;

/**
 * Ends several leases in one call. KEYS: the lease sets; ARGV per key: now
 * ('' for Redis TIME), lease id. Reply: one character per lease, '1' when
 * it was held, '0' when not.
 */
export const RELEASE_ALL_SCRIPT = `${PRELUDE_NUMBERS}${PRELUDE_CLOCK}
local res = {}
for j = 1, #KEYS do
  local key = KEYS[j]
  local now = clockArg(ARGV[2 * j - 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', enc(now))
  res[j] = tostring(redis.call('ZREM', key, ARGV[2 * j]))
  if redis.call('ZCARD', key) == 0 then redis.call('DEL', key) end
end
return table.concat(res)
`;
