// The authorization server of portcullis' integration tests: oidc-provider (the certified
// OpenID provider library for Node.js), on a free loopback port over plain HTTP.
//
//   node server.mjs            prints one JSON line {"issuer": "http://127.0.0.1:PORT"} once it
//                              listens, then serves until stdin closes (the test harness holds it)
//
// Clients (client_credentials grant, client_secret_basic), for the resource `orders-api`, whose
// access tokens are JWTs (RFC 9068, `typ: at+jwt`) signed RS256 with a key made at start:
//   bound / bound-secret   certificate-bound tokens (RFC 8705 §3: `cnf.x5t#S256`); the client
//                          certificate, PEM, URL-encoded, comes in the `x-client-cert` header
//                          (the tests talk to it over plain HTTP, as behind a TLS terminator)
//   dpop / dpop-secret     DPoP-bound tokens (RFC 9449: `cnf.jkt`); the token request carries
//                          a DPoP proof for POST {issuer}/token
//   plain / plain-secret   unbound tokens; for the resource https://opaque-api.test (`resource`
//                          parameter), opaque tokens (RFC 7662 introspection)
//   portcullis / portcullis-secret   the gateway's own client, for introspection
//   portcullis-jwt         the gateway's client with private_key_jwt (RFC 7523): its public JWKS
//                          comes in the environment variable PORTCULLIS_CLIENT_JWKS
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

const RESOURCE = 'https://orders-api.test';
const OPAQUE_RESOURCE = 'https://opaque-api.test';
// Opaque tokens that live three seconds (an expiry the tests can wait for).
const SHORT_RESOURCE = 'https://short-api.test';

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'as-rsa-1', use: 'sig', alg: 'RS256' };

const clients = [
  {
    client_id: 'bound',
    client_secret: 'bound-secret',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    tls_client_certificate_bound_access_tokens: true,
  },
  {
    client_id: 'dpop',
    client_secret: 'dpop-secret',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    dpop_bound_access_tokens: true,
  },
  {
    client_id: 'plain',
    client_secret: 'plain-secret',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  },
  {
    client_id: 'portcullis',
    client_secret: 'portcullis-secret',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  },
];

if (process.env.PORTCULLIS_CLIENT_JWKS) {
  clients.push({
    client_id: 'portcullis-jwt',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'private_key_jwt',
    jwks: JSON.parse(process.env.PORTCULLIS_CLIENT_JWKS),
  });
}

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: [jwk] },
    scopes: ['read:orders', 'write:orders'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      dPoP: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => ([OPAQUE_RESOURCE, SHORT_RESOURCE].includes(resource)
          ? {
            scope: 'read:orders write:orders',
            audience: 'orders-api',
            accessTokenTTL: resource === SHORT_RESOURCE ? 3 : 600,
            accessTokenFormat: 'opaque',
          }
          : {
            scope: 'read:orders write:orders',
            audience: 'orders-api',
            accessTokenTTL: 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          }),
      },
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        getCertificate(ctx) {
          const pem = ctx.get('x-client-cert');
          return pem ? decodeURIComponent(pem) : undefined;
        },
      },
    },
  });
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

// The harness holds stdin open: when the test ends (or dies), stdin closes and so does this.
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
