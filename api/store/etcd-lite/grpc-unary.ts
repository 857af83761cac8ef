// Unary gRPC calls over node:http2, for the light etcd client: one HTTP/2 session to one etcd
// member, opened on the first call, each call one stream (POST /service/Method, a length-prefixed
// protobuf message, the answer's message and its grpc-status trailer). No compression, no
// streaming calls (watches, lease keep-alives: the full client in etcd-store.ts does those).
//
// Errors are GrpcCallError with the gRPC status code, and a message shaped as grpc-js shapes its
// own ("14 UNAVAILABLE: <details>"), so the store's messages and retry rules read both alike. A
// connection that fails (refused, unreachable, TLS) fails the calls on it with code 14 and the
// system's message; the next call opens a new session.

import { connect, constants, type ClientHttp2Session, type SecureClientSessionOptions } from 'node:http2';

const CODE_NAMES = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE',
  'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
];

/** A gRPC call that ended with a status other than OK. */
export class GrpcCallError extends Error {
  constructor(readonly code: number, details: string, options?: { cause?: unknown }) {
    super(`${code} ${CODE_NAMES[code] ?? 'UNKNOWN'}: ${details}`, options);
    this.name = 'GrpcCallError';
  }
}

export interface TlsFiles {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

export class GrpcUnaryChannel {
  private session: ClientHttp2Session | undefined;

  /** url: http(s)://host:port; tls: the CA bundle and client certificate for https. */
  constructor(private readonly url: string, private readonly tls?: TlsFiles) {}

  private open(): ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    const opts: SecureClientSessionOptions = this.url.startsWith('https:')
      ? { ...(this.tls?.ca && this.tls.ca.length > 0 ? { ca: this.tls.ca } : {}), ...(this.tls?.cert ? { cert: this.tls.cert, key: this.tls.key } : {}) }
      : {};
    const s = connect(this.url, opts);
    s.on('error', () => undefined); // each call's stream reports it
    s.on('close', () => { if (this.session === s) this.session = undefined; });
    s.unref(); // a pending call keeps the process alive through its stream, an idle session does not
    this.session = s;
    return s;
  }

  /**
   * Calls `path` (/package.Service/Method) with an encoded request; resolves with the encoded
   * answer. deadline: epoch ms, sent as grpc-timeout and enforced here too.
   */
  call(path: string, request: Buffer, deadline: number, metadata: Record<string, string> = {}): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      let session: ClientHttp2Session;
      try {
        session = this.open();
      } catch (err) {
        reject(new GrpcCallError(14, (err as Error).message, { cause: err }));
        return;
      }
      const left = Math.max(1, Math.ceil(deadline - Date.now()));
      const stream = session.request({
        [constants.HTTP2_HEADER_METHOD]: 'POST',
        [constants.HTTP2_HEADER_PATH]: path,
        [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
        te: 'trailers',
        'grpc-timeout': `${left}m`,
        ...metadata,
      });
      const chunks: Buffer[] = [];
      let status: number | undefined;
      let details = '';
      let done = false;
      const finish = (err?: Error, value?: Buffer): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) {
          stream.close(constants.NGHTTP2_CANCEL);
          reject(err);
        } else {
          resolve(value!);
        }
      };
      const timer = setTimeout(() => finish(new GrpcCallError(4, 'Deadline exceeded')), left);
      const readStatus = (h: Record<string, unknown>): void => {
        if (h['grpc-status'] !== undefined) status = Number(h['grpc-status']);
        if (typeof h['grpc-message'] === 'string') details = decodeURIComponent(h['grpc-message']);
      };
      stream.on('response', (h) => {
        const http = Number(h[constants.HTTP2_HEADER_STATUS]);
        if (http !== 200 && h['grpc-status'] === undefined) finish(new GrpcCallError(http === 503 ? 14 : 2, `HTTP status ${http} from ${this.url}`));
        readStatus(h);
      });
      stream.on('trailers', readStatus);
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', (err) => finish(new GrpcCallError(14, err.message, { cause: err })));
      stream.on('close', () => {
        if (status === undefined) {
          finish(new GrpcCallError(14, `${this.url} closed the call without a status${stream.rstCode ? ` (HTTP/2 code ${stream.rstCode})` : ''}`));
          return;
        }
        if (status !== 0) {
          finish(new GrpcCallError(status, details));
          return;
        }
        const body = Buffer.concat(chunks);
        if (body.length < 5 || body[0] !== 0) {
          finish(new GrpcCallError(13, body.length < 5 ? 'the answer holds no message' : 'the answer is compressed, which was not asked for'));
          return;
        }
        const len = body.readUInt32BE(1);
        if (body.length < 5 + len) {
          finish(new GrpcCallError(13, 'the answer is truncated'));
          return;
        }
        finish(undefined, body.subarray(5, 5 + len));
      });
      const frame = Buffer.allocUnsafe(5);
      frame[0] = 0;
      frame.writeUInt32BE(request.length, 1);
      stream.write(frame); // the message's 5-byte prefix, then the message itself: no copy of a large batch
      stream.end(request);
    });
  }

  close(): void {
    this.session?.close();
    this.session = undefined;
  }
}
