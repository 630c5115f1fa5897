/** PeerService protocol version this build speaks; peers with another version are refused. */
export const PROTOCOL_VERSION = 1;
