/**
 * Token endpoints and scopes of the providers API.md names ("OAuth2 accounts"). A `custom` provider
 * gives its own `tokenUrl`; the presets may be given one too (a Microsoft tenant of its own).
 *
 * - Google: the token endpoint of Google's OAuth 2.0 for web server / installed apps, and the one
 *   scope that covers IMAP, POP3 and SMTP ("https://mail.google.com/"), per "OAuth 2.0 Mechanism"
 *   (developers.google.com/gmail/imap/xoauth2-protocol).
 * - Microsoft 365: the v2.0 endpoint of the `common` tenant and the Exchange Online scopes of
 *   "Authenticate an IMAP, POP or SMTP connection using OAuth" (learn.microsoft.com, Exchange
 *   legacy protocols), with `offline_access` so that a refresh token keeps coming back.
 */
export const OAUTH2_PROVIDERS = ['google', 'microsoft', 'custom'] as const;
export type OAuth2Provider = (typeof OAUTH2_PROVIDERS)[number];

export interface ProviderPreset {
  tokenUrl: string;
  scope: string;
}

export const PROVIDER_PRESETS: Readonly<Record<Exclude<OAuth2Provider, 'custom'>, ProviderPreset>> = {
  google: { tokenUrl: 'https://oauth2.googleapis.com/token', scope: 'https://mail.google.com/' },
  microsoft: {
    tokenUrl: 'https://login.microsoftonline.com/common/oauth2/v2.0/token',
    scope: 'https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/POP.AccessAsUser.All https://outlook.office.com/SMTP.Send offline_access',
  },
};
