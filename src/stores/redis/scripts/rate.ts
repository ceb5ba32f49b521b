import { PRELUDE } from "./prelude.js";

/**
 * The rate algorithms of src/algorithms (gcra.ts, fixed-window.ts,
 * sliding-window.ts) ported line by line: same state, same arithmetic, same
 * rounding, so the Redis store answers exactly what the memory store does.
 *
 * One call decides many operations (a batch of the checks that arrived in
 * one tick). KEYS[i] is the state key of operation i. ARGV[1] is 'each'
 * (independent operations) or 'all' (a composite check: stop at the first
 * rejection and write nothing). Then groups of operations sharing a limit:
 *   spec   algorithm and parameters, e.g. "g <interval> <tolerance> <burst> <ttlFloor>"
 *   now    the caller's clock, or '' for Redis TIME
 *   flag   '1' peek (answer without consuming); 's' a shadow limit, whose
 *          rejection does not stop an 'all' call; '0' otherwise
 *   n      operations in the group, followed by their n costs
 * State of every key is read by one MGET, updated in a Lua table as operations on
 * it are applied in order, and written once with a TTL that ends when the
 * state would read as fresh.
 *
 * Reply: one string of five space-separated fields per operation decided
 * (one string parses faster than hundreds of bulk replies):
 *   allowed (1/0), remaining, resetMs, retryAfterMs, reason ('-' when allowed).
 */
export const RATE_SCRIPT = `${PRELUDE}
-- Locals, not global lookups: these run several times per operation.
local mfloor, mceil = math.floor, math.ceil
local specs = {}
local function spec(str)
  local s = specs[str]
  if s then return s end
  s = {}
  local i = 0
  for w in string.gmatch(str, '%S+') do
    i = i + 1
    if i == 1 then s.kind = w else s[i - 1] = tonumber(w) end
  end
  specs[str] = s
  return s
end

-- GCRA: state {debt, at}: the debt (ms of emission time owed) as of clock
-- reading 'at' (relative on purpose, see gcra.ts); spec {interval, tolerance, burst, floor}
local function debtAt(st, now)
  local elapsed = now - st[2]
  if not (elapsed > 0) then elapsed = 0 end
  local d = st[1] - elapsed
  if d > 0 then return d end
  return 0
end
local function gcraSlack(p)
  if not p.slack then p.slack = p[1] * 1e-9 + (p[3] + 4) * 2 ^ -52 * p[2] end
  return p.slack
end
local function gcraRemaining(debt, slack, iv, tol, burst)
  local r = mfloor((tol + slack - debt) / iv)
  if r < 0 then return 0 end
  if r > burst then return mfloor(burst) end
  return r
end
local function gcraWait(debt, need, slack, tol)
  local r = mceil(debt + need - tol - slack)
  if r < 1 then r = 1 end
  -- Verified with the arithmetic a later check will use (bounded, to keep the script short).
  for _ = 1, 64 do
    local left = debt - r
    if left < 0 then left = 0 end
    if not (left + need > tol + slack) then break end
    r = r + 1
  end
  return r
end
local function gcra(st, now, cost, p, write)
  local iv, tol, burst = p[1], p[2], p[3]
  local debt = debtAt(st, now)
  local slack = gcraSlack(p)
  if cost > burst then
    return 0, gcraRemaining(debt, slack, iv, tol, burst), debt, 0, 'insufficient_capacity'
  end
  local need = cost * iv
  if debt + need > tol + slack then
    return 0, gcraRemaining(debt, slack, iv, tol, burst), debt, gcraWait(debt, need, slack, tol), 'rate_limited'
  end
  if not write then return 1, gcraRemaining(debt, slack, iv, tol, burst), debt, 0, '-' end
  st[1] = debt + need
  -- Never move the reference back: that would count the same time twice.
  if now > st[2] then st[2] = now end
  return 1, gcraRemaining(debt + need, slack, iv, tol, burst), debt + need, 0, '-'
end

-- Fixed window: state {start, count}; spec {permitLimit, windowMs, floor}
local function fixed(st, now, cost, p, write)
  local pl, w = p[1], p[2]
  local aligned = mfloor(now / w) * w
  local start = st[1]
  if aligned > start then start = aligned end
  local used = 0
  if start == st[1] then used = st[2] end
  local e = start + w
  if cost > pl then return 0, pl - used, e - now, 0, 'insufficient_capacity' end
  if used + cost > pl then return 0, pl - used, e - now, msUntil(now, e), 'rate_limited' end
  if not write then return 1, pl - used, e - now, 0, '-' end
  st[1] = start
  st[2] = used + cost
  return 1, pl - used - cost, e - now, 0, '-'
end

-- Sliding window: state {start, curr, prev}; spec {limit, windowMs, floor}
local function roll(st, now, w)
  local stored = st[1]
  local aligned = mfloor(now / w) * w
  if not (aligned > stored) then return stored, st[2], st[3] end
  if aligned - stored == w then return aligned, 0, st[2] end
  return aligned, 0, 0
end
local function estimate(start, curr, prev, now, w)
  local elapsed = now - start
  if elapsed < 0 then elapsed = 0 end
  if elapsed > w then elapsed = w end
  return prev * (1 - elapsed / w) + curr
end
local function allowTime(start, curr, prev, cost, lim, w)
  local room = lim - curr - cost
  if room >= 0 then
    if prev <= room then return start end
    return start + w * (1 - room / prev)
  end
  local nextRoom = lim - cost
  return start + w + w * (1 - nextRoom / curr)
end
local function sliding(st, now, cost, p, write)
  local lim, w = p[1], p[2]
  local start, curr, prev = roll(st, now, w)
  local est = estimate(start, curr, prev, now, w)
  local remaining = mfloor(lim - est + 1e-9)
  if remaining < 0 then remaining = 0 end
  local resetAt = start + w
  if curr > 0 then resetAt = start + 2 * w end
  local reset = resetAt - now
  if reset < 0 then reset = 0 end
  if cost > lim then return 0, remaining, reset, 0, 'insufficient_capacity' end
  if est + cost > lim + 1e-9 then
    local r = msUntil(now, allowTime(start, curr, prev, cost, lim, w))
    for _ = 1, 4 do
      local t = now + r
      local ls, lc, lp = roll(st, t, w)
      if estimate(ls, lc, lp, t, w) + cost <= lim + 1e-9 then break end
      r = r + 1
    end
    if r < 1 then r = 1 end
    return 0, remaining, reset, r, 'rate_limited'
  end
  if not write then return 1, remaining, reset, 0, '-' end
  st[1] = start
  st[2] = curr + cost
  st[3] = prev
  local after = mfloor(lim - est - cost + 1e-9)
  if after < 0 then after = 0 end
  return 1, after, reset, 0, '-'
end

local ALGO = {
  g = { width = 2, run = gcra, init = function() return { 0, -INF } end,
        idle = function(st, now, p) return debtAt(st, now) end },
  f = { width = 2, run = fixed, init = function() return { -INF, 0 } end,
        idle = function(st, now, p) return st[1] + p[2] - now end },
  s = { width = 3, run = sliding, init = function() return { -INF, 0, 0 } end,
        idle = function(st, now, p) return st[1] + 2 * p[2] - now end },
}

local all = ARGV[1] == 'all'
-- One MGET for every key of the call instead of a GET per key.
local raws = {}
do
  local distinct, seen = {}, {}
  for k = 1, #KEYS do
    local key = KEYS[k]
    if not seen[key] then
      seen[key] = true
      distinct[#distinct + 1] = key
    end
  end
  local vals = redis.call('MGET', unpack(distinct))
  for k = 1, #distinct do raws[distinct[k]] = vals[k] end
end
local states = {}
local order = {}
local out = {}
local rejected = false
local a = 2
local i = 0
while a <= #ARGV and not rejected do
  local p = spec(ARGV[a])
  local now = clockArg(ARGV[a + 1])
  local flag = ARGV[a + 2]
  local n = tonumber(ARGV[a + 3])
  a = a + 4
  local algo = ALGO[p.kind]
  local write = flag ~= '1'
  for _ = 1, n do
    i = i + 1
    local key = KEYS[i]
    local cost = tonumber(ARGV[a])
    a = a + 1
    local entry = states[key]
    if not entry then
      local raw = raws[key]
      local st
      if raw then st = split(raw) end
      -- A value of another shape (an older format, foreign data under the prefix) reads as a fresh key.
      if not st or #st ~= algo.width then st = algo.init() end
      entry = { st = st, algo = algo, p = p, dirty = false, now = now }
      states[key] = entry
      order[#order + 1] = key
    end
    local ok, rem, reset, retry, reason = algo.run(entry.st, now, cost, p, write)
    if ok == 1 and write then
      entry.dirty = true
      entry.now = now
    end
    local o = #out
    -- Text, not the number: table.concat would format a number for every operation.
    if ok == 1 then out[o + 1] = '1' else out[o + 1] = '0' end
    out[o + 2] = encInt(rem)
    out[o + 3] = enc(reset)
    out[o + 4] = encInt(retry)
    out[o + 5] = reason
    if ok == 0 and all and flag ~= 's' then
      rejected = true
      break
    end
  end
end
if not rejected then
  for _, key in ipairs(order) do
    local e = states[key]
    if e.dirty then
      local p = e.p
      redis.call('SET', key, join(e.st, e.algo.width), 'PX', ttlMs(e.algo.idle(e.st, e.now, p), p[#p]))
    end
  end
end
return table.concat(out, ' ')
`;
