// EtcdLiteStore: the etcd Store for vcctl's one-shot commands (apply), without the etcd3 package.
// A fresh vcctl process spent ~150 ms of CPU loading grpc-js, etcd3 and protobufjs and connecting
// through them, and its batches' encoding went through protobufjs's generic code: here unary calls
// go over node:http2 (grpc-unary.ts) with hand-written protobuf (proto.ts).
//
// Reads, batches, deadlines and failover are EtcdKvStore's, the same code as EtcdStore's, so the
// two behave alike (test/store/etcd-lite-store.etcd.test.ts runs the store conformance suite on
// it). What it does not do: watches and leases (they need gRPC streams; use EtcdStore through
// openStore), compaction. Those throw a StoreError saying so.
//
// Options as EtcdStore's: endpoints (http:// or https://), TLS (cacert, cert + key; with https and
// no cacert the system's CAs), user/password (etcd's Authenticate call; its token goes with every
// call, and a token etcd no longer knows is renewed once per call).

import { StoreError, type LeaseApi, type Watch, type WatchHandlers, type WatchOptions } from '../types.js';
import type { ApiObject } from '../../types.js';
import { answering, EtcdKvStore, readTlsFiles, type CallOpts, type EtcdStoreOptions, type KvClient } from '../etcd-kv-store.js';
import { GrpcCallError, GrpcUnaryChannel, type TlsFiles } from './grpc-unary.js';
import {
  decodeAuthenticateResponse, decodeRangeResponse, decodeTxnResponse, encodeAuthenticateRequest, encodeRangeRequest,
  encodeTxnRequest, type RangeRequest, type RangeResponse, type TxnRequest, type TxnResponse,
} from './proto.js';

const NOT_HERE = 'is not available on the light etcd client (vcctl apply); open the store with openStore for it';

/** One member: KV calls through one HTTP/2 session, with etcd's require-leader flag and the auth token. */
class LiteClient implements KvClient {
  private readonly channel: GrpcUnaryChannel;
  private token: string | undefined;

  constructor(endpoint: string, tls: TlsFiles | undefined, private readonly auth: { user: string; password: string } | undefined, private readonly fallbackMs: number) {
    this.channel = new GrpcUnaryChannel(endpoint, tls);
  }

  readonly kv = {
    range: async (req: RangeRequest, opts?: CallOpts): Promise<RangeResponse> =>
      decodeRangeResponse(await this.call('/etcdserverpb.KV/Range', encodeRangeRequest(req), opts)),
    txn: async (req: TxnRequest, opts?: CallOpts): Promise<TxnResponse> =>
      decodeTxnResponse(await this.call('/etcdserverpb.KV/Txn', encodeTxnRequest(req), opts)),
  };

  private async call(path: string, request: Buffer, opts?: CallOpts): Promise<Buffer> {
    const deadline = opts?.deadline ?? Date.now() + this.fallbackMs;
    for (let renewed = false; ; renewed = true) {
      if (this.auth && this.token === undefined) await this.authenticate(deadline);
      try {
        return await this.channel.call(path, request, deadline, {
          hasleader: 'true',
          ...(this.token !== undefined ? { token: this.token } : {}),
        });
      } catch (err) {
        // A simple token expires after a few idle minutes (etcd's --auth-token-ttl): renew it once.
        if (!this.auth || renewed || !(err instanceof GrpcCallError) || !/invalid auth token/.test(err.message)) throw err;
        this.token = undefined;
      }
    }
  }

  private async authenticate(deadline: number): Promise<void> {
    const res = await this.channel.call('/etcdserverpb.Auth/Authenticate', encodeAuthenticateRequest(this.auth!.user, this.auth!.password), deadline);
    this.token = decodeAuthenticateResponse(res).token;
  }

  close(): void {
    this.channel.close();
  }
}

export class EtcdLiteStore extends EtcdKvStore<LiteClient> {
  readonly leases: LeaseApi;

  private constructor(options: EtcdStoreOptions, makeClient: (endpoint: string) => LiteClient) {
    super(options, makeClient);
    const refuse = (what: string) => () => Promise.reject(new StoreError(`${what} ${NOT_HERE}`));
    this.leases = {
      grant: refuse('lease grant'),
      keepAlive: refuse('lease keep-alive'),
      revoke: refuse('lease revoke'),
      putIfAbsent: refuse('a lease-bound key'),
      getRaw: refuse('reading a raw key'),
      watchRaw: () => { throw new StoreError(`watching a raw key ${NOT_HERE}`); },
    };
  }

  /** Connects and checks that etcd answers, so a wrong address fails here with a clear message. */
  static async connect(options: EtcdStoreOptions): Promise<EtcdLiteStore> {
    const tls = options.tls ? readTlsFiles(options.tls) : undefined;
    return answering(new EtcdLiteStore(options, (e) => new LiteClient(e, tls, options.auth, options.callTimeoutMs ?? 10_000)));
  }

  watch<T extends ApiObject>(kind: string, _opts: WatchOptions, _handlers: WatchHandlers<T>): Watch {
    throw new StoreError(`watching ${kind} ${NOT_HERE}`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const m of this.members) m.client.close();
  }
}
