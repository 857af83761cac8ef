// The light etcd client's hand-written protobuf (api/store/etcd-lite/proto.ts) against protobufjs
// with etcd's own .proto files (those of the etcd3 package, loaded as etcd3 loads them: keepCase,
// 64-bit integers as strings): requests encode to the same bytes, answers decode to the same
// values, unknown fields are skipped, and 64-bit values beyond 2^53 stay exact.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import protobuf from 'protobufjs';
import {
  decodeAuthenticateResponse, decodeRangeResponse, decodeTxnResponse, encodeAuthenticateRequest, encodeRangeRequest,
  encodeTxnRequest, type TxnRequest,
} from '../../api/store/etcd-lite/proto.js';

const protoDir = join(dirname(createRequire(import.meta.url).resolve('etcd3')), '..', 'proto');
const root = new protobuf.Root().loadSync(join(protoDir, 'rpc.proto'), { keepCase: true });
const type = (name: string) => root.lookupType(name);
const reference = (name: string, obj: object): Buffer => {
  const t = type(name);
  return Buffer.from(t.encode(t.fromObject(obj)).finish());
};
const asObject = (name: string, buf: Buffer) =>
  type(name).toObject(type(name).decode(buf), { longs: String, bytes: Buffer, defaults: true, arrays: true });

describe('etcd light client protobuf', () => {
  const key = (s: string) => Buffer.from(s);

  it('encodes Range, Txn and Authenticate requests to the bytes protobufjs writes', () => {
    const ranges = [
      { key: key('/p/') },
      { key: key('/p/a'), range_end: key('/p/b'), limit: 10, revision: '123', keys_only: true },
      { key: key('/p/'), limit: 1, keys_only: true, revision: 9007199254740993n.toString() },
    ];
    for (const r of ranges) assert.deepEqual(encodeRangeRequest(r), reference('etcdserverpb.RangeRequest', r));
    const value = Buffer.from('{"x":"' + 'é'.repeat(300) + '"}');
    const txn: TxnRequest = {
      compare: [
        { key: key('/p/a'), target: 'Create', result: 'Equal', create_revision: 0 },
        { key: key('/p/b'), target: 'Mod', result: 'Equal', mod_revision: '4711' },
        { key: key('/p/_raw/leader'), target: 'Create', result: 'Equal', create_revision: 18446744073709551615n.toString() },
      ],
      success: [
        { request_put: { key: key('/p/a'), value } },
        { request_put: { key: key('/p/b'), value: Buffer.alloc(0), lease: '7587869190381287002' } },
        { request_delete_range: { key: key('/p/c') } },
        { request_range: { key: key('/p/d') } },
      ],
      failure: [{ request_range: { key: key('/p/a') } }, { request_delete_range: { key: key('/p/'), range_end: key('/p0') } }],
    };
    assert.deepEqual(encodeTxnRequest(txn), reference('etcdserverpb.TxnRequest', txn));
    assert.deepEqual(encodeTxnRequest({}), reference('etcdserverpb.TxnRequest', {}));
    assert.deepEqual(encodeAuthenticateRequest('root', 'pä$$'), reference('etcdserverpb.AuthenticateRequest', { name: 'root', password: 'pä$$' }));
    assert.throws(() => encodeRangeRequest({ key: key('k'), revision: -1 }), /not a 64-bit value/);
  });

  it('decodes Range, Txn and Authenticate answers as protobufjs does, skipping fields it does not read', () => {
    const kv = (k: string, rev: string) => ({ key: key(k), create_revision: '2', mod_revision: rev, version: '3', value: key(`v${k}`), lease: '9223372036854775807' });
    const range = { header: { cluster_id: '14841639068965178418', member_id: '10276657743932975437', revision: '9007199254740995', raft_term: '2' }, kvs: [kv('/a', '5'), kv('/b', '6')], more: true, count: '2' };
    const got = decodeRangeResponse(reference('etcdserverpb.RangeResponse', range));
    assert.deepEqual(got, { header: { revision: range.header.revision }, kvs: range.kvs, more: true, count: '2' });
    assert.deepEqual(got.kvs, asObject('etcdserverpb.RangeResponse', reference('etcdserverpb.RangeResponse', range)).kvs);

    const txn = {
      header: { revision: '77', raft_term: '3' },
      succeeded: true,
      responses: [
        { response_range: { header: { revision: '77' }, kvs: [kv('/c', '70')], count: '1' } },
        { response_put: { header: { revision: '77' }, prev_kv: kv('/d', '1') } },
        { response_delete_range: { header: { revision: '77' }, deleted: '1' } },
      ],
    };
    const t = decodeTxnResponse(reference('etcdserverpb.TxnResponse', txn));
    assert.equal(t.succeeded, true);
    assert.equal(t.header.revision, '77');
    assert.deepEqual(t.responses[0].response_range?.kvs, txn.responses[0].response_range!.kvs);
    assert.equal(t.responses[1].response_put?.header.revision, '77');
    assert.equal(t.responses[2].response_delete_range?.deleted, '1');
    assert.equal(decodeTxnResponse(reference('etcdserverpb.TxnResponse', { header: { revision: '3' } })).succeeded, false);
    assert.deepEqual(decodeAuthenticateResponse(reference('etcdserverpb.AuthenticateResponse', { header: {}, token: 'abc.12' })), { token: 'abc.12' });
  });

  it('refuses a truncated message instead of reading past it', () => {
    const buf = reference('etcdserverpb.RangeResponse', { header: { revision: '5' }, kvs: [{ key: key('/a'), value: key('v'), mod_revision: '5' }] });
    assert.throws(() => decodeRangeResponse(buf.subarray(0, buf.length - 1)), /truncated/);
  });
});
