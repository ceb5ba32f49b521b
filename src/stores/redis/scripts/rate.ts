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
 *          rejection does not stop an 'all' call; 'r' refund (give back a
 *          cost charged moments ago, answered as allowed); '0' otherwise
 *   n      operations in the group
 *   unit   '1': every cost is 1 and no costs follow (the common case: half
 *          the arguments Redis would parse); '0': the n costs follow
 * State of every key is read by one MGET, updated in a Lua table as operations on
 * it are applied in order, and written once (packed doubles, see below) with
 * a TTL that ends when the state would read as fresh.
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
  -- GCRA's rounding allowance (gcra.ts slackMs), once per limit and call.
  if s.kind == 'g' then s.slack = s[1] * 1e-9 + (s[3] + 4) * 2 ^ -52 * s[2] end
  specs[str] = s
  return s
end

-- GCRA: state {debt, at}: the debt (ms of emission time owed) as of clock
-- reading 'at' (relative on purpose, see gcra.ts); spec {interval, tolerance, burst, floor}
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
  local iv, tol, burst, slack = p[1], p[2], p[3], p.slack
  -- The debt now (gcra.ts debtAt): elapsed time pays it off, never below zero.
  local debt = st[1]
  local elapsed = now - st[2]
  if elapsed > 0 then debt = debt - elapsed end
  if not (debt > 0) then debt = 0 end
  if cost > burst then
    return 0, gcraRemaining(debt, slack, iv, tol, burst), debt, 0, 'insufficient_capacity'
  end
  local need = cost * iv
  if debt + need > tol + slack then
    return 0, gcraRemaining(debt, slack, iv, tol, burst), debt, gcraWait(debt, need, slack, tol), 'rate_limited'
  end
  if not write then return 1, gcraRemaining(debt, slack, iv, tol, burst), debt, 0, '-' end
  debt = debt + need
  st[1] = debt
  -- Never move the reference back: that would count the same time twice.
  if now > st[2] then st[2] = now end
  return 1, gcraRemaining(debt, slack, iv, tol, burst), debt, 0, '-'
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
    -- Rounding can put the instant a hair off either way: forward until it fits, back while 1 ms earlier fits.
    local function fitsAfter(wait)
      local t = now + wait
      local ls, lc, lp = roll(st, t, w)
      return estimate(ls, lc, lp, t, w) + cost <= lim + 1e-9
    end
    for _ = 1, 4 do
      if fitsAfter(r) then break end
      r = r + 1
    end
    for _ = 1, 2 do
      if r <= 1 or not fitsAfter(r - 1) then break end
      r = r - 1
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

-- Refunds give back a cost charged moments ago (a composite check on
-- Cluster charges its limits one by one and refunds them when another
-- rejects). What a window that has moved on holds is not given back.
local function gcraGive(st, now, cost, p)
  local debt = st[1]
  local elapsed = now - st[2]
  if elapsed > 0 then debt = debt - elapsed end
  debt = debt - cost * p[1]
  if not (debt > 0) then debt = 0 end
  st[1] = debt
  if now > st[2] then st[2] = now end
end
local function fixedGive(st, now, cost, p)
  if mfloor(now / p[2]) * p[2] > st[1] then return end
  local left = st[2] - cost
  if left < 0 then left = 0 end
  st[2] = left
end
local function slidingGive(st, now, cost, p)
  local w = p[2]
  local start, curr, prev = roll(st, now, w)
  if start == st[1] then
    curr = curr - cost
    if curr < 0 then curr = 0 end
  elseif start - st[1] == w then
    prev = prev - cost
    if prev < 0 then prev = 0 end
  end
  st[1] = start
  st[2] = curr
  st[3] = prev
end

-- State is stored packed: a tag byte naming the algorithm, then its numbers
-- as little-endian doubles (as packGcra in the prelude; exact, like the
-- memory store's Float64Array). Text cost most of a decision's time.
local spack, sunpack, sbyte = struct.pack, struct.unpack, string.byte
local function load2(raw) return sunpack('<dd', raw, 2) end
local function load3(raw) return sunpack('<ddd', raw, 2) end
local ALGO = {
  g = { tag = 71, size = 17, load = load2, run = gcra, give = gcraGive, a = 0, b = -INF,
        save = function(st) return packGcra(st[1], st[2]) end,
        -- After a write 'at' is at least the writing 'now': the debt is st[1].
        idle = function(st, now, p) return st[1] end },
  f = { tag = 70, size = 17, load = load2, run = fixed, give = fixedGive, a = -INF, b = 0,
        save = function(st) return spack('<Bdd', 70, st[1], st[2]) end,
        idle = function(st, now, p) return st[1] + p[2] - now end },
  s = { tag = 83, size = 25, load = load3, run = sliding, give = slidingGive, a = -INF, b = 0, c = 0,
        save = function(st) return spack('<Bddd', 83, st[1], st[2], st[3]) end,
        idle = function(st, now, p) return st[1] + 2 * p[2] - now end },
}

local all = ARGV[1] == 'all'
-- One MGET for every key of the call (a repeated key is read again, which
-- costs Redis less than removing duplicates here).
local vals = redis.call('MGET', unpack(KEYS))
-- Per key: st = { s1, s2, s3, savedNow|false, algo, spec, key }, one table.
local states = {}
local order, nOrder = {}, 0
local out = {}
local o = 0
local rejected = false
local a = 2
local i = 0
local nArgs = #ARGV
while a <= nArgs and not rejected do
  local p = spec(ARGV[a])
  local now = clockArg(ARGV[a + 1])
  local flag = ARGV[a + 2]
  local n = tonumber(ARGV[a + 3])
  local unit = ARGV[a + 4] == '1'
  a = a + 5
  local algo = ALGO[p.kind]
  local run = algo.run
  local write = flag ~= '1'
  local refund = flag == 'r'
  for _ = 1, n do
    i = i + 1
    local key = KEYS[i]
    local cost = 1
    if not unit then
      local c = ARGV[a]
      if c ~= '1' then cost = tonumber(c) end
      a = a + 1
    end
    local st = states[key]
    if not st then
      local raw = vals[i]
      -- A value of another shape (another algorithm, an older format,
      -- foreign data under the prefix) reads as a fresh key.
      if raw and #raw == algo.size and sbyte(raw) == algo.tag then
        local x, y, z = algo.load(raw)
        st = { x, y, z, false, algo, p, key }
      else
        st = { algo.a, algo.b, algo.c, false, algo, p, key }
      end
      states[key] = st
      nOrder = nOrder + 1
      order[nOrder] = st
    end
    local ok, rem, reset, retry, reason
    if refund then
      algo.give(st, now, cost, p)
      ok, rem, reset, retry, reason = 1, 0, 0, 0, '-'
    else
      ok, rem, reset, retry, reason = run(st, now, cost, p, write)
    end
    -- Text, not the number: table.concat would format a number for every operation.
    if ok == 1 then
      if write then st[4] = now end
      out[o + 1] = '1'
    else
      out[o + 1] = '0'
    end
    out[o + 2] = encInt(rem)
    out[o + 3] = enc(reset)
    out[o + 4] = encInt(retry)
    out[o + 5] = reason
    o = o + 5
    if ok == 0 and all and flag ~= 's' then
      rejected = true
      break
    end
  end
end
if not rejected then
  for j = 1, nOrder do
    local st = order[j]
    local savedNow = st[4]
    if savedNow then
      local algo, p = st[5], st[6]
      redis.call('SET', st[7], algo.save(st), 'PX', ttlMs(algo.idle(st, savedNow, p), p[#p]))
    end
  end
end
return table.concat(out, ' ')
`;
