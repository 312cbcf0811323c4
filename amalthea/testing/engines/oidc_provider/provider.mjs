// A real OpenID provider (node-oidc-provider) for Amalthea's tests.
//
// Configuration arrives as JSON in the OIDC_TEST_CONFIG environment variable (written by
// amalthea/testing/engines/oidc_provider/__init__.py). The provider listens on 127.0.0.1 on an
// ephemeral port and prints "READY <port>" once it serves. It has its own login form that checks
// a password (devInteractions would accept any name), and a one-button consent form, both plain
// HTML forms so a test's HTTP client can submit them without a browser.
import http from 'node:http';
import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';

const cfg = JSON.parse(process.env.OIDC_TEST_CONFIG);

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), kid: 'test-key-1', use: 'sig', alg: 'RS256' };

const users = cfg.users; // { name: { password, email, groups, name } }

const provider = new Provider(issuer, {
  clients: cfg.clients,
  jwks: { keys: [jwk] },
  cookies: { keys: ['amalthea-test-cookie-key'] },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: true },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: {
    AccessToken: cfg.access_token_ttl || 3600,
    IdToken: 3600,
    RefreshToken: 86400,
    Session: 3600,
    Interaction: 600,
    Grant: 86400,
    AuthorizationCode: 60,
  },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  async findAccount(ctx, sub) {
    const u = users[sub];
    if (!u) return undefined;
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          preferred_username: sub,
          name: u.name || sub,
          email: u.email || `${sub}@example.org`,
          email_verified: true,
          groups: u.groups || [],
        };
      },
    };
  },
});

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head>`
    + `<body><h1>${esc(title)}</h1>${body}</body></html>`;
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.on('data', (chunk) => { data += chunk; });
    req.on('end', () => resolve(Object.fromEntries(new URLSearchParams(data))));
    req.on('error', reject);
  });
}

function loginForm(uid, error) {
  return page('Sign in to the test provider', `${error ? `<p id="error">${esc(error)}</p>` : ''}
    <form method="post" action="/interaction/${esc(uid)}">
      <input type="hidden" name="prompt" value="login">
      <label>Username <input id="username" name="login" autofocus></label>
      <label>Password <input id="password" name="password" type="password"></label>
      <button id="sign-in" type="submit">Sign in</button>
    </form>`);
}

function consentForm(uid, clientId) {
  return page('Authorize', `<p>Allow ${esc(clientId)} to read your profile and groups?</p>
    <form method="post" action="/interaction/${esc(uid)}">
      <input type="hidden" name="prompt" value="consent">
      <button id="allow" type="submit">Allow</button>
    </form>`);
}

async function interaction(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session, grantId } = details;
  if (req.method === 'GET') {
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end(prompt.name === 'login' ? loginForm(uid) : consentForm(uid, params.client_id));
    return;
  }
  const form = await readForm(req);
  if (form.prompt === 'login') {
    const user = users[form.login];
    if (!user || user.password !== form.password) {
      res.statusCode = 200;
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(loginForm(uid, 'Wrong username or password.'));
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: form.login } },
      { mergeWithLastSubmission: false });
    return;
  }
  // consent: grant everything that was asked for
  const grant = grantId ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const d = prompt.details;
  if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
  if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
  if (d.missingResourceScopes) {
    for (const [indicator, scope] of Object.entries(d.missingResourceScopes)) {
      grant.addResourceScope(indicator, scope.join(' '));
    }
  }
  await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } },
    { mergeWithLastSubmission: true });
}

const callback = provider.callback();
server.on('request', (req, res) => {
  const m = /^\/interaction\/([^/?]+)/.exec(req.url);
  if (!m) { callback(req, res); return; }
  interaction(req, res, m[1]).catch((err) => {
    console.error('interaction error', err);
    res.statusCode = 400;
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end(page('Interaction failed', `<p>${esc(err.message)}</p>`));
  });
});

console.log(`READY ${port}`);
