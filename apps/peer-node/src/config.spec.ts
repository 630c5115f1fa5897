import { ConfigError } from '@distri-vault/shared';
import { readConfig } from './config';

describe('peer-node config: membership and discovery', () => {
  it('defaults: suspect after 3 heartbeats, down after 15 s, no DNS discovery, resolved every 30 s', () => {
    const c = readConfig({});
    expect([c.NODE_HEARTBEAT_MS, c.NODE_SUSPECT_AFTER_MS, c.NODE_DOWN_AFTER_MS]).toEqual([2000, 6000, 15_000]);
    expect([c.NODE_DISCOVERY_DNS, c.NODE_DISCOVERY_INTERVAL_MS]).toEqual([undefined, 30_000]);
    expect(readConfig({ NODE_DISCOVERY_DNS: '' }).NODE_DISCOVERY_DNS).toBeUndefined();
  });

  it('follows the heartbeat: suspect 3 x, down at least suspect + one heartbeat', () => {
    const c = readConfig({ NODE_HEARTBEAT_MS: '10000' });
    expect([c.NODE_SUSPECT_AFTER_MS, c.NODE_DOWN_AFTER_MS]).toEqual([30_000, 40_000]);
    const fast = readConfig({ NODE_HEARTBEAT_MS: '300', NODE_DOWN_AFTER_MS: '4000' });
    expect([fast.NODE_SUSPECT_AFTER_MS, fast.NODE_DOWN_AFTER_MS]).toEqual([900, 4000]);
    const slow = readConfig({ NODE_SUSPECT_AFTER_MS: '20000' });
    expect(slow.NODE_DOWN_AFTER_MS).toBe(22_000);
  });

  it('takes explicit values and a name:port to resolve', () => {
    const c = readConfig({ NODE_SUSPECT_AFTER_MS: '1234', NODE_DOWN_AFTER_MS: '5678', NODE_DISCOVERY_DNS: 'peer-node.ns.svc.cluster.local:7101', NODE_DISCOVERY_INTERVAL_MS: '5000' });
    expect([c.NODE_SUSPECT_AFTER_MS, c.NODE_DOWN_AFTER_MS, c.NODE_DISCOVERY_DNS, c.NODE_DISCOVERY_INTERVAL_MS]).toEqual([1234, 5678, 'peer-node.ns.svc.cluster.local:7101', 5000]);
  });

  it.each([
    [{ NODE_SUSPECT_AFTER_MS: '5000', NODE_DOWN_AFTER_MS: '5000' }, 'NODE_DOWN_AFTER_MS'],
    [{ NODE_SUSPECT_AFTER_MS: '20000', NODE_DOWN_AFTER_MS: '15000' }, 'NODE_DOWN_AFTER_MS'],
    [{ NODE_DISCOVERY_DNS: 'no-port' }, 'NODE_DISCOVERY_DNS'],
    [{ NODE_DISCOVERY_DNS: 'a b:7101' }, 'NODE_DISCOVERY_DNS'],
    [{ NODE_DISCOVERY_INTERVAL_MS: '10' }, 'NODE_DISCOVERY_INTERVAL_MS'],
    [{ NODE_SUSPECT_AFTER_MS: 'soon' }, 'NODE_SUSPECT_AFTER_MS'],
  ])('refuses %j, naming %s', (env, key) => {
    expect(() => readConfig(env)).toThrow(ConfigError);
    expect(() => readConfig(env)).toThrow(key);
  });
});
