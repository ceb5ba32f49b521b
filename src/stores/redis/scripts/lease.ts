/** The leased-quota script: slices taken from and given back to a GCRA bucket. */
import { ONE_KEY_OP, PRELUDE } from "./prelude.js";

/**
 * Leased quotas: a GCRA bucket (the state of src/algorithms/gcra.ts) from which an instance reserves a slice at once
 * and to which it returns what it did not spend.
 *
 * KEYS[1] state key. ARGV: op ('take' | 'give' | 'peek'), now ('' for Redis
 * TIME), spec "<interval> <tolerance> <burst> <ttlFloor>", amount, least.
 *   take  grants min(amount, whole units available) if that is at least
 *         `least`, else nothing and the wait until `least` units are there
 *   give  moves the arrival time back by `amount` units (never before now)
 *   peek  reports the units available
 * Reply: one string "granted retryAfterMs available".
 */
export const LEASE_SCRIPT = `${PRELUDE}${ONE_KEY_OP}local p = split(ARGV[3])
local iv, tol, burst, floor = p[1], p[2], p[3], p[4]
local amount = tonumber(ARGV[4])
-- State {debt, at} as in gcra.ts: the debt (ms of emission time owed) as of
-- clock reading 'at', relative so that high rates keep their precision.
local raw = redis.call('GET', key)
local st = { unpackGcra(raw) }
local elapsed = now - st[2]
if not (elapsed > 0) then elapsed = 0 end
local debt = st[1] - elapsed
if debt < 0 then debt = 0 end
local slack = iv * 1e-9 + (burst + 4) * 2 ^ -52 * tol
local function available(d)
  local r = math.floor((tol + slack - d) / iv)
  if r < 0 then return 0 end
  if r > burst then return math.floor(burst) end
  return r
end
local function save()
  local at = st[2]
  if now > at then at = now end
  redis.call('SET', key, packGcra(debt, at), 'PX', ttlMs(debt, floor))
end
local granted = 0
local retry = 0
if op == 'take' then
  local avail = available(debt)
  local least = tonumber(ARGV[5]) or 1
  if least > amount then least = amount end
  granted = amount
  if avail < granted then granted = avail end
  if granted < least then granted = 0 end
  if granted > 0 then
    debt = debt + granted * iv
    save()
  else
    retry = math.ceil(debt + least * iv - tol - slack)
    if retry < 1 then retry = 1 end
  end
elseif op == 'give' then
  if raw then
    debt = debt - amount * iv
    if debt < 0 then debt = 0 end
    save()
  end
end
return enc(granted) .. ' ' .. enc(retry) .. ' ' .. enc(available(debt))
`;
