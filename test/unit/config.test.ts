import { expect, it } from 'vitest';
import { ConfigError, loadConfig, parseDotEnv, secretValues } from '../../src/config.js';

it('has the documented defaults', () => {
  const c = loadConfig({}, '/srv');
  expect(c).toMatchObject({
    port: 5600, host: '127.0.0.1', maxConcurrentSessions: 50, maxQueue: 1000, idleTimeoutMs: 1_800_000,
    portRange: [7000, 7999], replayBytes: 1_048_576, wsMaxBackpressure: 4_194_304, maxBodyBytes: 1_048_576,
    dataDir: '/srv/data', workspaceBasePath: '/srv/workspaces', jwtOrgClaim: 'orgId', logLevel: 'info',
  });
});

it('names the variable in one line when a value is bad', () => {
  expect(() => loadConfig({ IDLE_TIMEOUT_MS: '-1' })).toThrow(ConfigError);
  expect(() => loadConfig({ IDLE_TIMEOUT_MS: '-1' })).toThrow(/^IDLE_TIMEOUT_MS: /);
  expect(() => loadConfig({ PORT_RANGE: '8000-7000' })).toThrow(/^PORT_RANGE: /);
  expect(() => loadConfig({ REDIS_URL: 'not a url' })).toThrow(/^REDIS_URL: /);
  expect(() => loadConfig({ LOG_LEVEL: 'loud' })).toThrow(/^LOG_LEVEL: /);
});

it('parses .env files: comments, quotes, export', () => {
  expect(parseDotEnv('# c\nA=1\nexport B="two words"\nC=\'x#y\'\nD=v # trailing\nbad line\n')).toEqual({ A: '1', B: 'two words', C: 'x#y', D: 'v' });
});

it('collects secrets, including a Redis password, for redaction', () => {
  const env = { JWT_SECRET: 'j'.repeat(40), SPINFORGE_PARTNER_KEY: 'partner-key-1', REDIS_URL: 'redis://:hunter22@localhost:6379' };
  const c = loadConfig(env);
  expect(secretValues(c, env).sort()).toEqual(['hunter22', 'j'.repeat(40), 'partner-key-1'].sort());
});
