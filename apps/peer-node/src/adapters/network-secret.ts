/**
 * The network secret: 32 random bytes (64 hex characters, one line) shared by every member of the
 * network. The Handshake's membership proofs are HMACs under it; a node without it cannot join, and a node
 * does not start without a readable one.
 */
import { readFile, stat } from 'node:fs/promises';

/** Fewest secret bytes accepted. */
export const MIN_NETWORK_SECRET_BYTES = 32;

/** Reads and checks the secret file; throws an Error that says what to do. */
export async function loadNetworkSecret(path: string): Promise<{ secret: Buffer; worldReadable: boolean }> {
  let text: string;
  let mode: number;
  try {
    [text, mode] = await Promise.all([readFile(path, 'utf8'), stat(path).then((s) => s.mode)]);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(
      `network secret ${path} is not readable (${code ?? (err as Error).message}). Every node of a network needs the same secret file: ` +
        'copy it from a member (or, for a new network, create one: `openssl rand -hex 32 > network.secret; chmod 600 network.secret`) ' +
        'and point NODE_NETWORK_SECRET_FILE at it',
    );
  }
  const hex = text.trim();
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(hex) || hex.length < MIN_NETWORK_SECRET_BYTES * 2) {
    throw new Error(`network secret ${path} is malformed: want at least ${MIN_NETWORK_SECRET_BYTES} random bytes as hex on one line (e.g. \`openssl rand -hex 32\`)`);
  }
  return { secret: Buffer.from(hex, 'hex'), worldReadable: (mode & 0o004) !== 0 };
}
