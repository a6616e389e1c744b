/**
 * Process entry: load the config, build the app, listen; on SIGINT/SIGTERM stop accepting, let
 * requests finish, log sessions out (LOGOUT/QUIT) and close Redis, bounded in time.
 */
import { ConfigError, loadConfig } from './config.js';
import { buildApp } from './app.js';

const SHUTDOWN_GRACE_MS = 10_000;

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`mailgw: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }

  const app = await buildApp(config);
  await app.listen({ port: config.port, host: config.host });
  if (config.apiKeys.length === 0) {
    app.log.warn('API_KEYS is empty: serving without authentication, on loopback only');
  }

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      app.log.error('shutdown took too long; exiting');
      process.exit(1);
    }, SHUTDOWN_GRACE_MS);
    force.unref();
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        app.log.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err: unknown) => {
  process.stderr.write(`mailgw: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
