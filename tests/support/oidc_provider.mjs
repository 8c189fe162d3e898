// A real OpenID provider for the federation tests: panva's oidc-provider on a
// free loopback port, with its development login forms (any password).
// Environment: RP_REDIRECT (the relying party's redirect URI), CLIENT_ID,
// CLIENT_SECRET. Prints {"issuer": ...} on one line once it listens.
import http from 'node:http';
import Provider from 'oidc-provider';

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: process.env.CLIENT_ID,
      client_secret: process.env.CLIENT_SECRET,
      redirect_uris: [process.env.RP_REDIRECT],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    pkce: { required: () => true },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['federation-tests-only'] },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: `${id}@example.test`, email_verified: true, name: id };
        },
      };
    },
  });
  provider.on('server_error', (ctx, err) => console.error('oidc-provider server_error', err));
  server.on('request', provider.callback());
  console.log(JSON.stringify({ issuer }));
});
