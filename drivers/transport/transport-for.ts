// Chooses the transport for a PhysicalNode: SSH (default), local (spec.transport: local, this
// machine) or sim (a simulated host, benchmarks only: sim-host.ts). TransportCache keeps one transport per node, so every driver and controller shares
// its connection pool, and replaces it when the node's access fields change.

import type { PhysicalNode } from '../../api/types.js';
import { LocalTransport, type LocalTransportOptions } from './local-transport.js';
import { SshTransport, type SshTransportOptions } from './ssh-transport.js';
import { simWorld } from './sim-host.js';
import { SimTransport } from './sim-transport.js';
import { TransportError, type Transport } from './types.js';

export interface TransportForOptions {
  /** Tuning for SSH transports (pool size, keepalive, timeouts). */
  ssh?: Omit<SshTransportOptions, 'host' | 'address' | 'port' | 'user' | 'identityFile' | 'hostKey'>;
  local?: Omit<LocalTransportOptions, 'host'>;
}

export function transportFor(node: PhysicalNode, options: TransportForOptions = {}): Transport {
  const name = node.metadata.name;
  const spec = node.spec;
  if (!spec) throw new TransportError(`PhysicalNode ${name} has no spec`);
  if (spec.transport === 'local') return new LocalTransport({ ...options.local, host: name });
  // Simulation only (benchmarks, sim tests): a host that exists only in this process (sim-host.ts).
  if (spec.transport === 'sim') {
    return new SimTransport(simWorld().host(name, { cores: spec.capacity.cores, memoryMiB: spec.capacity.memoryMiB, storageRoot: spec.storageRoot, sanDevice: spec.sanDevice }));
  }
  if (!spec.ssh?.hostKey) {
    throw new TransportError(`PhysicalNode ${name}: spec.ssh.hostKey is required for SSH (pin the node's host key, e.g. from ssh-keyscan checked out of band)`);
  }
  return new SshTransport({
    ...options.ssh,
    host: name,
    address: spec.address,
    port: spec.ssh.port,
    user: spec.ssh.user,
    identityFile: spec.ssh.identityFile,
    hostKey: spec.ssh.hostKey,
  });
}

/** The fields whose change requires a new transport. */
function accessKey(node: PhysicalNode): string {
  const s = node.spec;
  return JSON.stringify([s?.transport ?? 'ssh', s?.address, s?.ssh?.port, s?.ssh?.user, s?.ssh?.identityFile, s?.ssh?.hostKey]);
}

export class TransportCache {
  private readonly entries = new Map<string, { key: string; transport: Transport }>();

  constructor(private readonly options: TransportForOptions = {}) {}

  /** The node's transport; a new one (the old one closed) when address, user, key or host key changed. */
  get(node: PhysicalNode): Transport {
    const name = node.metadata.name;
    const key = accessKey(node);
    const cur = this.entries.get(name);
    if (cur && cur.key === key) return cur.transport;
    if (cur) void cur.transport.close();
    const transport = transportFor(node, this.options);
    this.entries.set(name, { key, transport });
    return transport;
  }

  /** Closes and forgets the node's transport (node deleted). */
  async evict(name: string): Promise<void> {
    const cur = this.entries.get(name);
    this.entries.delete(name);
    await cur?.transport.close();
  }

  async closeAll(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(all.map((e) => e.transport.close()));
  }
}
