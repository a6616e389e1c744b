import { describe, expect, it } from 'vitest';
import { keys } from '../../src/cache/keys.js';

/** The part of a key Redis Cluster hashes: the first `{...}` with something inside, else the whole key. */
function hashTag(key: string): string {
  const open = key.indexOf('{');
  const close = key.indexOf('}', open + 1);
  return open >= 0 && close > open + 1 ? key.slice(open + 1, close) : key;
}

describe('session slot keys', () => {
  it('keep the slot set and its "wanted" flag in one Cluster slot, as the Lua scripts need', () => {
    for (const protocol of ['imap', 'pop3'] as const) {
      const set = keys.sessionSlots('acct-1', protocol);
      const wanted = keys.sessionSlotsWanted('acct-1', protocol);
      expect(wanted).not.toBe(set);
      expect(hashTag(wanted)).toBe(hashTag(set));
      expect(hashTag(set)).toBe('acct-1');
    }
  });

  it('name the flag as earlier versions did, so processes of both versions see each other waiting', () => {
    expect(keys.sessionSlotsWanted('acct-1', 'imap')).toBe(`${keys.sessionSlots('acct-1', 'imap')}:wanted`);
  });

  it('give each account and protocol its own flag', () => {
    const all = [
      keys.sessionSlotsWanted('a', 'imap'),
      keys.sessionSlotsWanted('a', 'pop3'),
      keys.sessionSlotsWanted('b', 'imap'),
    ];
    expect(new Set(all).size).toBe(3);
  });
});

describe('event log keys', () => {
  it("keep one account's stream, meta, states, messages and staging hashes in one Cluster slot, as the scripts need", () => {
    const all = [
      keys.events('acct-1'),
      keys.eventsMeta('acct-1'),
      keys.watchStates('acct-1'),
      keys.watchMessages('acct-1', 'INBOX'),
      keys.watchMessages('acct-1', 'Work/2024:*'),
      keys.watchMessagesStaging('acct-1', 'INBOX', 'token'),
    ];
    expect(new Set(all).size).toBe(all.length);
    for (const key of all) expect(hashTag(key)).toBe('acct-1');
  });

  it('stay outside the cache keys an account purge deletes', () => {
    const purge = keys.accountCachePrefix('acct-1');
    for (const key of [keys.events('acct-1'), keys.watchStates('acct-1'), keys.watchMessages('acct-1', 'INBOX')]) {
      expect(key.startsWith(purge)).toBe(false);
    }
  });

  it('never let a mailbox path pass for another key of the account', () => {
    // ':' is escaped in the path segment, so no mailbox's hash is another mailbox's staging hash.
    expect(keys.watchMessages('a', 'INBOX:staging:x')).not.toBe(keys.watchMessagesStaging('a', 'INBOX', 'x'));
    expect(keys.watchMessages('a', 'x')).not.toBe(keys.watchMessages('a', 'x%3A'));
  });
});
