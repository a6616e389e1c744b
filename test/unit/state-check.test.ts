import { describe, expect, it } from 'vitest';
import { SharedStateChecks, type StateCheck } from '../../src/mail/imap/state-check.js';

/** A fake check the test drives: it tells when it was started and sent, and answers when told. */
interface FakeCheck {
  started: boolean;
  sent: boolean;
  /** Marks the command as on its way (what the IMAP check does right before its NOOP). */
  send(): void;
  answer(state: string): void;
  fail(err: Error): void;
}

function fakeChecks(): { run: StateCheck<string>; checks: FakeCheck[]; inFlight: () => number; maxInFlight: () => number } {
  const checks: FakeCheck[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const run: StateCheck<string> = (sending) =>
    new Promise<string>((resolve, reject) => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const done = (): void => {
        inFlight -= 1;
      };
      const check: FakeCheck = {
        started: true,
        sent: false,
        send: () => {
          check.sent = true;
          sending();
        },
        answer: (state) => {
          done();
          resolve(state);
        },
        fail: (err) => {
          done();
          reject(err);
        },
      };
      checks.push(check);
    });
  return { run, checks, inFlight: () => inFlight, maxInFlight: () => maxInFlight };
}

/** Lets queued promise callbacks (a check starting after the one before settled) run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('SharedStateChecks', () => {
  it('requests arriving before the check was sent share it: one check answers them all', async () => {
    const shared = new SharedStateChecks<string>();
    const fake = fakeChecks();
    const answers = [shared.check('inbox', fake.run), shared.check('inbox', fake.run), shared.check('inbox', fake.run)];
    await settle();
    expect(fake.checks).toHaveLength(1);
    fake.checks[0]!.send();
    fake.checks[0]!.answer('s1');
    expect(await Promise.all(answers)).toEqual(['s1', 's1', 's1']);
  });

  it('a request arriving after the check was sent waits for the next check instead of joining it', async () => {
    const shared = new SharedStateChecks<string>();
    const fake = fakeChecks();
    const early = shared.check('inbox', fake.run);
    await settle();
    fake.checks[0]!.send();
    // The mailbox may change now; a request from here on must see a check sent after it arrived.
    const late = shared.check('inbox', fake.run);
    const later = shared.check('inbox', fake.run);
    await settle();
    expect(fake.checks).toHaveLength(1); // the next check waits for the one on its way
    fake.checks[0]!.answer('before');
    expect(await early).toBe('before');
    await settle();
    expect(fake.checks).toHaveLength(2);
    fake.checks[1]!.send();
    fake.checks[1]!.answer('after');
    expect(await late).toBe('after');
    expect(await later).toBe('after'); // both arrived while the first was on its way: one check
  });

  it('has at most one check in flight per mailbox, whatever the load', async () => {
    const shared = new SharedStateChecks<string>();
    const fake = fakeChecks();
    const answers: Array<Promise<string>> = [];
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 4; i++) answers.push(shared.check('inbox', fake.run));
      await settle();
      const check = fake.checks[round]!;
      check.send();
      // Arrivals while this one is on its way.
      for (let i = 0; i < 3; i++) answers.push(shared.check('inbox', fake.run));
      check.answer(`s${round}`);
      await settle();
    }
    fake.checks[5]?.send();
    fake.checks[5]?.answer('last');
    await Promise.all(answers);
    expect(fake.maxInFlight()).toBe(1);
    expect(fake.checks).toHaveLength(6);
    expect(shared.size).toBe(0);
  });

  it('checks different mailboxes independently and at the same time', async () => {
    const shared = new SharedStateChecks<string>();
    const fake = fakeChecks();
    const inbox = shared.check('acct\u0000INBOX', fake.run);
    const archive = shared.check('acct\u0000Archive', fake.run);
    await settle();
    expect(fake.inFlight()).toBe(2);
    fake.checks[1]!.answer('archive');
    fake.checks[0]!.answer('inbox');
    expect([await inbox, await archive]).toEqual(['inbox', 'archive']);
  });

  it('hands a failed check to every request that joined it, and the next check still goes out', async () => {
    const shared = new SharedStateChecks<string>();
    const fake = fakeChecks();
    const joined = [shared.check('inbox', fake.run), shared.check('inbox', fake.run)];
    await settle();
    fake.checks[0]!.send();
    const next = shared.check('inbox', fake.run);
    const lost = new Error('connection lost');
    fake.checks[0]!.fail(lost);
    for (const answer of joined) await expect(answer).rejects.toBe(lost);
    await settle();
    expect(fake.checks).toHaveLength(2); // not poisoned: the waiting request gets a check of its own
    fake.checks[1]!.send();
    fake.checks[1]!.answer('fine');
    expect(await next).toBe('fine');
    expect(await shared.check('inbox', async () => 'fresh')).toBe('fresh');
  });

  it('a check that fails before it was sent (no session) lets the next request start a new one', async () => {
    const shared = new SharedStateChecks<string>();
    const busy = new Error('POOL_EXHAUSTED');
    await expect(shared.check('inbox', () => Promise.reject(busy))).rejects.toBe(busy);
    expect(shared.size).toBe(0);
    expect(await shared.check('inbox', async () => 'ok')).toBe('ok');
  });

  it('a check that is retried calls sending() again without starting a second flight', async () => {
    const shared = new SharedStateChecks<string>();
    let runs = 0;
    const retried: StateCheck<string> = async (sending) => {
      runs += 1;
      sending();
      sending(); // the lease was retried on a fresh session
      return 'state';
    };
    expect(await Promise.all([shared.check('inbox', retried), shared.check('inbox', retried)])).toEqual(['state', 'state']);
    expect(runs).toBe(1);
    expect(shared.size).toBe(0);
  });
});
