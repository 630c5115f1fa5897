/**
 * Online rotation and retirement of the vault key: the running service changes its keyring on disk
 * (durably, see rotateVaultKey / retireVaultKey) and only then swaps the engine's keys, so an
 * acknowledged change survives a crash and a failed one leaves the engine as it was. Operations are
 * serialized: two rotations never interleave.
 */
import { FailedPreconditionError } from '@distri-vault/shared';
import { CryptoEngine } from './crypto-engine';
import { loadKeyring, retireVaultKey, rotateVaultKey, type ScryptParams } from './vault-key';

/** What the manager works on. */
export interface KeyringManagerComponents {
  /** The engine whose keys are swapped after each change. */
  engine: CryptoEngine;
}

/** Where the keyring lives and how it is opened (the service's own settings). */
export interface KeyringManagerOptions {
  /** CRYPTO_KEY_DIR. */
  dir: string;
  /** The key files' passphrase (CRYPTO_PASSPHRASE_FILE), kept in memory to write the new key file. */
  passphrase?: string;
  /** scrypt cost of new protected key files (tests lower it). */
  scrypt?: ScryptParams;
}

/** Result of a rotation. */
export interface RotationResult {
  /** The new current key. */
  keyFingerprint: string;
  /** The key it replaced. */
  previousFingerprint: string;
  /** Every previous key still kept. */
  previousFingerprints: string[];
}

/** Rotates and retires the vault key of a running service. */
export class KeyringManager {
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly c: KeyringManagerComponents,
    private readonly o: KeyringManagerOptions,
  ) {}

  /** A fresh current key (durable before this resolves); the old one is kept until retired. */
  rotate(): Promise<RotationResult> {
    return this.serial(async () => {
      const r = await rotateVaultKey(this.o.dir, { passphrase: this.o.passphrase, scrypt: this.o.scrypt });
      await this.reload();
      return { keyFingerprint: r.current.key.fingerprint, previousFingerprint: r.previous, previousFingerprints: this.c.engine.previousFingerprints };
    });
  }

  /** Deletes a previous key for good (durable before this resolves); returns the previous keys left. */
  retire(fingerprint: string): Promise<string[]> {
    return this.serial(async () => {
      await retireVaultKey(this.o.dir, fingerprint, { passphrase: this.o.passphrase });
      await this.reload();
      return this.c.engine.previousFingerprints;
    });
  }

  /** Re-reads the keyring from disk into the engine (which forgets its cached data keys). */
  private async reload(): Promise<void> {
    const ring = await loadKeyring(this.o.dir, { passphrase: this.o.passphrase, scrypt: this.o.scrypt });
    this.c.engine.setKeys({ vaultKey: ring.current.key, previousKeys: ring.previous });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const guarded = () => fn().catch((err: unknown) => {
      // A read-only key directory (a Kubernetes Secret volume, say): say so instead of a bare INTERNAL.
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') {
        throw new FailedPreconditionError(`the key directory ${this.o.dir} is not writable (${code}): online rotation needs a writable CRYPTO_KEY_DIR`, { cause: err });
      }
      throw err;
    });
    const run = this.tail.then(guarded, guarded);
    this.tail = run.catch(() => undefined);
    return run;
  }
}
