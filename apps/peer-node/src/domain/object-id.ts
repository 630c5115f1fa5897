/** The ID of an object: the lowercase hex SHA-256 of its bytes (every kind is content-addressed). */
import { createHash } from 'node:crypto';

export const objectIdOf = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
