// The string formats the CRD schemas use, for ajv. Their own module because the validators
// precompiled at build time (see precompiled.ts) import them by reference.

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const IPV4 = /^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

export const FORMATS = {
  'date-time': { type: 'string' as const, validate: (s: string) => RFC3339.test(s) && !Number.isNaN(Date.parse(s)) },
  ipv4: { type: 'string' as const, validate: (s: string) => IPV4.test(s) },
};
