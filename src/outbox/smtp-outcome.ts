/**
 * What one SMTP attempt means for each recipient (RFC 5321 §4.2.1: 2yz accepted, 4yz try again
 * later, 5yz refused for good). nodemailer reports recipients refused at RCPT TO in `rejectedErrors`
 * (on success for some, on the `EENVELOPE` error when all were refused), and a refusal of MAIL FROM
 * or DATA, an authentication failure or a lost connection as one error for the whole attempt.
 */
import type { NodemailerError, SMTPSentMessageInfo } from 'nodemailer';
import { GatewayError, isGatewayError } from '../errors.js';

export interface RecipientResult {
  address: string;
  outcome: 'sent' | 'deferred' | 'failed';
  response: string | null;
}

export interface AttemptOutcome {
  recipients: RecipientResult[];
  /** The server's reply to the message (DATA), when it accepted it for anyone. */
  response: string | null;
  /** Why the attempt failed for the recipients not accepted (one line, no secrets), else null. */
  error: string | null;
}

/** An answer from the server: accepted recipients sent, the others as their RCPT replies say. */
export function outcomeOfSuccess(to: string[], info: SMTPSentMessageInfo): AttemptOutcome {
  const accepted = new Set(info.accepted.map((a) => a.toLowerCase()));
  const refusals = refusalsByAddress((info as { rejectedErrors?: NodemailerError[] }).rejectedErrors);
  const recipients = to.map((address): RecipientResult => {
    if (accepted.has(address.toLowerCase())) return { address, outcome: 'sent', response: oneLine(info.response) };
    const refusal = refusals.get(address.toLowerCase());
    return refusal ?? { address, outcome: 'deferred', response: null };
  });
  const notAccepted = recipients.filter((r) => r.outcome !== 'sent');
  return {
    recipients,
    response: oneLine(info.response),
    error: notAccepted.length > 0 ? `the server refused ${notAccepted.length} of ${to.length} recipients` : null,
  };
}

/** The attempt failed: per recipient where the server said so at RCPT TO, else the same for all. */
export function outcomeOfError(to: string[], err: unknown): AttemptOutcome {
  const error = err as NodemailerError & { rejectedErrors?: NodemailerError[] };
  const refusals = refusalsByAddress(error.rejectedErrors);
  const whole = wholeMessageOutcome(error);
  const recipients = to.map((address) => refusals.get(address.toLowerCase()) ?? { address, outcome: whole.outcome, response: whole.response });
  return { recipients, response: null, error: whole.description };
}

function refusalsByAddress(errors: NodemailerError[] | undefined): Map<string, RecipientResult> {
  const byAddress = new Map<string, RecipientResult>();
  for (const refusal of errors ?? []) {
    if (typeof refusal.recipient !== 'string') continue;
    byAddress.set(refusal.recipient.toLowerCase(), {
      address: refusal.recipient,
      outcome: isPermanent(refusal) ? 'failed' : 'deferred',
      response: oneLine(refusal.response ?? refusal.message),
    });
  }
  return byAddress;
}

/**
 * An error of ours (a grant the provider refused, a token endpoint that timed out, a host the egress
 * policy forbids) on its way through nodemailer, which rewrites the `code` of whatever error it is
 * given (to EAUTH, ECONNECTION): nodemailer gets this carrier, and the error inside stays as it was.
 */
export class CarriedError extends Error {
  constructor(readonly carried: GatewayError) {
    super(carried.message);
    this.name = 'CarriedError';
  }
}

/** The gateway's own error inside what nodemailer answered, if it carried one. */
export function carriedGatewayError(err: unknown): GatewayError | null {
  if (err instanceof CarriedError) return err.carried;
  return isGatewayError(err) ? err : null;
}

/**
 * What nodemailer is given when getting an OAuth2 token failed: always a carrier, so that nodemailer's
 * EAUTH never stands for it (that would be a refused login); an error that is not ours says "try again".
 */
export function carryTokenFailure(err: unknown): Error {
  return new CarriedError(isGatewayError(err) ? err : new GatewayError('SERVICE_UNAVAILABLE', 'The OAuth2 access token for the SMTP login could not be got; try again', { cause: err }));
}

/** What nodemailer is given in place of an error of ours. */
export const carry = (err: unknown): Error => (isGatewayError(err) ? new CarriedError(err) : (err as Error));

/** An error about the whole attempt: refused for good (5yz, a policy refusal) or worth trying again. */
function wholeMessageOutcome(err: NodemailerError): { outcome: 'deferred' | 'failed'; response: string | null; description: string } {
  const ours = carriedGatewayError(err);
  if (ours !== null) {
    // The egress policy refused the SMTP host (HOST_NOT_ALLOWED) or its name does not resolve; an
    // OAuth2 grant the provider refused (UPSTREAM_AUTH_FAILED) is the account's settings: both fail at
    // once. A token endpoint that failed or timed out is worth trying again.
    const permanent = ours.code === 'HOST_NOT_ALLOWED' || ours.code === 'UPSTREAM_AUTH_FAILED';
    return { outcome: permanent ? 'failed' : 'deferred', response: null, description: oneLine(ours.message) ?? ours.code };
  }
  const response = oneLine(err.response);
  if (err.code === 'EAUTH') {
    // A refused login is the account's settings, not a passing fault: it fails at once (API.md).
    return { outcome: 'failed', response, description: `the SMTP server refused the login${response ? `: ${response}` : ''}; check the account's smtp username and secret` };
  }
  if (err.code === 'ENOAUTH') return { outcome: 'failed', response, description: 'the SMTP server needs a login, and the account has no credentials for it' };
  if (typeof err.responseCode === 'number') {
    const permanent = isPermanent(err);
    const step = err.command ? ` to ${err.command}` : '';
    return { outcome: permanent ? 'failed' : 'deferred', response, description: `the SMTP server answered${step}: ${response ?? err.responseCode}` };
  }
  // No reply to go by: a connection refused, reset or silent, TLS that failed, a timeout.
  const code = typeof err.code === 'string' ? err.code : 'ECONNECTION';
  return { outcome: 'deferred', response: null, description: `could not talk to the SMTP server (${code}): ${oneLine(err.message) ?? 'no detail'}` };
}

/** 5yz but 503 (bad sequence of commands, which says more about that session than about the message). */
function isPermanent(err: NodemailerError): boolean {
  if (typeof err.permanent === 'boolean') return err.permanent;
  return typeof err.responseCode === 'number' && err.responseCode >= 500 && err.responseCode !== 503;
}

function oneLine(text: string | undefined | null): string | null {
  if (typeof text !== 'string' || text.trim() === '') return null;
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim().slice(0, 500);
}

/**
 * A verifying SMTP login that failed, as the API answers it (like the IMAP and POP3 logins): refused
 * credentials 422 UPSTREAM_AUTH_FAILED, a server that did not answer in time 504, anything else 502.
 */
export function smtpLoginError(err: unknown): GatewayError {
  const ours = carriedGatewayError(err);
  if (ours !== null) return ours;
  const error = err as NodemailerError;
  const reply = oneLine(error.response);
  if (error.code === 'EAUTH' || error.code === 'ENOAUTH') {
    return new GatewayError('UPSTREAM_AUTH_FAILED', `The SMTP server refused the login${reply ? ` (${reply})` : ''}: check smtp.username and the password or access token`, { cause: err });
  }
  if (error.code === 'ETIMEDOUT') return new GatewayError('UPSTREAM_TIMEOUT', 'The SMTP server did not answer in time', { cause: err });
  const what = reply ?? `${typeof error.code === 'string' ? error.code : 'connection failed'}: ${oneLine(error.message) ?? ''}`.trim();
  return new GatewayError('UPSTREAM_ERROR', `The SMTP server could not be used (${what}); check smtp.host, port, security and tlsVerify`, { cause: err });
}
