import { Type } from 'typebox';
import { SCOPES } from '../../tenants/scopes.js';
import { ACCOUNT_ID_PATTERN, Nullable, StringEnum } from './common.js';

const Scope = StringEnum(SCOPES, {
  description: '`read`: every GET under an account; `write`: flags, move, copy, delete, append, mailbox changes; `send`: sending; `events`: event streams',
});

export const TokenId = Type.String({ pattern: '^tok_[A-Za-z0-9_-]{1,64}$', description: 'Token id (not the token)', examples: ['tok_7Hq2mXc9LbVn0aPe'] });

export const TokenCreateBody = Type.Object(
  {
    accounts: Type.Array(Type.String({ pattern: `^(\\*|${ACCOUNT_ID_PATTERN.slice(1, -1)})$` }), {
      minItems: 1,
      maxItems: 1000,
      uniqueItems: true,
      description: 'Account ids the token may reach, or `["*"]` for every account (also those created later)',
      examples: [['alice']],
    }),
    scopes: Type.Array(Scope, { minItems: 1, uniqueItems: true, examples: [['read', 'write']] }),
    description: Type.Optional(Type.String({ maxLength: 200, description: 'What the token is for', examples: ['Alice in the web app'] })),
    expiresAt: Type.Optional(Type.String({ format: 'date-time', description: 'When the token stops working; must be in the future' })),
  },
  { additionalProperties: false, examples: [{ accounts: ['alice'], scopes: ['read'], description: 'Alice in the web app' }] },
);

const tokenProperties = {
  id: TokenId,
  accounts: Type.Array(Type.String(), { examples: [['alice']] }),
  scopes: Type.Array(Scope),
  description: Nullable(Type.String()),
  expiresAt: Nullable(Type.String({ format: 'date-time' })),
  createdAt: Type.String({ format: 'date-time' }),
  lastUsedAt: Nullable(Type.String({ format: 'date-time', description: 'Last request made with it (to within a minute)' })),
};

export const Token = Type.Object(tokenProperties, { $id: 'Token', description: 'An access token, never with its value' });

export const CreatedToken = Type.Object(
  {
    ...tokenProperties,
    token: Type.String({ description: 'The token itself, shown only in this answer: `Authorization: Bearer <token>`', examples: ['mgw_3x…'] }),
  },
  { description: 'The new token, with its value (stored only as a hash: it cannot be shown again)' },
);

export const TokenList = Type.Object({ tokens: Type.Array(Type.Ref('Token')) });
export const TokenParams = Type.Object({ id: TokenId });
