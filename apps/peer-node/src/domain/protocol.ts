/**
 * PeerService protocol version this build speaks; peers with another version are refused.
 * 2: authenticated Handshake (Hello -> Welcome -> Proof -> Accepted) over TLS, session tokens.
 */
export const PROTOCOL_VERSION = 2;

/** Protocol features this build supports, sent in Hello and Welcome. */
export const CAPABILITIES: readonly string[] = ['session-token', 'tls-binding'];

/** Features a peer must announce, or the Handshake fails with FAILED_PRECONDITION. */
export const REQUIRED_CAPABILITIES: readonly string[] = ['session-token', 'tls-binding'];

/** Call metadata key carrying the session token on StoreChunk, GetFile and SyncFolder. */
export const SESSION_METADATA_KEY = 'x-vault-session';
