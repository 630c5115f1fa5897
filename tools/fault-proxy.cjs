'use strict';
/**
 * A fault-injecting TCP proxy for the partition tests: listens on loopback and forwards every connection to
 * a target host:port, byte for byte (TLS passes through untouched), unless a fault is set:
 *
 *   const { createFaultProxy } = require('../tools/fault-proxy.cjs');
 *   const proxy = await createFaultProxy();          // listening on 127.0.0.1:<free port>, no target yet
 *   proxy.setTarget('127.0.0.1:7101');               // connections before a target is set are closed
 *   proxy.setFault({ kind: 'delay', ms: 50 });       // then 'pass' to heal
 *   await proxy.close();
 *
 * Faults (apply to open connections and new ones alike, until the next setFault):
 *   { kind: 'pass' }                          forward unchanged
 *   { kind: 'delay', ms }                     hold every piece of data `ms` milliseconds (order kept)
 *   { kind: 'drop' }                          accept and keep connections open, discard every byte both ways
 *                                             (a black hole: only timeouts notice it)
 *   { kind: 'oneway', direction }             discard what flows one way: 'toTarget' or 'fromTarget'
 *   { kind: 'cut', afterBytes }               reset each connection once `afterBytes` more bytes (both ways
 *                                             together) crossed it: a cut in the middle of a stream
 *   { kind: 'refuse' }                        reset every open connection and every new one at once
 * Bytes discarded inside a TLS stream break that stream for good once forwarding resumes (a record fails
 * its MAC): like a real lossy path, the endpoints must notice, close and redial.
 */
const net = require('node:net');

/** @returns {Promise<FaultProxy>} */
async function createFaultProxy({ host = '127.0.0.1', port = 0, target = null } = {}) {
  let fault = { kind: 'pass' };
  let targetAddr = target;
  const conns = new Set();
  const stats = { connections: 0, bytesForwarded: 0, bytesDropped: 0, cuts: 0 };

  const server = net.createServer((client) => {
    stats.connections++;
    if (!targetAddr || fault.kind === 'refuse') {
      client.resetAndDestroy();
      return;
    }
    const i = targetAddr.lastIndexOf(':');
    const upstream = net.connect({ host: targetAddr.slice(0, i), port: Number(targetAddr.slice(i + 1)) });
    const conn = { client, upstream, budget: fault.kind === 'cut' ? fault.afterBytes : Infinity, chain: { toTarget: Promise.resolve(), fromTarget: Promise.resolve() } };
    conns.add(conn);
    const end = () => {
      if (!conns.delete(conn)) return;
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    const pipe = (from, to, direction) => {
      from.on('data', (data) => {
        const f = fault;
        if (f.kind === 'drop' || (f.kind === 'oneway' && f.direction === direction)) {
          stats.bytesDropped += data.length;
          return;
        }
        if (f.kind === 'refuse') return end();
        if (f.kind === 'cut') {
          conn.budget -= data.length;
          if (conn.budget < 0) {
            stats.cuts++;
            client.resetAndDestroy();
            upstream.resetAndDestroy();
            return end();
          }
        }
        if (f.kind === 'delay') {
          // Hold the data `ms`, keeping the order of what follows; pause reading so nothing piles up unbounded.
          from.pause();
          conn.chain[direction] = conn.chain[direction]
            .then(() => new Promise((r) => setTimeout(r, f.ms)))
            .then(() => {
              if (!to.destroyed) {
                stats.bytesForwarded += data.length;
                to.write(data);
              }
              from.resume();
            });
          return;
        }
        stats.bytesForwarded += data.length;
        if (!to.write(data)) {
          from.pause();
          to.once('drain', () => from.resume());
        }
      });
      from.on('end', () => to.end());
    };
    pipe(client, upstream, 'toTarget');
    pipe(upstream, client, 'fromTarget');
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const bound = server.address().port;

  return {
    /** host:port to dial instead of the target. */
    address: `${host}:${bound}`,
    port: bound,
    stats,
    /** Where connections go from now on (open ones keep their target). */
    setTarget(addr) {
      targetAddr = addr;
    },
    /** The fault in force; see the module comment. */
    get fault() {
      return fault;
    },
    setFault(next) {
      if (!next || !['pass', 'delay', 'drop', 'oneway', 'cut', 'refuse'].includes(next.kind)) throw new Error(`unknown fault ${JSON.stringify(next)}`);
      fault = next;
      if (next.kind === 'cut') for (const c of conns) c.budget = next.afterBytes;
      if (next.kind === 'refuse') {
        for (const c of [...conns]) {
          c.client.resetAndDestroy();
          c.upstream.resetAndDestroy();
        }
      }
    },
    /** Connections currently open through the proxy. */
    get open() {
      return conns.size;
    },
    /** Stops listening and resets every open connection. */
    close() {
      for (const c of [...conns]) {
        c.client.destroy();
        c.upstream.destroy();
      }
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

module.exports = { createFaultProxy };
