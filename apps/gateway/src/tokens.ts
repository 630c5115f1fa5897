/** Nest injection tokens. esbuild emits no decorator metadata, so every provider is injected by token. */

/** The NodeClient of the home node. */
export const NODE_CLIENT = Symbol('NodeClient');
/** The pino logger of the process. */
export const LOGGER = Symbol('Logger');
/** The TokenStore of bearer tokens. */
export const TOKEN_STORE = Symbol('TokenStore');
/** The GatewayMetrics. */
export const METRICS = Symbol('GatewayMetrics');
/** The LimitOptions. */
export const LIMITS = Symbol('LimitOptions');
