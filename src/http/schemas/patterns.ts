/**
 * Character rules shared by the route schemas, with the words a problem detail uses for each (ajv's
 * own "must match pattern" would show the caller a regular expression). No imports: both the
 * schemas and the problem mapper read this.
 */

/**
 * Text that the gateway sends to a mail server (mailbox paths, search terms, host names, user
 * names): no C0 or C1 control character and no DEL. CR, LF and NUL cannot travel in an IMAP string
 * at all (RFC 9051 §4.3) and would split a POP3 command line (RFC 1939 §3); mailbox names are
 * Net-Unicode (RFC 9051 §5.1, RFC 5198 §2), which has no control characters.
 */
export const NO_CONTROLS = '^[^\\u0000-\\u001f\\u007f-\\u009f]*$';

/** A secret may hold any character but those that end or split a command line (CR, LF, NUL). */
export const NO_LINE_BREAKS = '^[^\\u0000\\r\\n]*$';

/**
 * A day from 1900-01-01 on, `YYYY-MM-DD` (the `date` format checks the rest). IMAP's date-year is any
 * four digits (RFC 9051 §9), but servers refuse what predates their clock (Dovecot: before about
 * 1900), which would read as a server fault; no message was received before 1900.
 */
export const DAY_FROM_1900 = '^(19|[2-9][0-9])[0-9]{2}-[0-9]{2}-[0-9]{2}$';

/** A mail host: a name or an address literal, with no space, slash or control character. */
export const HOST = '^[^\\s/\\u0000-\\u001f\\u007f-\\u009f]+$';

/**
 * A webhook URL: absolute, `https:` or `http:` (schemes are case-insensitive, RFC 3986 §3.1). The
 * webhook service checks the rest (userinfo, fragment, the egress policy).
 */
export const HTTP_URL = '^[Hh][Tt][Tt][Pp][Ss]?://[^\\s]+$';

/** What a detail says when a value breaks one of these patterns. */
export const PATTERN_RULES: Readonly<Record<string, string>> = {
  [NO_CONTROLS]: 'must not contain control characters (CR, LF, NUL, TAB, DEL, …)',
  [NO_LINE_BREAKS]: 'must not contain CR, LF or NUL',
  [HOST]: 'must be a host name or IP address, without spaces, slashes or control characters',
  [DAY_FROM_1900]: 'must be a day from 1900-01-01 on, as YYYY-MM-DD',
  [HTTP_URL]: 'must be an absolute https: or http: URL, without spaces',
};
