/**
 * Lua shared by every script: number encoding and the rounding helper of
 * src/algorithms/outcome.ts. State is kept as space-separated numbers in
 * `%.17g` (round-trips a double exactly, so Redis and memory states agree bit
 * for bit); ±Infinity are spelled out because Lua's formatting of them is
 * platform-defined. Replies are strings too: Redis would truncate a Lua
 * number to an integer. Rate and lease state (read and written for every
 * decision) is packed binary instead: see packGcra.
 *
 * A script's top level runs on every call, so every function defined here
 * is built again each time: the rate script takes only the parts it uses.
 */

/** Infinity and the text encoding of numbers (each value formatted once per call). */
export const PRELUDE_NUMBERS = `
local INF = math.huge
-- %.17g costs a sprintf; a call encodes the same values again and again
-- (the clock reading of every key, a new state and its resetMs), so each
-- distinct value is formatted once per call.
local encoded = {}
local function enc(x)
  if x ~= x then return 'nan' end
  local s = encoded[x]
  if s then return s end
  if x == -INF then s = '-inf' elseif x == INF then s = 'inf' else s = string.format('%.17g', x) end
  encoded[x] = s
  return s
end
-- Integers of up to 14 digits print exactly (and faster) with tostring (%.14g).
-- A batch repeats the same few integers (remaining, retry 0, TTLs), so each
-- is formatted once per call; zero keeps its sign, which a table key would lose.
local floor = math.floor
local ints = {}
local function encInt(x)
  local s = ints[x]
  if s then return s end
  if x ~= x then return 'nan' end
  if x == 0 then
    if 1 / x < 0 then return '-0' end
    return '0'
  end
  if x == floor(x) and x > -1e14 and x < 1e14 then s = tostring(x) else s = enc(x) end
  ints[x] = s
  return s
end
`;

/** The clock: Redis TIME (read once per call) or the caller's, and the rounding of waits. */
export const PRELUDE_CLOCK = `
local function msUntil(now, at)
  if not (at > now) then return 0 end
  local r = math.ceil(at - now)
  if now + r < at then r = r + 1 end
  return r
end
local tnow
-- Redis TIME is the shared clock: gateways with skewed clocks agree.
local function redisNow()
  if not tnow then
    local t = redis.call('TIME')
    tnow = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
  end
  return tnow
end
local function clockArg(v)
  if v == nil or v == '' then return redisNow() end
  return tonumber(v)
end
`;

/** The whole prelude, for the scripts that read and write text state and keys one at a time. */
export const PRELUDE = `${PRELUDE_NUMBERS}
local function dec(v)
  if v == '-inf' then return -INF end
  if v == 'inf' then return INF end
  return tonumber(v)
end
local function split(str)
  local sp = string.find(str, ' ', 1, true)
  if not sp then return { dec(str) } end
  local out = {}
  for w in string.gmatch(str, '%S+') do out[#out + 1] = dec(w) end
  return out
end
local function join(t, n)
  if n == 1 then return enc(t[1]) end
  if n == 2 then return enc(t[1]) .. ' ' .. enc(t[2]) end
  local parts = {}
  for i = 1, n do parts[i] = enc(t[i]) end
  return table.concat(parts, ' ')
end
-- GCRA state {debt, at} packed as the tag byte 'G' and two little-endian
-- doubles: exact like %.17g text, but struct.pack / unpack are single C
-- calls where text costs a format per number written and a parse per read.
local function packGcra(debt, at) return struct.pack('<Bdd', 71, debt, at) end
-- The rate script appends the key's expiry (25 bytes in all); anything else
-- under the key (another algorithm, foreign data) reads as a fresh bucket.
local function unpackGcra(raw)
  if raw and (#raw == 17 or #raw == 25) and string.byte(raw) == 71 then
    local debt, at = struct.unpack('<dd', raw, 2)
    return debt, at
  end
  return 0, -INF
end
${PRELUDE_CLOCK}-- Milliseconds of key lifetime: until the state reads as fresh, never below the floor.
-- Returned as text (formatted once per value): a Lua number argument to
-- redis.call would be formatted again for every key.
local function ttlMs(idle, least)
  local t = math.ceil(idle) + 1
  if t < least then t = least end
  return encInt(t)
end
`;

/**
 * The head of the scripts that run one operation on one key (concurrency,
 * lease, penalty): KEYS[1] the key, ARGV[1] the operation, ARGV[2] the clock
 * ('' for Redis TIME). Follows PRELUDE.
 */
export const ONE_KEY_OP = `
local key = KEYS[1]
local op = ARGV[1]
local now = clockArg(ARGV[2])
`;
