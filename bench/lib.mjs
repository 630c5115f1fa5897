// Helpers shared by the benches (plain JS: the benches run without a build step).
import { createHash } from 'node:crypto';
import http from 'node:http';
import { Readable } from 'node:stream';

const MiB = 1024 * 1024;

/** `bytes` pseudo-random (incompressible) bytes from `seed` (xorshift32), generated as the stream is read. */
export function body(bytes, seed) {
  let left = bytes;
  let x = seed >>> 0 || 1;
  return new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      const n = Math.min(left, MiB);
      const out = Buffer.allocUnsafe(n);
      for (let i = 0; i + 4 <= n; i += 4) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        out.writeUInt32LE(x >>> 0, i);
      }
      left -= n;
      this.push(out);
    },
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * HTTP calls to a network's gateway with its bearer token. `call` hashes the response body (and keeps it
 * when short); `json` parses a 200/202 answer (null otherwise). `getNet` is read at each call, so the
 * client can be made before the network starts.
 */
export function gatewayClient(getNet, agent) {
  const call = (method, path, stream, length) =>
    new Promise((resolve, reject) => {
      const net = getNet();
      const headers = { authorization: `Bearer ${net.token}` };
      if (stream) headers['content-length'] = length;
      const req = http.request(`${net.gatewayUrl}${path}`, { method, headers, agent }, (res) => {
        const h = createHash('sha256');
        let bytes = 0;
        let text = '';
        res.on('data', (d) => {
          h.update(d);
          bytes += d.length;
          if (text.length < 1e5) text += d;
        });
        res.on('end', () => resolve({ status: res.statusCode, text, bytes, sha256: h.digest('hex') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      if (stream) stream.pipe(req);
      else req.end();
    });
  const json = async (method, path) => {
    const r = await call(method, path);
    return r.status === 200 || r.status === 202 ? JSON.parse(r.text) : null;
  };
  return { call, json };
}
