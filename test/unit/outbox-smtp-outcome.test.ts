/**
 * What an SMTP attempt's answer means for each recipient (src/outbox/smtp-outcome.ts), from the
 * shapes nodemailer reports (checked against the real Postfix in test/integration/mta.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/errors.js';
import { outcomeOfError, outcomeOfSuccess, smtpLoginError } from '../../src/outbox/smtp-outcome.js';
import { OUTBOX_RETRY_DELAYS_MS, nextSendAttempt } from '../../src/outbox/retry-schedule.js';

const refusal = (recipient: string, code: number, text: string) =>
  Object.assign(new Error(text), { recipient, responseCode: code, response: `${code} ${text}`, code: 'EENVELOPE', permanent: code >= 500 && code !== 503 });

describe('SMTP outcomes per recipient', () => {
  it('marks accepted recipients sent and the others as their RCPT replies say', () => {
    const info = {
      accepted: ['B@example.com'],
      rejected: ['a@example.com', 'c@example.com'],
      rejectedErrors: [refusal('a@example.com', 550, '5.1.1 no such user'), refusal('c@example.com', 451, '4.3.2 try later')],
      response: '250 2.0.0 Ok: queued as 4XyZ',
      envelope: { from: 'me@example.com', to: [] },
      messageId: '<x@y>',
    };
    const outcome = outcomeOfSuccess(['a@example.com', 'b@example.com', 'c@example.com'], info as never);
    expect(outcome.recipients).toEqual([
      { address: 'a@example.com', outcome: 'failed', response: '550 5.1.1 no such user' },
      { address: 'b@example.com', outcome: 'sent', response: '250 2.0.0 Ok: queued as 4XyZ' },
      { address: 'c@example.com', outcome: 'deferred', response: '451 4.3.2 try later' },
    ]);
    expect(outcome.error).toMatch(/2 of 3/);
  });

  it('fails everyone at once on a 5xx to DATA, defers everyone on a 4xx or a lost connection', () => {
    const data5 = Object.assign(new Error('Message failed'), { code: 'EMESSAGE', command: 'DATA', responseCode: 554, response: '554 5.7.1 spam', permanent: true });
    expect(outcomeOfError(['a@x.org', 'b@x.org'], data5).recipients.map((r) => r.outcome)).toEqual(['failed', 'failed']);
    const data4 = Object.assign(new Error('Message failed'), { code: 'EMESSAGE', command: 'DATA', responseCode: 452, response: '452 4.3.1 full', permanent: false });
    expect(outcomeOfError(['a@x.org'], data4).recipients[0]).toMatchObject({ outcome: 'deferred', response: '452 4.3.1 full' });
    const reset = Object.assign(new Error('Connection closed unexpectedly'), { code: 'ECONNECTION' });
    const lost = outcomeOfError(['a@x.org'], reset);
    expect(lost.recipients[0]!.outcome).toBe('deferred');
    expect(lost.error).toMatch(/ECONNECTION/);
  });

  it('fails at once on a refused login and on a host the egress policy forbids', () => {
    const auth = Object.assign(new Error('Invalid login'), { code: 'EAUTH', responseCode: 535, response: '535 5.7.8 Error: authentication failed' });
    const outcome = outcomeOfError(['a@x.org'], auth);
    expect(outcome.recipients[0]!.outcome).toBe('failed');
    expect(outcome.error).toMatch(/refused the login/);
    const egress = new GatewayError('HOST_NOT_ALLOWED', 'the egress policy does not allow connections to "smtp.internal"');
    expect(outcomeOfError(['a@x.org'], egress).recipients[0]!.outcome).toBe('failed');
  });

  it('maps a verifying login to the API errors (422, 504, 502) without the secret', () => {
    expect(smtpLoginError(Object.assign(new Error('x'), { code: 'EAUTH', response: '535 5.7.8 nope' })).code).toBe('UPSTREAM_AUTH_FAILED');
    expect(smtpLoginError(Object.assign(new Error('x'), { code: 'ETIMEDOUT' })).code).toBe('UPSTREAM_TIMEOUT');
    expect(smtpLoginError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ESOCKET' })).code).toBe('UPSTREAM_ERROR');
  });
});

describe('the outbox retry schedule', () => {
  it('waits about 10 s, 30 s, 2 min, 10 min, then 30 min, and gives up past the retry window', () => {
    const queued = 0;
    const mid = () => 0.5;
    expect([1, 2, 3, 4, 5, 9].map((attempt) => nextSendAttempt(attempt, 1000, queued, 24, mid)! - 1000)).toEqual([
      ...OUTBOX_RETRY_DELAYS_MS,
      30 * 60_000,
    ]);
    expect(nextSendAttempt(1, 1000, queued, 24, () => 0)! - 1000).toBe(9_000);
    expect(nextSendAttempt(1, 1000, queued, 24, () => 1)! - 1000).toBe(11_000);
    expect(nextSendAttempt(6, 24 * 3_600_000 - 60_000, queued, 24, mid)).toBeNull();
  });
});
