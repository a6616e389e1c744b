import { describe, expect, it } from 'vitest';
import { normalizeMailboxPath } from '../../src/mail/mailbox-path.js';

describe('normalizeMailboxPath', () => {
  it('spells INBOX one way, whatever the case it was given in (RFC 9051 §5.1)', () => {
    for (const spelling of ['INBOX', 'inbox', 'Inbox', 'iNbOx']) expect(normalizeMailboxPath(spelling)).toBe('INBOX');
  });

  it('leaves every other name exactly as given: only INBOX is case-insensitive', () => {
    for (const path of ['Archive', 'archive', 'INBOX/Sub', 'inbox/sub', 'Inboxes', ' INBOX', 'Entwürfe', '']) {
      expect(normalizeMailboxPath(path)).toBe(path);
    }
  });
});
