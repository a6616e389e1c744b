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
