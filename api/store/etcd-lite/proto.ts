// Hand-written protocol buffers for the few etcd v3 messages the light client sends and reads
// (etcd's api/etcdserverpb/rpc.proto and mvcc/mvccpb/kv.proto; field numbers named below). The
// decoded shapes are those the etcd3 package returns with its loader options (keepCase, 64-bit
// integers as decimal strings, bytes as Buffers), so api/store code reads both alike.
//
// Only what etcd answers in these messages is decoded; unknown fields are skipped, as protobuf
// requires. 64-bit integers go out from numbers or decimal strings and come back as strings.

export interface KeyValue { key: Buffer; value: Buffer; create_revision: string; mod_revision: string; version: string; lease: string }
export interface ResponseHeader { revision: string }
export interface RangeResponse { header: ResponseHeader; kvs: KeyValue[]; more: boolean; count: string }
export interface TxnResponse { header: ResponseHeader; succeeded: boolean; responses: ResponseOp[] }
export interface ResponseOp { response_range?: RangeResponse; response_put?: { header: ResponseHeader }; response_delete_range?: { header: ResponseHeader; deleted: string } }

type Int64 = number | string;
export interface RangeRequest { key: Buffer; range_end?: Buffer; limit?: Int64; revision?: Int64; keys_only?: boolean }
export type RequestOp =
  | { request_range: RangeRequest }
  | { request_put: { key: Buffer; value: Buffer; lease?: Int64 } }
  | { request_delete_range: { key: Buffer; range_end?: Buffer } };
export interface Compare {
  key: Buffer;
  target: 'Version' | 'Create' | 'Mod' | 'Value' | 'Lease';
  result: 'Equal' | 'Greater' | 'Less' | 'NotEqual';
  create_revision?: Int64;
  mod_revision?: Int64;
}
export interface TxnRequest { compare?: Compare[]; success?: RequestOp[]; failure?: RequestOp[] }

const COMPARE_RESULT = { Equal: 0, Greater: 1, Less: 2, NotEqual: 3 } as const;
const COMPARE_TARGET = { Version: 0, Create: 1, Mod: 2, Value: 3, Lease: 4 } as const;

// ---- encoding ------------------------------------------------------------------------------------
// Two passes: the size of every message first (a nested message is written after its length),
// then one buffer of exactly that size, written front to back with no copy of a nested message.

/** A 64-bit field value as a number when it is one exactly, else a bigint; refuses what etcd's
 * non-negative revisions and lease IDs cannot be. */
function u64(v: Int64 | boolean): number | bigint {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  const b = BigInt(v);
  if (b < 0n || b >= 1n << 64n) throw new RangeError(`etcd: ${String(v)} is not a 64-bit value this client sends`);
  return b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
}

function varintSize(v: number | bigint): number {
  if (typeof v === 'number' && v < 128) return 1;
  let n = 1;
  if (typeof v === 'bigint') {
    while (v > 127n) { v >>= 7n; n++; }
    return n;
  }
  while (v > 127) { v = Math.floor(v / 128); n++; }
  return n;
}

/** Size of a varint field (tag + value); field numbers here are below 16 but for 64 (two bytes). */
const varintField = (field: number, v: number | bigint): number => varintSize(field * 8) + varintSize(v);
/** Size of a length-delimited field holding `len` bytes. */
const bytesField = (field: number, len: number): number => varintSize(field * 8 + 2) + varintSize(len) + len;

class Writer {
  readonly buf: Buffer;
  private pos = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  private raw(v: number | bigint): void {
    const b = this.buf;
    if (typeof v === 'bigint') {
      while (v > 127n) { b[this.pos++] = Number(v & 127n) | 128; v >>= 7n; }
      b[this.pos++] = Number(v);
      return;
    }
    while (v > 127) { b[this.pos++] = (v % 128) | 128; v = Math.floor(v / 128); }
    b[this.pos++] = v;
  }

  varint(field: number, v: number | bigint): void {
    this.raw(field * 8);
    this.raw(v);
  }

  /** The tag and length of a length-delimited field; its content follows. */
  head(field: number, len: number): void {
    this.raw(field * 8 + 2);
    this.raw(len);
  }

  bytes(field: number, data: Buffer): void {
    this.head(field, data.length);
    this.buf.set(data, this.pos); // TypedArray#set: a plain copy (Buffer#copy checks its arguments in JS first)
    this.pos += data.length;
  }

  finish(): Buffer {
    if (this.pos !== this.buf.length) throw new Error(`etcd light client: encoded ${this.pos} bytes, sized ${this.buf.length}`);
    return this.buf;
  }
}

// Each message has a size function and a write function (no object or closure per message: a
// batch of 100 puts is 300 messages and more, encoded by code that runs cold in a fresh vcctl).

function rangeSize(r: RangeRequest): number {
  const limit = r.limit !== undefined ? u64(r.limit) : 0;
  const revision = r.revision !== undefined ? u64(r.revision) : 0;
  return bytesField(1, r.key.length) + (r.range_end ? bytesField(2, r.range_end.length) : 0)
    + (limit ? varintField(3, limit) : 0) + (revision ? varintField(4, revision) : 0) + (r.keys_only ? 2 : 0);
}

function writeRange(w: Writer, r: RangeRequest): void {
  const limit = r.limit !== undefined ? u64(r.limit) : 0;
  const revision = r.revision !== undefined ? u64(r.revision) : 0;
  w.bytes(1, r.key);
  if (r.range_end) w.bytes(2, r.range_end);
  if (limit) w.varint(3, limit);
  if (revision) w.varint(4, revision);
  if (r.keys_only) w.varint(8, 1);
}

/** The RequestOp field (a oneof member) that holds the operation's message. */
function opField(op: RequestOp): number {
  return 'request_range' in op ? 1 : 'request_put' in op ? 2 : 3;
}

/** The size of the operation's own message (RangeRequest, PutRequest, DeleteRangeRequest). */
function opSize(op: RequestOp): number {
  if ('request_range' in op) return rangeSize(op.request_range);
  if ('request_put' in op) {
    const { key, value, lease } = op.request_put;
    const l = lease !== undefined ? u64(lease) : 0;
    return bytesField(1, key.length) + bytesField(2, value.length) + (l ? varintField(3, l) : 0);
  }
  const { key, range_end: end } = op.request_delete_range;
  return bytesField(1, key.length) + (end ? bytesField(2, end.length) : 0);
}

function writeOp(w: Writer, op: RequestOp): void {
  if ('request_range' in op) {
    writeRange(w, op.request_range);
  } else if ('request_put' in op) {
    const { key, value, lease } = op.request_put;
    const l = lease !== undefined ? u64(lease) : 0;
    w.bytes(1, key);
    w.bytes(2, value);
    if (l) w.varint(3, l);
  } else {
    const { key, range_end: end } = op.request_delete_range;
    w.bytes(1, key);
    if (end) w.bytes(2, end);
  }
}

/** A Compare's target_union member: its field and value (a set oneof member is written even when zero). */
function compareTarget(c: Compare): [number, number | bigint] {
  if (c.target === 'Create') return [5, u64(c.create_revision ?? 0)];
  if (c.target === 'Mod') return [6, u64(c.mod_revision ?? 0)];
  throw new Error(`etcd light client: compare target ${c.target} is not supported`);
}

function compareSize(c: Compare): number {
  const [field, value] = compareTarget(c);
  return varintField(1, COMPARE_RESULT[c.result]) + varintField(2, COMPARE_TARGET[c.target]) + bytesField(3, c.key.length) + varintField(field, value);
}

function writeCompare(w: Writer, c: Compare): void {
  const [field, value] = compareTarget(c);
  w.varint(1, COMPARE_RESULT[c.result]);
  w.varint(2, COMPARE_TARGET[c.target]);
  w.bytes(3, c.key);
  w.varint(field, value);
}

export function encodeRangeRequest(r: RangeRequest): Buffer {
  const w = new Writer(rangeSize(r));
  writeRange(w, r);
  return w.finish();
}

export function encodeTxnRequest(t: TxnRequest): Buffer {
  const compare = t.compare ?? [];
  const lists: [number, RequestOp[]][] = [[2, t.success ?? []], [3, t.failure ?? []]];
  // First the size of every message (kept, in order), then one buffer written front to back.
  const sizes: number[] = [];
  let total = 0;
  for (const c of compare) {
    const n = compareSize(c);
    sizes.push(n);
    total += bytesField(1, n);
  }
  for (const [field, ops] of lists) {
    for (const op of ops) {
      const n = opSize(op);
      sizes.push(n);
      total += bytesField(field, bytesField(opField(op), n));
    }
  }
  const w = new Writer(total);
  let k = 0;
  for (const c of compare) {
    w.head(1, sizes[k++]);
    writeCompare(w, c);
  }
  for (const [field, ops] of lists) {
    for (const op of ops) {
      const n = sizes[k++];
      const inner = opField(op);
      w.head(field, bytesField(inner, n)); // the RequestOp
      w.head(inner, n); // its one member
      writeOp(w, op);
    }
  }
  return w.finish();
}

export function encodeAuthenticateRequest(name: string, password: string): Buffer {
  const [n, p] = [Buffer.from(name), Buffer.from(password)];
  const w = new Writer(bytesField(1, n.length) + bytesField(2, p.length));
  w.bytes(1, n);
  w.bytes(2, p);
  return w.finish();
}

// ---- decoding ------------------------------------------------------------------------------------

/** Reads the fields of one message (buf[start, end)). */
class Reader {
  pos: number;
  constructor(readonly buf: Buffer, start: number, readonly end: number) {
    this.pos = start;
  }

  more(): boolean {
    return this.pos < this.end;
  }

  /** A varint as a number (exact below 2^53; the fields read so are small or compared as strings). */
  varint(): number {
    let v = 0;
    let mul = 1;
    for (;;) {
      if (this.pos >= this.end) throw new Error('etcd: truncated message');
      const b = this.buf[this.pos++];
      v += (b & 127) * mul;
      if (b < 128) return v;
      mul *= 128;
    }
  }

  /** A varint as a decimal string, exact for all 64 bits. */
  int64(): string {
    const start = this.pos;
    const v = this.varint();
    if (Number.isSafeInteger(v)) return String(v);
    let b = 0n;
    for (let i = this.pos - 1; i >= start; i--) b = (b << 7n) | BigInt(this.buf[i] & 127);
    return BigInt.asIntN(64, b).toString();
  }

  /** The bounds of a length-delimited field's data; the reader moves past it. */
  span(): [number, number] {
    const len = this.varint();
    const s = this.pos;
    this.pos += len;
    if (this.pos > this.end) throw new Error('etcd: truncated message');
    return [s, this.pos];
  }

  /** A copy of a length-delimited field (callers keep keys and values after the message goes). */
  bytes(): Buffer {
    const [s, e] = this.span();
    return Buffer.from(this.buf.subarray(s, e));
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.span();
    else if (wire === 5) this.pos += 4;
    else throw new Error(`etcd: unsupported protobuf wire type ${wire}`);
  }

  /** Calls fn(field number, wire type) for each field; fn returns false to skip the field. */
  fields(fn: (field: number, wire: number) => boolean): void {
    while (this.more()) {
      const tag = this.varint();
      const field = Math.floor(tag / 8);
      const wire = tag & 7;
      if (!fn(field, wire)) this.skip(wire);
    }
  }

  sub(): Reader {
    const [s, e] = this.span();
    return new Reader(this.buf, s, e);
  }
}

function decodeHeader(r: Reader): ResponseHeader {
  const h: ResponseHeader = { revision: '0' };
  r.fields((f) => (f === 3 ? ((h.revision = r.int64()), true) : false));
  return h;
}

function decodeKeyValue(r: Reader): KeyValue {
  const kv: KeyValue = { key: Buffer.alloc(0), value: Buffer.alloc(0), create_revision: '0', mod_revision: '0', version: '0', lease: '0' };
  r.fields((f) => {
    switch (f) {
      case 1: kv.key = r.bytes(); return true;
      case 2: kv.create_revision = r.int64(); return true;
      case 3: kv.mod_revision = r.int64(); return true;
      case 4: kv.version = r.int64(); return true;
      case 5: kv.value = r.bytes(); return true;
      case 6: kv.lease = r.int64(); return true;
      default: return false;
    }
  });
  return kv;
}

function decodeRange(r: Reader): RangeResponse {
  const res: RangeResponse = { header: { revision: '0' }, kvs: [], more: false, count: '0' };
  r.fields((f) => {
    switch (f) {
      case 1: res.header = decodeHeader(r.sub()); return true;
      case 2: res.kvs.push(decodeKeyValue(r.sub())); return true;
      case 3: res.more = r.varint() !== 0; return true;
      case 4: res.count = r.int64(); return true;
      default: return false;
    }
  });
  return res;
}

export function decodeRangeResponse(buf: Buffer): RangeResponse {
  return decodeRange(new Reader(buf, 0, buf.length));
}

function decodeResponseOp(r: Reader): ResponseOp {
  const op: ResponseOp = {};
  r.fields((f) => {
    if (f === 1) {
      op.response_range = decodeRange(r.sub());
      return true;
    }
    if (f === 2 || f === 3) {
      const s = r.sub();
      const out = { header: { revision: '0' }, deleted: '0' };
      s.fields((g) => (g === 1 ? ((out.header = decodeHeader(s.sub())), true) : g === 2 && f === 3 ? ((out.deleted = s.int64()), true) : false));
      if (f === 2) op.response_put = { header: out.header };
      else op.response_delete_range = out;
      return true;
    }
    return false;
  });
  return op;
}

export function decodeTxnResponse(buf: Buffer): TxnResponse {
  const r = new Reader(buf, 0, buf.length);
  const res: TxnResponse = { header: { revision: '0' }, succeeded: false, responses: [] };
  r.fields((f) => {
    switch (f) {
      case 1: res.header = decodeHeader(r.sub()); return true;
      case 2: res.succeeded = r.varint() !== 0; return true;
      case 3: res.responses.push(decodeResponseOp(r.sub())); return true;
      default: return false;
    }
  });
  return res;
}

export function decodeAuthenticateResponse(buf: Buffer): { token: string } {
  const r = new Reader(buf, 0, buf.length);
  let token = '';
  r.fields((f) => (f === 2 ? ((token = r.bytes().toString()), true) : false));
  return { token };
}
