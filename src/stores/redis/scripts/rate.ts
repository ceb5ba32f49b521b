/** The rate script: the rate algorithms of src/algorithms, batched. */
import { PRELUDE_CLOCK, PRELUDE_NUMBERS } from "./prelude.js";

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
 * State of every key is read by one MGET, updated in Lua as operations on it
 * are applied in order, and written once (packed doubles, see below) with a
 * TTL that ends no sooner than the state would read as fresh and at most one
 * TTL floor later.
 *
 * Redis runs a script's top level on every call, and its Lua interpreter is
 * slow per instruction, so the script is written for few instructions and
 * allocations per operation: an algorithm's functions are built only when a
 * call uses it, GCRA checks of cost 1 run inlined, and each operation's
 * answer is packed once.
 *
 * Reply: one binary string of little-endian doubles (exact, and read without
 * parsing text), per operation decided: code (1 allowed, 2 rejected as
 * rate_limited, 3 as insufficient_capacity), remaining, resetMs,
 * retryAfterMs; or, for an allowed GCRA check of cost 1, code 4 and the
 * debt (its resetMs), from which the caller derives remaining.
 */
export const RATE_ALGORITHMS = `
-- Locals, not global lookups: these run several times per operation.
local mfloor, mceil = math.floor, math.ceil
local spack, sunpack, sbyte = struct.pack, struct.unpack, string.byte
local KEYS, ARGV, rcall = KEYS, ARGV, redis.call


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
  -- The last parameter of every spec: the shortest lifetime of a key.
  s.floor = s[i - 1]
  -- GCRA's rounding allowance (gcra.ts slackMs), once per limit and call.
  if s.kind == 'g' then s.slack = s[1] * 1e-9 + (s[3] + 4) * 2 ^ -52 * s[2] end
  specs[str] = s
  return s
end

-- Stored values: a tag byte naming the algorithm, its numbers as
-- little-endian doubles (exact, like the memory store's Float64Array; text
-- cost most of a decision's time), then the expiry the key was last given
-- (Redis ms). Knowing that expiry lets a write that needs no later one keep
-- the TTL (SET ... KEEPTTL): replacing a key's expiry is a third of a
-- write's cost in Redis. Values without the expiry (the format before it)
-- still load, with expiry 0.
-- Each algorithm: tag, n (numbers of state), size / old (value lengths with
-- and without the expiry), a / b / c (a fresh state), run (decide), give
-- (refund), idle (ms until the state reads as fresh), save (the value).
local ALGO = {}
local G
local function algorithm(kind)
  local al = ALGO[kind]
  if al then return al end
  if kind == 'g' then
    -- GCRA: state {debt, at}: the debt (ms of emission time owed) as of clock
    -- reading 'at' (relative on purpose, see gcra.ts); spec {interval, tolerance, burst, floor}
    local function remaining(debt, slack, iv, tol, burst)
      local r = mfloor((tol + slack - debt) / iv)
      if r < 0 then return 0 end
      if r > burst then return mfloor(burst) end
      return r
    end
    local function wait(debt, need, slack, tol)
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
    local function run(st, now, cost, p, write)
      local iv, tol, burst, slack = p[1], p[2], p[3], p.slack
      -- The debt now (gcra.ts debtAt): elapsed time pays it off, never below zero.
      local debt = st[1]
      local elapsed = now - st[2]
      if elapsed > 0 then debt = debt - elapsed end
      if not (debt > 0) then debt = 0 end
      if cost > burst then
        return 0, remaining(debt, slack, iv, tol, burst), debt, 0, 'insufficient_capacity'
      end
      local need = cost * iv
      if debt + need > tol + slack then
        return 0, remaining(debt, slack, iv, tol, burst), debt, wait(debt, need, slack, tol), 'rate_limited'
      end
      if not write then return 1, remaining(debt, slack, iv, tol, burst), debt, 0, '-' end
      debt = debt + need
      st[1] = debt
      -- Never move the reference back: that would count the same time twice.
      if now > st[2] then st[2] = now end
      return 1, remaining(debt, slack, iv, tol, burst), debt, 0, '-'
    end
    -- Refunds give back a cost charged moments ago (a composite check on
    -- Cluster charges its limits one by one and refunds them when another
    -- rejects). What a window that has moved on holds is not given back.
    local function give(st, now, cost, p)
      local debt = st[1]
      local elapsed = now - st[2]
      if elapsed > 0 then debt = debt - elapsed end
      debt = debt - cost * p[1]
      if not (debt > 0) then debt = 0 end
      st[1] = debt
      if now > st[2] then st[2] = now end
    end
    al = { tag = 71, n = 2, size = 25, old = 17, a = 0, b = -INF, run = run, give = give,
           -- After a write 'at' is at least the writing 'now': the debt is S1.
           idle = function(st) return st[1] end,
           save = function(st, exp) return spack('<Bddd', 71, st[1], st[2], exp) end }
    G = al
  elseif kind == 'f' then
    -- Fixed window: state {start, count}; spec {permitLimit, windowMs, floor}
    local function run(st, now, cost, p, write)
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
    local function give(st, now, cost, p)
      if mfloor(now / p[2]) * p[2] > st[1] then return end
      local left = st[2] - cost
      if left < 0 then left = 0 end
      st[2] = left
    end
    al = { tag = 70, n = 2, size = 25, old = 17, a = -INF, b = 0, run = run, give = give,
           idle = function(st, now, p) return st[1] + p[2] - now end,
           save = function(st, exp) return spack('<Bddd', 70, st[1], st[2], exp) end }
  elseif kind == 's' then
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
    local function run(st, now, cost, p, write)
      local lim, w = p[1], p[2]
      local start, curr, prev = roll(st, now, w)
      local est = estimate(start, curr, prev, now, w)
      local rem = mfloor(lim - est + 1e-9)
      if rem < 0 then rem = 0 end
      local resetAt = start + w
      if curr > 0 then resetAt = start + 2 * w end
      local reset = resetAt - now
      if reset < 0 then reset = 0 end
      if cost > lim then return 0, rem, reset, 0, 'insufficient_capacity' end
      if est + cost > lim + 1e-9 then
        local r = msUntil(now, allowTime(start, curr, prev, cost, lim, w))
        -- Rounding can put the instant a hair off either way: forward until it fits, back while 1 ms earlier fits.
        local function fitsAfter(after)
          local t = now + after
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
        return 0, rem, reset, r, 'rate_limited'
      end
      if not write then return 1, rem, reset, 0, '-' end
      st[1] = start
      st[2] = curr + cost
      st[3] = prev
      local after = mfloor(lim - est - cost + 1e-9)
      if after < 0 then after = 0 end
      return 1, after, reset, 0, '-'
    end
    local function give(st, now, cost, p)
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
    al = { tag = 83, n = 3, size = 33, old = 25, a = -INF, b = 0, c = 0, run = run, give = give,
           idle = function(st, now, p) return st[1] + 2 * p[2] - now end,
           save = function(st, exp) return spack('<Bdddd', 83, st[1], st[2], st[3], exp) end }
  else
    error('unknown algorithm ' .. tostring(kind))
  end
  ALGO[kind] = al
  return al
end

-- Reply codes of a rejection (rate-batcher.ts reads them back).
local REASON = { rate_limited = 2, insufficient_capacity = 3 }
`;

/**
 * The decisions, for a script that has set: \`all\` (stop at the first
 * rejection of a limit not in shadow mode), \`k0\` (KEYS before the rate
 * keys), \`a\` (the ARGV index of the first group), \`out\` / \`o\` (each
 * operation's answer packed once: code, remaining, resetMs, retryAfterMs)
 * and \`rejected\` (a refusal before the rates: decide nothing, write nothing).
 */
export const RATE_DECIDE = `
-- One MGET for every key of the call (a repeated key is read again, which
-- costs Redis less than removing duplicates here).
local vals = #KEYS > k0 and rcall('MGET', unpack(KEYS, k0 + 1)) or {}
-- Per key, one table: st = { s1, s2, s3, savedNow|false, algorithm, spec,
-- key, expiry }: the algorithm's numbers, the clock reading of the last
-- write (false: nothing to write), the limit, and the expiry the key has
-- (Redis ms, 0 when unknown). Written back in the order first seen.
local states = {}
local order, nOrder = {}, 0
-- The state of KEYS[i] as MGET read it. A value of another shape (another
-- algorithm, foreign data under the prefix) reads as a fresh key.
local function load(i, key, al, p)
  local raw = vals[i - k0]
  local len = raw and #raw
  local st
  if len == al.size and sbyte(raw) == al.tag then
    if al.n == 2 then
      local x, y, e = sunpack('<ddd', raw, 2)
      st = { x, y, 0, false, al, p, key, e }
    else
      local x, y, z, e = sunpack('<dddd', raw, 2)
      st = { x, y, z, false, al, p, key, e }
    end
  elseif len == al.old and sbyte(raw) == al.tag then
    local x, y, z = sunpack(al.n == 2 and '<dd' or '<ddd', raw, 2)
    if al.n == 2 then z = 0 end
    st = { x, y, z, false, al, p, key, 0 }
  else
    st = { al.a, al.b, al.c, false, al, p, key, 0 }
  end
  states[key] = st
  nOrder = nOrder + 1
  order[nOrder] = st
  return st
end
local i = k0
local nArgs = #ARGV
while a <= nArgs and not rejected do
  local p = spec(ARGV[a])
  local now = clockArg(ARGV[a + 1])
  local flag = ARGV[a + 2]
  local n = tonumber(ARGV[a + 3])
  local unit = ARGV[a + 4] == '1'
  a = a + 5
  local al = algorithm(p.kind)
  local write = flag ~= '1'
  local refund = flag == 'r'
  local stop = all and flag ~= 's'
  if al == G and unit and not refund then
    -- The common case, GCRA checks of cost 1: run() inlined up to its
    -- verdict; rejections take the general way.
    local iv, burst = p[1], p[3]
    local room = p[2] + p.slack
    for _ = 1, n do
      i = i + 1
      local key = KEYS[i]
      local st = states[key] or load(i, key, al, p)
      local debt = st[1]
      local elapsed = now - st[2]
      if elapsed > 0 then debt = debt - elapsed end
      if not (debt > 0) then debt = 0 end
      if 1 > burst or debt + iv > room then
        local _, rem, reset, retry, reason = al.run(st, now, 1, p, write)
        o = o + 1
        out[o] = spack('<dddd', REASON[reason], rem, reset, retry)
        if stop then
          rejected = true
          break
        end
      else
        if write then
          debt = debt + iv
          st[1] = debt
          if now > st[2] then st[2] = now end
          st[4] = now
        end
        -- Code 4: remaining is derived from the debt in Node (rate-batcher.ts),
        -- with the same parameters and arithmetic; half the reply to pack.
        o = o + 1
        out[o] = spack('<dd', 4, debt)
      end
    end
  else
    local run = al.run
    for _ = 1, n do
      i = i + 1
      local key = KEYS[i]
      local cost = 1
      if not unit then
        local c = ARGV[a]
        if c ~= '1' then cost = tonumber(c) end
        a = a + 1
      end
      local st = states[key] or load(i, key, al, p)
      local ok, rem, reset, retry, reason
      if refund then
        al.give(st, now, cost, p)
        ok, rem, reset, retry, reason = 1, 0, 0, 0, '-'
      else
        ok, rem, reset, retry, reason = run(st, now, cost, p, write)
      end
      local code = 1
      if ok == 1 then
        if write then st[4] = now end
      else
        code = REASON[reason]
      end
      o = o + 1
      out[o] = spack('<dddd', code, rem, reset, retry)
      if ok == 0 and stop then
        rejected = true
        break
      end
    end
  end
end
if not rejected then
  -- Expiries are Redis time (TIME, read once per call) even when the limit
  -- runs on an injected clock: only the TTL's length comes from the state.
  local base
  for j = 1, nOrder do
    local st = order[j]
    local savedNow = st[4]
    if savedNow then
      local al, p = st[5], st[6]
      local least = p.floor
      local t
      if al == G then t = st[1] else t = al.idle(st, savedNow, p) end
      t = mceil(t) + 1
      if t < least then t = least end
      base = base or floor(redisNow())
      local exp = st[8]
      local keep = exp >= base + t
      -- A new expiry gets one floor of headroom, so that the writes of the
      -- next floor's worth of time can keep it.
      if not keep then exp = base + t + least end
      local v
      if al == G then v = spack('<Bddd', 71, st[1], st[2], exp) else v = al.save(st, exp) end
      if keep then
        rcall('SET', st[7], v, 'KEEPTTL')
      else
        rcall('SET', st[7], v, 'PXAT', encInt(exp))
      end
    end
  end
end
`;

export const RATE_SCRIPT = `${PRELUDE_NUMBERS}${PRELUDE_CLOCK}${RATE_ALGORITHMS}
local all = ARGV[1] == 'all'
local k0, a = 0, 2
local out, o = {}, 0
local rejected = false
${RATE_DECIDE}
return table.concat(out)
`;
