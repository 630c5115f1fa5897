/**
 * PeerService protocol version this build speaks; peers with another version are refused.
 * 2: authenticated Handshake (Hello -> Welcome -> Proof -> Accepted) over TLS, session tokens.
 */
export const PROTOCOL_VERSION = 2;

/** Capability: the peer accepts PeerMessage steps on the control stream. */
export const PEER_MESSAGES = 'peer-messages';

/**
 * Capability: the peer stores, checks and applies GC records (OBJECT_KIND_GC_RECORD) and honours their
 * tombstones. Required: a peer without it would refuse every record (INVALID_ARGUMENT) and keep storing
 * and pushing garbage, so such a build is refused at the Handshake with a clear FAILED_PRECONDITION.
 */
export const GC_RECORDS = 'gc-records';

/**
 * Protocol features this build supports, sent in Hello and Welcome. `peer-messages`: PeerMessage steps on
 * the control stream (a peer without it would end the stream on one, so it is sent none).
 */
export const CAPABILITIES: readonly string[] = ['session-token', 'tls-binding', PEER_MESSAGES, GC_RECORDS];

/** Features a peer must announce, or the Handshake fails with FAILED_PRECONDITION. */
export const REQUIRED_CAPABILITIES: readonly string[] = ['session-token', 'tls-binding', GC_RECORDS];

/** Call metadata key carrying the session token on StoreChunk, GetFile and SyncFolder. */
export const SESSION_METADATA_KEY = 'x-vault-session';
