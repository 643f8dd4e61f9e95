// A real OpenID Connect provider for Motcua's tests and `make run`: panva's certified
// oidc-provider, with the officers of the roster as accounts and the portal as its client.
//
//   node tools/oidc/provider.mjs --port 9400 --accounts accounts.json --clients clients.json \
//        [--keys jwks.json] [--access-token-ttl 900] [--resource urn:motcua] [--audience motcua]
//
// Every option can also come from the environment: MOTCUA_OIDC_PORT, MOTCUA_OIDC_ACCOUNTS,
// MOTCUA_OIDC_CLIENTS, MOTCUA_OIDC_KEYS, MOTCUA_OIDC_ACCESS_TOKEN_TTL, MOTCUA_OIDC_RESOURCE,
// MOTCUA_OIDC_AUDIENCE. Issuer: http://127.0.0.1:<port>. Access tokens are RS256 JWTs for the
// resource `urn:motcua` whose `aud` is `motcua`, with `sub`, `role` and `unit`; ID tokens carry
// name, role and unit. Signing keys: the private JWKs of --keys (the first one signs; list the
// old key after the new one to rotate), else one RSA key generated at start.
// Accounts: [{"id", "password", "name", "role", "unit"}]. Clients: oidc-provider's client
// metadata ({"client_id", "client_secret", "redirect_uris", "post_logout_redirect_uris", ...}).

import { createHash, generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

// tools/node holds the npm packages (npm ci --prefix tools/node); ESM resolves no NODE_PATH.
import Provider from '../node/node_modules/oidc-provider/lib/index.js';

import { errorPage, loggedOutPage, loginPage, logoutPage } from './pages.mjs';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.MOTCUA_OIDC_PORT ?? '9400' },
    accounts: { type: 'string', default: process.env.MOTCUA_OIDC_ACCOUNTS },
    clients: { type: 'string', default: process.env.MOTCUA_OIDC_CLIENTS },
    keys: { type: 'string', default: process.env.MOTCUA_OIDC_KEYS },
    'access-token-ttl': { type: 'string', default: process.env.MOTCUA_OIDC_ACCESS_TOKEN_TTL ?? '900' },
    resource: { type: 'string', default: process.env.MOTCUA_OIDC_RESOURCE ?? 'urn:motcua' },
    audience: { type: 'string', default: process.env.MOTCUA_OIDC_AUDIENCE ?? 'motcua' },
  },
});
if (!args.accounts || !args.clients) {
  console.error('usage: provider.mjs --port N --accounts FILE --clients FILE [--keys FILE]');
  process.exit(2);
}

const port = Number(args.port);
const issuer = `http://127.0.0.1:${port}`;
const accessTokenTTL = Number(args['access-token-ttl']);
const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'));
const accounts = new Map(readJson(args.accounts).map((a) => [a.id, a]));
const clients = readJson(args.clients).map((c) => ({
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  ...c,
}));

function signingKeys() {
  if (args.keys) return readJson(args.keys).keys;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = `motcua-${randomBytes(6).toString('hex')}`;
  return [{ ...privateKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' }];
}

const digest = (text) => createHash('sha256').update(String(text), 'utf8').digest();

function checkPassword(username, password) {
  const account = accounts.get(username);
  // Compare digests in constant time; an unknown user costs the same as a wrong password.
  const ok = timingSafeEqual(digest(account?.password ?? randomBytes(16)), digest(password));
  return ok && account ? account : undefined;
}

const resourceServer = {
  scope: '',
  audience: args.audience,
  accessTokenFormat: 'jwt',
  accessTokenTTL,
  jwt: { sign: { alg: 'RS256' } },
};

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: signingKeys() },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  claims: { openid: ['sub'], profile: ['name', 'role', 'unit'] },
  conformIdTokenClaims: false, // the ID token itself carries name, role and unit
  pkce: { required: () => true }, // S256 is the only method oidc-provider accepts
  features: {
    devInteractions: { enabled: false },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => args.resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, indicator) => {
        if (indicator !== args.resource) throw new Provider.errors.InvalidTarget();
        return resourceServer;
      },
    },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: (ctx, form) => {
        ctx.type = 'html';
        ctx.body = logoutPage(ctx.host, form);
      },
      postLogoutSuccessSource: (ctx) => {
        ctx.type = 'html';
        ctx.body = loggedOutPage();
      },
    },
  },
  findAccount: (_ctx, id) => {
    const account = accounts.get(id);
    if (!account) return undefined;
    return {
      accountId: id,
      claims: () => ({ sub: id, name: account.name, role: account.role, unit: account.unit }),
    };
  },
  extraTokenClaims: (_ctx, token) => {
    const account = accounts.get(token.accountId);
    return account ? { role: account.role, unit: account.unit } : undefined;
  },
  // Refresh tokens for the portal (grant type refresh_token) without offline_access: they
  // live as long as the officer's session at the provider, and die with its sign-out.
  issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: {
    AccessToken: accessTokenTTL,
    AuthorizationCode: 60,
    IdToken: accessTokenTTL,
    Interaction: 600,
    Session: 10 * 3600,
    Grant: 10 * 3600,
    RefreshToken: 10 * 3600,
  },
  clientBasedCORS: () => false,
  renderError: (ctx, out) => {
    ctx.type = 'html';
    ctx.body = errorPage(out);
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
});

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function sendHtml(res, status, html) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(html);
}

async function grantConsent(req, res, details) {
  // The portal is first-party: its consent is granted without asking the officer.
  const { prompt, params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return sendHtml(res, 400, errorPage({ error: 'invalid_request' }));
  const client = await provider.Client.find(details.params.client_id);
  const clientName = client?.clientName ?? details.params.client_id;
  if (details.prompt.name === 'consent') return grantConsent(req, res, details);
  if (req.method === 'GET' && !action) return sendHtml(res, 200, loginPage({ uid, clientName }));
  if (req.method === 'POST' && action === 'login') {
    const form = await readForm(req);
    const username = (form.get('username') ?? '').trim();
    const account = checkPassword(username, form.get('password') ?? '');
    if (!account) {
      const error = 'Tên đăng nhập hoặc mật khẩu không đúng.';
      return sendHtml(res, 401, loginPage({ uid, clientName, username, error }));
    }
    return provider.interactionFinished(req, res, { login: { accountId: account.id } }, {
      mergeWithLastSubmission: false,
    });
  }
  if (req.method === 'POST' && action === 'abort') {
    // The officer cancels: the client gets the standard access_denied error back.
    const result = { error: 'access_denied', error_description: 'the officer cancelled the sign-in' };
    return provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
  }
  return sendHtml(res, 405, errorPage({ error: 'method_not_allowed' }));
}

const callback = provider.callback();
const server = createServer((req, res) => {
  const match = /^\/interaction\/([\w-]+)(?:\/(login|abort))?\/?$/.exec(req.url.split('?')[0]);
  if (!match) return callback(req, res);
  interaction(req, res, match[1], match[2]).catch((err) => {
    // An expired or unknown interaction (SessionNotFound) is the officer's, not a crash.
    sendHtml(res, err.statusCode ?? 500, errorPage({ error: err.error ?? 'server_error', error_description: err.error_description ?? 'Phiên đăng nhập đã hết hạn, hãy thử lại.' }));
  });
});

server.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer} (${accounts.size} accounts, ${clients.length} clients)`);
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(0)); // nothing to flush: everything is in memory
}
