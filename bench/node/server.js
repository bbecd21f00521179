// node-oidc-provider, configured to match oauthd's bench scenarios (bench/providers.py writes
// the JSON config this reads): `node server.js CONFIG.json` serves until SIGTERM/SIGINT.
//
// - ES256 signing key, generated at start (oauthd's default algorithm).
// - Storage is an in-memory Map (below): NOT durable, unlike oauthd, which commits every code,
//   token and grant to SQLite before answering. Node's bundled memory adapter is an LRU of
//   1,000 entries that would evict the session or grant mid-run and whose grant index grows
//   with every rotated refresh token, so it is not used.
// - Access tokens for the resource are JWTs (RFC 9068, resourceIndicators accessTokenFormat
//   'jwt'), as oauthd's are; tokens for userinfo (no resource) stay opaque: node only serves
//   /me for opaque tokens.
// - client_credentials and introspection on; refresh tokens are issued for the
//   refresh_token grant and always rotated (oauthd always rotates); devInteractions (login
//   with any password, then a consent page) drive the code flow.
// - No request log (node-oidc-provider has none; oauthd's access log is on in its rows).
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const { service, resource_server: resourceServer, web } = config.clients;

// Expired entries are dropped when read; a run is minutes long, so nothing is swept.
const store = new Map();
const grants = new Map(); // grantId -> Set of keys, for revokeByGrantId

class MapAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : Infinity;
    store.set(key, { payload, expiresAt });
    if (this.model === 'Session') store.set(`sessionUid:${payload.uid}`, { payload: id, expiresAt });
    if (payload.userCode) store.set(`userCode:${payload.userCode}`, { payload: id, expiresAt });
    if (payload.grantId) {
      if (!grants.has(payload.grantId)) grants.set(payload.grantId, new Set());
      grants.get(payload.grantId).add(key);
    }
  }

  static read(key) {
    const entry = store.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  async find(id) {
    return MapAdapter.read(this.key(id));
  }

  async findByUid(uid) {
    const id = MapAdapter.read(`sessionUid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = MapAdapter.read(`userCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const payload = MapAdapter.read(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    const key = this.key(id);
    const payload = MapAdapter.read(key);
    store.delete(key);
    if (payload?.grantId) grants.get(payload.grantId)?.delete(key);
  }

  async revokeByGrantId(grantId) {
    for (const key of grants.get(grantId) ?? []) store.delete(key);
    grants.delete(grantId);
  }
}

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: 'bench-es256' };

const client = (id, extra) => ({
  client_id: id,
  client_secret: config.secrets[id],
  token_endpoint_auth_method: 'client_secret_basic',
  redirect_uris: [],
  response_types: [],
  grant_types: [],
  ...extra,
});

const provider = new Provider(config.issuer, {
  adapter: MapAdapter,
  jwks: { keys: [signingKey] },
  clients: [
    client(service, { grant_types: ['client_credentials'], scope: config.scope }),
    client(resourceServer, { grant_types: ['client_credentials'] }),
    client(web, {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [config.redirect_uri],
    }),
  ],
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  cookies: { keys: ['bench-cookie-signing-key'] }, // signed cookies, as in a deployment
  // Lifetimes as oauthd's defaults (config/production.example.toml [tokens], [sessions]).
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    ClientCredentials: 3600,
    Grant: 30 * 24 * 3600,
    IdToken: 3600,
    Interaction: 600,
    RefreshToken: 14 * 24 * 3600,
    Session: 24 * 3600,
  },
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  scopes: ['openid', 'email', 'offline_access', config.scope],
  findAccount: async (_ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub, email: sub, email_verified: true }),
  }),
  pkce: { required: () => true },
  issueRefreshToken: async (_ctx, c) => c.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: () => true,
  expiresWithSession: async () => false,
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // The resource server may introspect tokens for its audience, a client its own tokens.
      allowedPolicy: async (_ctx, caller, token) => caller.clientId === token.clientId
        || (caller.clientId === resourceServer && token.aud === config.resource),
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: async () => false,
      getResourceServerInfo: async (_ctx, indicator) => {
        if (indicator !== config.resource) throw new Provider.errors.InvalidTarget();
        return {
          scope: config.scope,
          audience: config.resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 3600,
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
});
provider.proxy = false;

const server = provider.listen(config.port, '127.0.0.1');
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
