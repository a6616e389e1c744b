/**
 * The Date header (RFC 5322 §3.3, with the obsolete forms of §4.3) to ISO 8601, or null.
 *
 * mailparser replaces an unparseable Date with the time of parsing, which would be cached as the
 * message's date; and V8's Date.parse accepts nonsense ("1" is 2001-01-01). So: a strict reader of
 * the RFC grammar first, then Date.parse only for values that carry a four-digit year and a time
 * (ISO 8601 or asctime forms some broken senders write).
 */
import { stripComments } from './headers.js';

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/** RFC 5322 §4.3 obs-zone, in minutes east of UTC. Military letters are "-0000" (unknown) per the RFC. */
const ZONE_NAMES: Record<string, number> = {
  ut: 0,
  utc: 0,
  gmt: 0,
  z: 0,
  est: -300,
  edt: -240,
  cst: -360,
  cdt: -300,
  mst: -420,
  mdt: -360,
  pst: -480,
  pdt: -420,
};

const RFC5322_DATE =
  /^(?:[a-z]+\.?\s*,?\s*)?(\d{1,2})[\s-]+([a-z]{3,})\.?[\s-]+(\d{2,4})[\s,]+(\d{1,2})\s*:\s*(\d{1,2})(?:\s*:\s*(\d{1,2})(?:\.\d+)?)?\s*(.*)$/i;

function zoneOffsetMinutes(zone: string): number | null {
  const token = zone.trim().split(/\s+/)[0] ?? '';
  if (token === '') return 0; // no zone at all: treat as UTC, like "-0000"
  const numeric = /^([+-])(\d{2}):?(\d{2})$/.exec(token);
  if (numeric) {
    const hours = Number(numeric[2]);
    const minutes = Number(numeric[3]);
    if (hours > 23 || minutes > 59) return null;
    return (numeric[1] === '-' ? -1 : 1) * (hours * 60 + minutes);
  }
  // A known obsolete name; anything else (military letters, "CEST", garbage like "H0500") is an
  // unknown zone, which RFC 5322 §4.3 reads as "-0000": the time is kept, taken as UTC.
  const name = token.toLowerCase();
  return Object.hasOwn(ZONE_NAMES, name) ? (ZONE_NAMES[name] ?? 0) : 0;
}

function parseRfc5322(value: string): Date | null {
  const m = RFC5322_DATE.exec(value);
  if (!m) return null;
  const [, dayText, monthText, yearText, hourText, minuteText, secondText, zoneText] = m;
  const month = MONTHS.indexOf((monthText ?? '').slice(0, 3).toLowerCase());
  if (month < 0) return null;
  let year = Number(yearText);
  // §4.3: a two-digit year below 50 is 20xx, otherwise 19xx; a three-digit year adds 1900.
  if ((yearText ?? '').length === 2) year += year < 50 ? 2000 : 1900;
  else if ((yearText ?? '').length === 3) year += 1900;
  const day = Number(dayText);
  const hour = Number(hourText);
  const minute = Number(minuteText);
  // A leap second (60) is allowed by the grammar; JavaScript dates have none.
  const second = Math.min(Number(secondText ?? '0'), 59);
  if (day < 1 || hour > 23 || minute > 59 || second > 59) return null;
  const offset = zoneOffsetMinutes(zoneText ?? '');
  if (offset === null) return null; // a numeric zone out of range: the value is not trustworthy
  const utc = Date.UTC(year, month, day, hour, minute, second);
  // Reject days past the month's end (31 Feb) rather than letting Date roll them over.
  if (new Date(utc).getUTCDate() !== day) return null;
  return new Date(utc - offset * 60_000);
}

function parseLenient(value: string): Date | null {
  if (!/\b\d{4}\b/.test(value) || !/\d:\d/.test(value)) return null;
  const time = Date.parse(value);
  return Number.isNaN(time) ? null : new Date(time);
}

/** ISO 8601 (UTC, milliseconds) for a Date header value, or null when it cannot be read. */
export function parseDateHeader(value: string | undefined): string | null {
  if (!value) return null;
  const cleaned = stripComments(value).replace(/\s+/g, ' ').trim();
  if (!cleaned) return null;
  const date = parseRfc5322(cleaned) ?? parseLenient(cleaned);
  if (!date) return null;
  const year = date.getUTCFullYear();
  if (Number.isNaN(date.getTime()) || year < 1900 || year > 9999) return null;
  return date.toISOString();
}
