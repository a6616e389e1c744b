import { Type } from 'typebox';
import { ACCOUNT_ID_PATTERN, Nullable, StringEnum } from './common.js';
import { CAPABILITIES } from '../../mail/types.js';
import { HOST, NO_CONTROLS, NO_LINE_BREAKS } from './patterns.js';

const Protocol = StringEnum(['imap', 'pop3'] as const, { description: 'How the gateway reaches the mailbox' });
const Security = StringEnum(['tls', 'starttls', 'none'] as const, {
  description: '`tls`: implicit TLS; `starttls`: upgrade required before login; `none`: clear text',
});
const Capability = StringEnum(CAPABILITIES);

const Host = Type.String({ minLength: 1, maxLength: 253, pattern: HOST, examples: ['imap.example.com'] });
const Port = Type.Integer({ minimum: 1, maximum: 65535, examples: [993] });
// Sent on the wire in LOGIN, AUTHENTICATE and USER.
const Username = Type.String({ minLength: 1, maxLength: 320, pattern: NO_CONTROLS, examples: ['alice@example.com'] });
// Sent in PASS and SASL PLAIN, where CR or LF would end the command line and NUL separates the fields (RFC 4616).
const Password = Type.String({ minLength: 1, maxLength: 4096, pattern: NO_LINE_BREAKS, writeOnly: true, examples: ['s3cret'] });
const AccessToken = Type.String({
  minLength: 1,
  maxLength: 16384,
  pattern: NO_LINE_BREAKS,
  writeOnly: true,
  description: 'OAuth2 access token (XOAUTH2 / OAUTHBEARER)',
});
const Name = Nullable(Type.String({ maxLength: 200, examples: ['Alice at work'] }));
const OAuth2Provider = StringEnum(['google', 'microsoft', 'custom'] as const, {
  description: '`google` and `microsoft` give the token URL and scope (README, OAuth2 accounts); `custom` needs `tokenUrl`',
});
const TokenUrl = Type.String({ minLength: 8, maxLength: 2048, pattern: NO_CONTROLS, examples: ['https://oauth2.googleapis.com/token'] });
const OAuth2Scope = Type.String({ minLength: 1, maxLength: 2048, pattern: NO_LINE_BREAKS, examples: ['https://mail.google.com/'] });
const OAuth2Input = Type.Object(
  {
    provider: OAuth2Provider,
    tokenUrl: Type.Optional({ ...TokenUrl, description: "The token endpoint (RFC 6749 §3.2); default: the provider's (a Microsoft tenant of its own: https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token)" }),
    clientId: Type.String({ minLength: 1, maxLength: 512, pattern: NO_CONTROLS, examples: ['1234567890-abc.apps.googleusercontent.com'] }),
    clientSecret: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, pattern: NO_LINE_BREAKS, writeOnly: true, description: 'Absent for a public client' })),
    refreshToken: Type.String({ minLength: 1, maxLength: 16384, pattern: NO_LINE_BREAKS, writeOnly: true }),
    scope: Type.Optional({ ...OAuth2Scope, description: "Asked for at each renewal; default: the provider's mail scopes (none for custom)" }),
  },
  {
    additionalProperties: false,
    description: 'An OAuth2 grant (API.md, OAuth2 accounts): access tokens come from the refresh token and are renewed ahead of expiry; the secrets are sealed and never returned',
  },
);
const OAuth2View = Type.Union(
  [Type.Object({ provider: OAuth2Provider, tokenUrl: TokenUrl, clientId: Type.String(), scope: Nullable(OAuth2Scope) }), Type.Null()],
  { description: 'The OAuth2 grant without its secrets; null for a password or a fixed access token' },
);
const AuthMethod = StringEnum(['password', 'accessToken', 'oauth2'] as const);
// The composer checks the address itself (outbox/compose.ts); here only its size and characters.
const Email = Type.String({ minLength: 3, maxLength: 320, pattern: '^[^\\s@]+@[^\\s@]+$', examples: ['alice@example.com'] });

const smtpFields = {
  host: Host,
  port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'Default: 465 with tls, 587 otherwise (RFC 8314)', examples: [465] })),
  security: Type.Optional(StringEnum(['tls', 'starttls', 'none'] as const, { description: 'Default `tls`; `starttls` must upgrade or the send fails' })),
  username: Type.Optional(Type.String({ ...Username, description: "Default: the account's username" })),
  password: Type.Optional(Type.String({ ...Password, description: "Default: the account's own secret" })),
  accessToken: Type.Optional(AccessToken),
  oauth2: Type.Optional(OAuth2Input),
  tlsVerify: Type.Optional(Type.Boolean({ description: 'Default true; false only for servers with self-signed certificates' })),
};

const SmtpSettings = Type.Object(smtpFields, {
  additionalProperties: false,
  description: "SMTP submission (API.md, Sending): at most one of `password`, `accessToken` and `oauth2`; username and secret default to the account's own (an OAuth2 account's grant too). Verified by a login at save.",
  examples: [{ host: 'smtp.example.com', port: 465, security: 'tls' }],
});

const SmtpPatch = Type.Object(
  { ...smtpFields, host: Type.Optional(Host) },
  {
    additionalProperties: false,
    description: 'Merged into the SMTP settings there are (`host` is needed when there are none yet); `null` removes them. Pooled SMTP connections are dropped.',
  },
);

export const AccountCreateBody = Type.Object(
  {
    id: Type.Optional(
      Type.String({ pattern: ACCOUNT_ID_PATTERN, description: 'Generated when absent; not `.` or `..`', examples: ['alice'] }),
    ),
    protocol: Protocol,
    host: Host,
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'Default: 993 / 995 with tls, 143 / 110 otherwise', examples: [993] })),
    security: Type.Optional(StringEnum(['tls', 'starttls', 'none'] as const, { default: 'tls', description: 'Default `tls`' })),
    username: Username,
    password: Type.Optional(Password),
    accessToken: Type.Optional(AccessToken),
    oauth2: Type.Optional(OAuth2Input),
    tlsVerify: Type.Optional(Type.Boolean({ default: true, description: 'false only for servers with self-signed certificates' })),
    name: Type.Optional(Name),
    email: Type.Optional(Nullable({ ...Email, type: 'string' as const, description: "The account's own address, the default sender; default: the username when it is an address" })),
    smtp: Type.Optional(SmtpSettings),
  },
  {
    additionalProperties: false,
    description: 'Exactly one of `password`, `accessToken` and `oauth2`',
    examples: [
      {
        id: 'alice',
        protocol: 'imap',
        host: 'imap.example.com',
        port: 993,
        security: 'tls',
        username: 'alice@example.com',
        password: 's3cret',
        name: 'Alice at work',
      },
    ],
  },
);

export const AccountPatchBody = Type.Object(
  {
    protocol: Type.Optional(Protocol),
    host: Type.Optional(Host),
    port: Type.Optional(Port),
    security: Type.Optional(Security),
    username: Type.Optional(Username),
    password: Type.Optional(Password),
    accessToken: Type.Optional(AccessToken),
    oauth2: Type.Optional(OAuth2Input),
    tlsVerify: Type.Optional(Type.Boolean()),
    name: Type.Optional(Name),
    email: Type.Optional(Nullable({ ...Email, type: 'string' as const, description: 'null: the username again, when it is an address' })),
    smtp: Type.Optional(Type.Union([SmtpPatch, Type.Null()])),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    description: 'Any account field but `id`. Changing a connection field drops open sessions and purges cached data.',
    examples: [{ password: 'n3w-s3cret' }],
  },
);

export const VerifyQuery = Type.Object(
  {
    verify: Type.Boolean({
      default: true,
      description: 'Log in once before saving; refused credentials give UPSTREAM_AUTH_FAILED and nothing is saved',
    }),
  },
  { additionalProperties: false },
);

export const Account = Type.Object(
  {
    id: Type.String({ examples: ['alice'] }),
    protocol: Protocol,
    host: Host,
    port: Port,
    security: Security,
    username: Username,
    authMethod: AuthMethod,
    oauth2: OAuth2View,
    tlsVerify: Type.Boolean(),
    name: Name,
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
    capabilities: Type.Array(Capability, {
      description:
        "What this account's protocol and server support through the gateway. IMAP: `folders`, `flags`, `search`, `copy`, `append` always; `move` with MOVE (RFC 6851) or, emulated as COPY + STORE \\Deleted + UID EXPUNGE of that message only, with UIDPLUS (Courier); `changes` only with QRESYNC (RFC 7162: deletions need VANISHED); `events` when live events are on. POP3: none of those. `send`: it has SMTP settings",
      examples: [['append', 'changes', 'copy', 'flags', 'folders', 'move', 'search']],
    }),
    email: Nullable({ ...Email, type: 'string' as const, description: 'The default sender; null when neither given nor the username' }),
    smtp: Type.Union(
      [
        Type.Object({
          host: Host,
          port: Port,
          security: Security,
          username: Username,
          authMethod: AuthMethod,
          oauth2: OAuth2View,
          tlsVerify: Type.Boolean(),
        }),
        Type.Null(),
      ],
      { description: 'SMTP submission settings without the secret; null: the account cannot send' },
    ),
  },
  { $id: 'Account', description: 'An account, never with its secret' },
);

export const AccountList = Type.Object({ accounts: Type.Array(Type.Ref('Account')) });
