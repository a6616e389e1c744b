/**
 * The Lua scripts of the Redis event log. One script per operation makes each atomic (a script runs
 * alone, https://redis.io/docs/latest/develop/interact/programmability/eval-intro/) and lets it decide
 * from what it reads (trim only when something is old enough; remember what was trimmed). Every key a
 * script touches is passed in KEYS and carries the account's hash tag, so the scripts run unchanged on
 * a Redis Cluster (all of an account's keys live in one slot).
 *
 * Needs Redis 6.2 or later: `XADD`/`XTRIM ... MINID` and exclusive ranges `(id` in XRANGE/XREVRANGE.
 */
import type { WatchStateChange } from '../types.js';
import { encodeState } from './watch-state.js';

/**
 * KEYS[1] stream, KEYS[2] meta hash, KEYS[3] states hash, KEYS[4..3+m] the messages hash of each of
 * the m changes, in their order, then the staging hashes of staged changes. ARGV[1] retentionMs,
 * ARGV[2] streamTtlMs, ARGV[3] metaTtlMs, ARGV[4] stateTtlMs, ARGV[5] pub/sub channel, ARGV[6]
 * account id, ARGV[7] event count n, ARGV[8..7+n] the events' JSON, ARGV[8+n] m, then per change:
 * mailbox, state JSON ('' = gone), replace ('1'/'0'), staged (the KEYS index of its staging hash, or
 * 0), set count s, s pairs (key, flags JSON), remove count r, r keys. Answers the new entries' ids.
 *
 * - A script is not rolled back when it fails midway, so what could fail (a staging hash that
 *   expired) is checked before the first write.
 * - Ids are Redis's own (`*`: the server clock's ms, with a seq within it; they never go backwards).
 *   When the stream is gone (expired after a long silence, or evicted) but `last` is known, the first
 *   new id is made to follow `last` even if the server clock went back meanwhile, and `trimmed` moves
 *   up to `last`: every event up to it is gone.
 * - Retention: entries older than `now - retentionMs` (Redis TIME, the clock the ids come from) are
 *   removed with an exact `XTRIM MINID`, and the newest of them is remembered as `trimmed` (found with
 *   one `XREVRANGE ... COUNT 1` first). With the approximate `~` form Redis keeps whole macro nodes
 *   (https://redis.io/docs/latest/commands/xtrim/) and the script could not know which ids went, so a
 *   resume point could not be told lost or not exactly; exact trimming of the part of a node only marks
 *   entries deleted, and it runs only when something is older than the retention.
 * - State: the states hash field per mailbox; each mailbox's messages in a hash of its own, so a
 *   change costs only its fields, however large the mailbox. The field "" marks a messages hash as
 *   present (a mailbox with no messages still has one), so an evicted hash is told from an empty mailbox.
 *   A replaced or dropped hash is UNLINKed: a large one is freed in the background.
 * - HSET/HDEL take at most 1,000 arguments per call: Lua's `unpack` is limited by the C stack (8,000).
 * - The PUBLISH (the hint to other processes) goes out with the write, so no reader is woken before
 *   the events are readable.
 */
export const APPEND_SCRIPT = `
local stream, meta, states = KEYS[1], KEYS[2], KEYS[3]
local n = tonumber(ARGV[7])
local m = tonumber(ARGV[8 + n])
for i = 4 + m, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then return redis.error_reply('ERR staged messages expired before the append') end
end
local ids = {}
if n > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local last = redis.call('HGET', meta, 'last')
  local first = '*'
  if last and redis.call('EXISTS', stream) == 0 then
    redis.call('HSET', meta, 'trimmed', last)
    local ms, seq = string.match(last, '^(%d+)-(%d+)$')
    if ms and tonumber(ms) >= now then first = ms .. '-' .. string.format('%.0f', tonumber(seq) + 1) end
  end
  local minId = string.format('%.0f', now - tonumber(ARGV[1])) .. '-0'
  local older = redis.call('XREVRANGE', stream, '(' .. minId, '-', 'COUNT', 1)
  if #older > 0 then
    redis.call('XTRIM', stream, 'MINID', minId)
    redis.call('HSET', meta, 'trimmed', older[1][1])
  end
  for i = 1, n do
    if i == 1 then
      ids[i] = redis.call('XADD', stream, first, 'e', ARGV[7 + i])
    else
      ids[i] = redis.call('XADD', stream, '*', 'e', ARGV[7 + i])
    end
  end
  redis.call('HSET', meta, 'last', ids[n])
  redis.call('PEXPIRE', stream, ARGV[2])
  redis.call('PEXPIRE', meta, ARGV[3])
end
local a = 9 + n
for c = 1, m do
  local msgs = KEYS[3 + c]
  local mailbox, state, replace, staged = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  local s = tonumber(ARGV[a + 4])
  local setFrom = a + 5
  local setTo = setFrom + 2 * s - 1
  local r = tonumber(ARGV[setTo + 1])
  local removeFrom = setTo + 2
  local removeTo = removeFrom + r - 1
  a = removeTo + 1
  if state == '' then
    redis.call('HDEL', states, mailbox)
    redis.call('UNLINK', msgs)
  else
    redis.call('HSET', states, mailbox, state)
    if staged > 0 then
      redis.call('UNLINK', msgs)
      redis.call('RENAME', KEYS[staged], msgs)
    elseif replace == '1' then
      redis.call('UNLINK', msgs)
    end
    redis.call('HSET', msgs, '', '1')
    for i = setFrom, setTo, 1000 do
      redis.call('HSET', msgs, unpack(ARGV, i, math.min(i + 999, setTo)))
    end
    for i = removeFrom, removeTo, 1000 do
      redis.call('HDEL', msgs, unpack(ARGV, i, math.min(i + 999, removeTo)))
    end
    redis.call('PEXPIRE', msgs, ARGV[4])
  end
end
if m > 0 then redis.call('PEXPIRE', states, ARGV[4]) end
if n > 0 then redis.call('PUBLISH', ARGV[5], ARGV[6]) end
return ids`;

/**
 * KEYS[1] stream, KEYS[2] meta; ARGV[1] the exclusive start `(<id>`, ARGV[2] count. Answers
 * `{ entries, trimmed | nil, last | nil, stream exists (0/1) }`, read at one instant.
 */
export const READ_SCRIPT = `
return {
  redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2]),
  redis.call('HGET', KEYS[2], 'trimmed'),
  redis.call('HGET', KEYS[2], 'last'),
  redis.call('EXISTS', KEYS[1])
}`;

/** KEYS[1] stream, KEYS[2] meta. Answers `{ newest entry id | nil, last | nil }`. */
export const LATEST_SCRIPT = `
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local newest = false
if #top > 0 then newest = top[1][1] end
return { newest, redis.call('HGET', KEYS[2], 'last') }`;

export interface AppendScriptSettings {
  retentionMs: number;
  streamTtlMs: number;
  metaTtlMs: number;
  stateTtlMs: number;
  channel: string;
}

/**
 * ARGV of APPEND_SCRIPT (after the keys), for events already encoded and checked changes.
 * `staged` maps a change's index to the KEYS index of the staging hash that holds its `set`.
 */
export function appendArguments(
  settings: AppendScriptSettings,
  accountId: string,
  eventTexts: readonly string[],
  changes: readonly WatchStateChange[],
  staged: ReadonlyMap<number, number> = new Map(),
): string[] {
  const args = [
    String(settings.retentionMs),
    String(settings.streamTtlMs),
    String(settings.metaTtlMs),
    String(settings.stateTtlMs),
    settings.channel,
    accountId,
    String(eventTexts.length),
    ...eventTexts,
    String(changes.length),
  ];
  changes.forEach((change, index) => {
    const stagedAt = staged.get(index) ?? 0;
    const set = change.state === null || stagedAt > 0 ? [] : (change.set ?? []);
    const remove = change.state === null ? [] : (change.remove ?? []);
    args.push(change.mailbox, change.state === null ? '' : encodeState(change.state), change.replace === true ? '1' : '0', String(stagedAt));
    args.push(String(set.length));
    for (const [key, flags] of set) args.push(key, JSON.stringify(flags));
    args.push(String(remove.length));
    for (const key of remove) args.push(key);
  });
  return args;
}
