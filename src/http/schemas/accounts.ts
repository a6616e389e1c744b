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
    tlsVerify: Type.Optional(Type.Boolean({ default: true, description: 'false only for servers with self-signed certificates' })),
    name: Type.Optional(Name),
  },
  {
    additionalProperties: false,
    description: 'Exactly one of `password` and `accessToken`',
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
    tlsVerify: Type.Optional(Type.Boolean()),
    name: Type.Optional(Name),
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
    authMethod: StringEnum(['password', 'accessToken'] as const),
    tlsVerify: Type.Boolean(),
    name: Name,
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
    capabilities: Type.Array(Capability, {
      description: "What this account's protocol and server support through the gateway",
      examples: [['append', 'changes', 'copy', 'flags', 'folders', 'move', 'search']],
    }),
  },
  { $id: 'Account', description: 'An account, never with its secret' },
);

export const AccountList = Type.Object({ accounts: Type.Array(Type.Ref('Account')) });
