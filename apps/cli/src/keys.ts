/**
 * `distri-vault keys ...`: the home node's vault key. `keys show` (fingerprint, unfinished rotation),
 * `keys rotate` (online rotation: new key, every kept version re-wrapped, old keys retired), and
 * `keys shred <remote> [--version N]` (delete with crypto-shredding). After a rotation the old recovery
 * key no longer opens the vault: both commands say so on stderr, every time.
 */
import type { Command } from 'commander';
import { CliError, EXIT, encodePath, type GatewayClient } from './client';

/** What the commands need from the program. */
export interface KeysCommandContext {
  ctx: () => { opts: { json?: boolean }; client: GatewayClient };
  print: (opts: { json?: boolean }, value: unknown, text: () => string) => void;
}

interface RotationView {
  fingerprint: string;
  retiredFingerprints: string[];
  manifestsRewritten: number;
  versionsShredded: number;
  durationMs: number;
  notice: string;
}

function describeRotation(r: RotationView): string {
  const retired = r.retiredFingerprints.length ? r.retiredFingerprints.join(', ') : 'none';
  return `vault key is now ${r.fingerprint} (retired: ${retired}); ${r.manifestsRewritten} manifests rewritten, ${r.versionsShredded} versions shredded in ${(r.durationMs / 1000).toFixed(1)} s`;
}

/** Loud on stderr even with --json: losing the recovery key means losing the vault. */
function warnRecovery(r: RotationView): void {
  if (r.notice) process.stderr.write(`IMPORTANT: ${r.notice}\n`);
}

/** Adds the `keys` command group to `program`. */
export function addKeysCommands(program: Command, { ctx, print }: KeysCommandContext): void {
  const keys = program.command('keys').description("the home node's vault key: show, rotate, shred a file");
  keys
    .command('show')
    .description('the vault key fingerprint, and whether a rotation is unfinished')
    .action(async () => {
      const { opts, client } = ctx();
      const k: { fingerprint: string; createdUnixMs: number; previousFingerprints: string[]; rotationUnfinished: boolean } = await client.json('GET', '/v1/keys');
      print(opts, k, () =>
        `vault key ${k.fingerprint} (created ${new Date(k.createdUnixMs).toISOString()})` +
        (k.rotationUnfinished ? `\nprevious keys still kept: ${k.previousFingerprints.join(', ')} (a rotation did not finish: run keys rotate)` : ''),
      );
    });
  keys
    .command('rotate')
    .description('rotate the vault key: re-wrap every kept version under a new key, then retire the old one')
    .action(async () => {
      const { opts, client } = ctx();
      const r: RotationView = await client.json('POST', '/v1/keys/rotate');
      print(opts, r, () => describeRotation(r));
      warnRecovery(r);
    });
  keys
    .command('shred')
    .description('delete a file (every version, or one) so that no copy on any peer can ever be decrypted')
    .argument('<remote>', 'path in the vault')
    .option('--version <n>', 'shred only this version')
    .action(async (remote: string, cmd: { version?: string }) => {
      const { opts, client } = ctx();
      let q = '';
      if (cmd.version !== undefined) {
        if (!/^[1-9][0-9]{0,15}$/.test(cmd.version)) throw new CliError(`invalid version ${JSON.stringify(cmd.version)}: want a positive integer`, EXIT.usage, 'invalid_argument');
        q = `?version=${cmd.version}`;
      }
      const r: { removed: number; rotation: RotationView } = await client.json('DELETE', `/v1/shred/${encodePath(remote)}${q}`);
      print(opts, { path: remote, ...r }, () => `shredded ${r.removed} version(s) of ${remote}; ${describeRotation(r.rotation)}`);
      warnRecovery(r.rotation);
    });
}
