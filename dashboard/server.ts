// The dashboard's HTTP server (vc-manager --ui-addr): a static page (static/: HTML, one JS file,
// one CSS file; no build step), its live feed (GET /api/events, Server-Sent Events, live-feed.ts),
// what it may do (GET /api/info) and its actions (POST /api/actions/<name>, auth.ts, actions.ts).
//
// Every response, errors included, carries a strict Content-Security-Policy (scripts and styles
// only from this origin, no inline code, nothing framed) and the usual hardening headers. The page
// renders every name and message as text (textContent), never as markup.
// Bound to a loopback address, the server answers only requests whose Host is a loopback name or
// address: a web page cannot reach it through a DNS name rebound to 127.0.0.1.

import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../controllers/types.js';
import { ActionInputError, actionArgv, runAction } from './actions.js';
import { authorize } from './auth.js';
import { LiveFeed, type InformerSource } from './live-feed.js';

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self'", "connect-src 'self'",
  "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ');

export const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

const MAX_BODY_BYTES = 16 * 1024;

const STATIC_FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' },
  '/favicon.svg': { file: 'favicon.svg', type: 'image/svg+xml' },
};

/** dashboard/static beside this module (tsx), or in the installation above it (dist/dashboard/). */
export function findStaticDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  if (existsSync(join(dir, 'static', 'index.html'))) return join(dir, 'static');
  for (;;) {
    const candidate = join(dir, 'dashboard', 'static');
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the dashboard\'s static files (dashboard/static/index.html) of the installation');
    dir = up;
  }
}

export interface DashboardOptions {
  /** HOST:PORT; port 0 picks a free one. */
  addr: string;
  /** The informers (the manager's SharedCache). */
  source: InformerSource;
  /** The store actions write to (vcctl's --store); undefined: vcctl's default. */
  storeUrl?: string;
  /** Without it the dashboard is read-only. */
  token?: string;
  log?: Logger;
  staticDir?: string;
}

export interface Dashboard {
  server: Server;
  /** http://HOST:PORT/ as bound. */
  url: string;
  feed: LiveFeed;
  close(): Promise<void>;
}

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** The host name of a Host header ("[::1]:8384" -> "::1"). */
function hostOf(header: string | undefined): string {
  const h = (header ?? '').toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']'));
  const i = h.lastIndexOf(':');
  return i > 0 ? h.slice(0, i) : h;
}

function send(res: ServerResponse, status: number, body: string | Buffer, type: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, 'cache-control': 'no-store', ...extra });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, data: unknown, extra?: Record<string, string>): void {
  send(res, status, `${JSON.stringify(data)}\n`, 'application/json; charset=utf-8', extra);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((ok, fail) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        fail(new ActionInputError(`the request body exceeds ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => ok(Buffer.concat(chunks).toString('utf8')));
    req.on('error', fail);
  });
}

export async function startDashboard(opts: DashboardOptions): Promise<Dashboard> {
  const i = opts.addr.lastIndexOf(':');
  const host = opts.addr.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(opts.addr.slice(i + 1));
  const loopbackOnly = isLoopbackHost(host);
  const dir = opts.staticDir ?? findStaticDir();
  const files = new Map(Object.entries(STATIC_FILES).map(([path, f]) => [path, { body: readFileSync(join(dir, f.file)), type: f.type }] as const));
  const feed = new LiveFeed(opts.source, { headers: SECURITY_HEADERS });
  const log = opts.log;

  const handleAction = async (req: IncomingMessage, res: ServerResponse, action: string): Promise<void> => {
    const auth = authorize(opts.token, req.headers.authorization);
    if (!auth.ok) {
      sendJson(res, auth.status, { error: auth.message }, auth.status === 401 ? { 'www-authenticate': 'Bearer realm="vc-manager"' } : {});
      return;
    }
    if (!/^application\/json\b/.test(req.headers['content-type'] ?? '')) {
      sendJson(res, 415, { error: 'send the action as application/json' });
      return;
    }
    let argv: string[];
    try {
      argv = actionArgv(action, JSON.parse(await readBody(req)) as unknown);
    } catch (err) {
      sendJson(res, 400, { error: err instanceof SyntaxError ? `the body is not JSON: ${err.message}` : (err as Error).message });
      return;
    }
    log?.info({ action, argv: argv.join(' '), remote: req.socket.remoteAddress }, 'dashboard action');
    const r = await runAction(argv, opts.storeUrl);
    sendJson(res, r.code === 0 ? 200 : 409, { ok: r.code === 0, command: `vcctl ${argv.join(' ')}`, output: r.output });
  };

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (loopbackOnly && !isLoopbackHost(hostOf(req.headers.host))) {
      send(res, 421, 'this dashboard answers only to a loopback Host (e.g. http://127.0.0.1:PORT/)\n', 'text/plain; charset=utf-8');
      return;
    }
    if (req.method === 'POST' && path.startsWith('/api/actions/')) {
      handleAction(req, res, path.slice('/api/actions/'.length)).catch((err: unknown) => {
        log?.error({ err: (err as Error).message }, 'dashboard action failed');
        if (!res.headersSent) sendJson(res, 500, { error: (err as Error).message });
      });
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'method not allowed\n', 'text/plain; charset=utf-8', { allow: 'GET, HEAD' });
      return;
    }
    const f = files.get(path);
    if (f) {
      send(res, 200, f.body, f.type, { 'cache-control': 'no-cache' });
    } else if (path === '/api/events' && req.method === 'GET') {
      void feed.attach(req, res);
    } else if (path === '/api/info') {
      sendJson(res, 200, { actions: opts.token !== undefined });
    } else {
      send(res, 404, 'not found\n', 'text/plain; charset=utf-8');
    }
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => ok());
  });
  feed.start();
  const bound = server.address();
  const boundPort = typeof bound === 'object' && bound ? bound.port : port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${boundPort}/`;
  return {
    server, url, feed,
    close: () => new Promise<void>((ok) => {
      feed.stop();
      server.close(() => ok());
      server.closeAllConnections();
    }),
  };
}
