// Who may act through the dashboard. Without a token file the dashboard is read-only: every action
// is refused (403). With one, an action needs `Authorization: Bearer <token>` (else 401). The token
// is compared in constant time.

import { readFileSync } from 'node:fs';
import { timingSafeEqual, createHash } from 'node:crypto';

/** Reads the token (first line, trimmed); a clear error naming the file when it is unusable. */
export function readTokenFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`--ui-token-file ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
  const token = text.split('\n')[0]!.trim();
  if (token.length < 16) throw new Error(`--ui-token-file ${path}: the token (its first line) must have at least 16 characters; e.g. openssl rand -hex 32 > ${path}`);
  return token;
}

export type AuthOutcome = { ok: true } | { ok: false; status: 401 | 403; message: string };

export function authorize(token: string | undefined, header: string | undefined): AuthOutcome {
  if (token === undefined) {
    return { ok: false, status: 403, message: 'the dashboard is read-only: start vc-manager with --ui-token-file to allow actions' };
  }
  const m = /^Bearer (.+)$/.exec(header ?? '');
  if (!m) return { ok: false, status: 401, message: 'this action needs the token: Authorization: Bearer <token>' };
  // Equal-length digests, so timingSafeEqual neither throws nor leaks the length.
  const a = createHash('sha256').update(m[1]!).digest();
  const b = createHash('sha256').update(token).digest();
  if (!timingSafeEqual(a, b)) return { ok: false, status: 401, message: 'wrong token' };
  return { ok: true };
}
