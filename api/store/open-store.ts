// openStore: the one way programs (vcctl, vc-manager, tests, benchmarks) get a Store from the
// user's --store flag or the environment.
//
//   etcd://HOST:PORT[,HOST:PORT...][?options]   the etcd backend
//   file:PATH                                   the embedded SQLite store at PATH (file:///abs too)
//   (none)                                      $VCCTL_STORE, else the embedded store at
//                                               $XDG_DATA_HOME/virtualinux/store.db or
//                                               ~/.local/share/virtualinux/store.db
//
// etcd options, as URL query parameters or, when absent there, environment variables:
//   cacert=FILE    VCCTL_ETCD_CACERT    CA bundle; turns on TLS (https to every endpoint)
//   cert=FILE      VCCTL_ETCD_CERT      client certificate (mutual TLS; needs key)
//   key=FILE       VCCTL_ETCD_KEY       client private key
//   user=NAME      VCCTL_ETCD_USER      etcd user (password auth; needs password)
//   password=PW    VCCTL_ETCD_PASSWORD  its password (prefer the variable: URLs end up in logs)
//   prefix=/P      VCCTL_ETCD_PREFIX    key prefix, default /virtualinux
// `etcds://` is etcd:// with TLS on using the system CAs when no cacert is given.
//
// The etcd backend is imported lazily, so a program on the embedded store never loads grpc.

import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Store } from './types.js';
import { StoreError } from './types.js';
import type { EtcdStoreOptions } from './etcd-store.js';

export type StoreLocation =
  | { backend: 'sqlite'; path: string }
  | { backend: 'etcd'; options: EtcdStoreOptions };

/** The default embedded store file. */
export function defaultStorePath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_DATA_HOME && env.XDG_DATA_HOME.startsWith('/')
    ? env.XDG_DATA_HOME
    : join(env.HOME || homedir(), '.local', 'share');
  return join(base, 'virtualinux', 'store.db');
}

/** Parses a store URL (or the environment's choice) without opening anything. */
export function parseStoreUrl(url: string | undefined, env: NodeJS.ProcessEnv = process.env): StoreLocation {
  const text = url ?? (env.VCCTL_STORE || undefined);
  if (text === undefined) return { backend: 'sqlite', path: defaultStorePath(env) };
  if (text.startsWith('file:')) {
    let path = text.slice('file:'.length);
    if (path.startsWith('//')) {
      if (!path.startsWith('///')) throw badUrl(text, 'a file URL has no host: write file:/abs/path, file:///abs/path or file:relative/path');
      path = path.slice(2);
    }
    if (path === '') throw badUrl(text, 'the path is empty');
    return { backend: 'sqlite', path: decodeURIComponent(path) };
  }
  const m = /^(etcds?):\/\/([^?/]*)\/?(?:\?(.*))?$/.exec(text);
  if (!m) {
    throw badUrl(text, 'use etcd://HOST:PORT[,HOST:PORT...][?cacert=FILE&cert=FILE&key=FILE&user=U&password=P&prefix=/P] or file:PATH');
  }
  const [, scheme, hostList, query] = m;
  const params = new URLSearchParams(query ?? '');
  for (const k of params.keys()) {
    if (!['cacert', 'cert', 'key', 'user', 'password', 'prefix'].includes(k)) {
      throw badUrl(text, `unknown option "${k}"; known: cacert, cert, key, user, password, prefix`);
    }
  }
  const opt = (name: string): string | undefined =>
    params.get(name) ?? (env[`VCCTL_ETCD_${name.toUpperCase()}`] || undefined);
  const hosts = hostList.split(',').map((h) => h.trim()).filter((h) => h !== '');
  if (hosts.length === 0) throw badUrl(text, 'no endpoint given');
  for (const h of hosts) {
    if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(h)) {
      throw badUrl(text, `endpoint "${h}" is not HOST:PORT`);
    }
  }
  const cacert = opt('cacert');
  const cert = opt('cert');
  const key = opt('key');
  const user = opt('user');
  const password = opt('password');
  if ((cert === undefined) !== (key === undefined)) throw badUrl(text, 'cert and key go together: give both or neither');
  if ((user === undefined) !== (password === undefined)) throw badUrl(text, 'user and password go together: give both or neither');
  const tls = scheme === 'etcds' || cacert !== undefined || cert !== undefined;
  const prefix = opt('prefix');
  return {
    backend: 'etcd',
    options: {
      endpoints: hosts.map((h) => `${tls ? 'https' : 'http'}://${h}`),
      ...(tls ? { tls: { cacert, cert, key } } : {}),
      ...(user !== undefined && password !== undefined ? { auth: { user, password } } : {}),
      ...(prefix !== undefined ? { prefix } : {}),
    },
  };
}

/** Opens the store the URL (or VCCTL_STORE, or the default) names. */
export async function openStore(url?: string, env: NodeJS.ProcessEnv = process.env): Promise<Store> {
  const loc = parseStoreUrl(url, env);
  if (loc.backend === 'sqlite') {
    const { SqliteStore } = await import('./sqlite-store.js');
    return new SqliteStore(loc.path);
  }
  const { EtcdStore } = await import('./etcd-store.js');
  return EtcdStore.connect(loc.options);
}

function badUrl(url: string, why: string): StoreError {
  return new StoreError(`invalid store "${redact(url)}": ${why}`);
}

/** The URL with any password hidden, for messages. */
export function redact(url: string): string {
  return url.replace(/([?&]password=)[^&]*/, '$1***');
}
