// node-oidc-provider for the comparison benchmark: a 2-worker node cluster (BENCH_NODE_WORKERS)
// on 127.0.0.1:BENCH_NODE_PORT with one ES256 key, client_credentials issuing JWT access
// tokens for a resource indicator (opaque tokens without one), introspection and revocation.
// The workers share token state through Redis (an in-memory adapter is per process, so an
// opaque token issued by one worker would be unknown to the other).
import cluster from 'node:cluster';
import { generateKeyPairSync } from 'node:crypto';

const port = Number(process.env.BENCH_NODE_PORT);
const issuer = `http://127.0.0.1:${port}`;
const workers = Number(process.env.BENCH_NODE_WORKERS || 2);

if (cluster.isPrimary) {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: 'bench-es256' };
  for (let i = 0; i < workers; i += 1) {
    cluster.fork({ BENCH_NODE_JWK: JSON.stringify(jwk) });
  }
  let online = 0;
  cluster.on('listening', () => {
    online += 1;
    if (online === workers) console.log(`listening ${issuer} workers=${workers}`);
  });
  const stop = () => {
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  cluster.on('exit', (w, code) => {
    console.error(`worker ${w.process.pid} exited with ${code}`);
    process.exit(1);
  });
} else {
  const { default: Provider } = await import('oidc-provider');
  const { default: Redis } = await import('ioredis');
  const redis = new Redis(process.env.BENCH_NODE_REDIS_URL, { keyPrefix: process.env.BENCH_NODE_REDIS_PREFIX });

  // The shape of node-oidc-provider's example Redis adapter, reduced to what these flows use.
  class RedisAdapter {
    constructor(name) { this.name = name; }
    key(id) { return `${this.name}:${id}`; }
    async upsert(id, payload, expiresIn) {
      const multi = redis.multi();
      multi.set(this.key(id), JSON.stringify(payload));
      if (expiresIn) multi.expire(this.key(id), expiresIn);
      if (payload.grantId) {
        const grantKey = `grant:${payload.grantId}`;
        multi.rpush(grantKey, this.key(id));
        if (expiresIn) multi.expire(grantKey, expiresIn);
      }
      await multi.exec();
    }
    async find(id) {
      const data = await redis.get(this.key(id));
      return data ? JSON.parse(data) : undefined;
    }
    async findByUid() { return undefined; }
    async findByUserCode() { return undefined; }
    async consume(id) {
      const data = await this.find(id);
      if (data) await redis.set(this.key(id), JSON.stringify({ ...data, consumed: Math.floor(Date.now() / 1000) }), 'KEEPTTL');
    }
    async destroy(id) { await redis.del(this.key(id)); }
    async revokeByGrantId(grantId) {
      const grantKey = `grant:${grantId}`;
      const keys = await redis.lrange(grantKey, 0, -1);
      await redis.del(...keys, grantKey);
    }
  }

  const provider = new Provider(issuer, {
    adapter: RedisAdapter,
    clients: [{
      client_id: process.env.BENCH_CLIENT_ID,
      client_secret: process.env.BENCH_CLIENT_SECRET,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'api',
      id_token_signed_response_alg: 'ES256',
    }],
    jwks: { keys: [JSON.parse(process.env.BENCH_NODE_JWK)] },
    scopes: ['api'],
    ttl: { ClientCredentials: 900 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resourceIndicator) => ({
          scope: 'api',
          audience: resourceIndicator,
          accessTokenTTL: 900,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        }),
      },
    },
  });
  provider.listen(port, '127.0.0.1');
}
