/**
 * Reading configuration: each app declares a zod schema of its environment variables (with defaults)
 * and calls `loadConfig` once at start. Bad values fail fast, naming every bad key.
 */
import { z } from 'zod';

/** Thrown when the environment does not satisfy an app's schema. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Parses `env` with `schema`; throws ConfigError listing every invalid variable. */
export function loadConfig<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const result = schema.safeParse(env);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  return result.data;
}

/** A TCP port from an environment string; 0 asks the OS for a free one. */
export const portVar = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);

/** A host:port address. */
export const addressVar = (fallback: string) =>
  z
    .string()
    .regex(/^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/, 'want host:port')
    .default(fallback);

/** host:port of a health-only listener (see startGrpcServer), or empty for none. */
export const healthAddressVar = () =>
  z
    .string()
    .regex(/^$|^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/, 'want host:port, or empty')
    .default('');

/** A comma-separated list of host:port addresses (empty allowed). */
export const addressListVar = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((s) => s.split(',').map((a) => a.trim()).filter((a) => a.length > 0))
    .pipe(z.array(z.string().regex(/^[^\s:]+:\d{1,5}$/, 'want host:port')));

/** A positive integer with bounds. */
export const intVar = (fallback: number, min: number, max: number) => z.coerce.number().int().min(min).max(max).default(fallback);

/** pino log level. */
export const logLevelVar = () => z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info');
