/** The penalty-box scripts: its transitions and the listing of live bans. */
import { ONE_KEY_OP, PRELUDE } from "./prelude.js";

/**
 * The penalty box of src/algorithms/penalty-box.ts ported line by line
 * (seven numbers of state per key: streak, lastFailure, throttledUntil,
 * windowStart, windowCount, bannedUntil, bans).
 *
 * KEYS[1] state key. ARGV: op ('fail' | 'ban' | 'restore' | 'status' |
 * 'forget'), now ('' for Redis TIME), params "throttleAfter backoffBase
 * backoffMax banFailures banWindow banDuration banMultiplier banMax
 * retention ttlFloor", duration (for 'ban': '' for the escalating length;
 * for 'restore': the ms the ban has left), channel, the subject key (for the
 * message), and for 'restore' the ban count the ban was given and '1' if
 * the key was forgotten before that ban (the stored record is replaced).
 * A ban that starts or is lengthened, and a forget, are published on the
 * channel ("b <until> <key>" / "u <key>") so every instance updates its cache.
 *
 * 'restore' writes back a ban made while Redis was unavailable: the ban ends
 * at the later of the stored end and now + the time it has left (never
 * restarted at full length). It counts as one more ban only if the key was
 * not banned already, so writing the same ban back twice never escalates
 * twice; a higher count given wins.
 *
 * Reply: one string "streak throttledUntil bannedUntil bans bannedNow now".
 */
export const PENALTY_SCRIPT = `${PRELUDE}${ONE_KEY_OP}local p = split(ARGV[3])
local throttleAfter, base, maxB, banFailures, banWindow, banDur, mult, banMax, retention, floor =
  p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10]
local channel = ARGV[5]
local subject = ARGV[6]

local function fresh() return { 0, -INF, -INF, -INF, 0, -INF, 0 } end
local function quietAt(s) return math.max(s[2], s[6]) + retention end
local function backoff(streak)
  if streak < throttleAfter then return 0 end
  local e = streak - throttleAfter
  if e > 60 then return maxB end
  return math.min(base * 2 ^ e, maxB)
end
local function banLength(bans)
  if bans > 60 then return banMax end
  return math.min(banDur * mult ^ bans, banMax)
end

if op == 'forget' then
  local existed = redis.call('DEL', key)
  redis.call('PUBLISH', channel, 'u ' .. subject)
  return tostring(existed) .. ' ' .. enc(now)
end

local raw = redis.call('GET', key)
local s
if raw then s = split(raw) end
if not s or #s ~= 7 then s = fresh() end
if now >= quietAt(s) then s = fresh() end
if op == 'restore' and ARGV[8] == '1' then s = fresh() end
local started = 0

if op == 'fail' then
  local streak = s[1] + 1
  s[1] = streak
  s[2] = now
  if streak >= throttleAfter then s[3] = now + backoff(streak) end
  if not (now - s[4] < banWindow) then
    s[4] = now
    s[5] = 0
  end
  s[5] = s[5] + 1
  if s[5] >= banFailures and not (s[6] > now) then
    s[6] = now + banLength(s[7])
    s[7] = s[7] + 1
    s[4] = -INF
    s[5] = 0
    started = 1
  end
elseif op == 'ban' then
  local d = ARGV[4]
  local untilT
  if d == nil or d == '' then untilT = now + banLength(s[7]) else untilT = now + tonumber(d) end
  if untilT > s[6] then s[6] = untilT end
  s[7] = s[7] + 1
  started = 1
elseif op == 'restore' then
  local untilT = now + (tonumber(ARGV[4]) or 0)
  local count = tonumber(ARGV[7]) or 0
  if untilT > now then
    if s[6] > now then
      if untilT > s[6] then
        s[6] = untilT
        started = 1
      end
      if count > s[7] then s[7] = count end
    else
      s[6] = untilT
      s[7] = math.max(s[7] + 1, count)
      started = 1
    end
  else
    op = 'status'
  end
end

if op == 'fail' or op == 'ban' or op == 'restore' then
  redis.call('SET', key, join(s, 7), 'PX', ttlMs(quietAt(s) - now, floor))
  if started == 1 then redis.call('PUBLISH', channel, 'b ' .. enc(s[6]) .. ' ' .. subject) end
end
return enc(s[1]) .. ' ' .. enc(s[3]) .. ' ' .. enc(s[6]) .. ' ' .. enc(s[7]) .. ' ' .. started .. ' ' .. enc(now)
`;

/**
 * Lists live bans from a box's index (a sorted set of subject by ban end)
 * after dropping the ended ones. KEYS[1] index; ARGV[1] now ('' for TIME).
 * Reply: {now, subject1, until1, subject2, until2, ...}.
 */
export const BAN_LIST_SCRIPT = `${PRELUDE}
local now = clockArg(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', enc(now))
local out = { enc(now) }
local rows = redis.call('ZRANGE', KEYS[1], 0, 99999, 'WITHSCORES')
for i = 1, #rows do out[#out + 1] = rows[i] end
return out
`;
