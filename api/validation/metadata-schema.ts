// The schema of ObjectMeta, shared by every kind. CRDs (like Kubernetes') only say
// `metadata: {type: object}`; the validator puts this schema in its place, so metadata errors are
// reported like any other field. Scope rules (namespace present or not) depend on the kind and are
// checked in validate-object.ts.

import type { OpenApiSchema } from './crd-files.js';

/** DNS-1123 label: what every object name and namespace must be. */
export const DNS1123_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
/** A qualified name as Kubernetes label and annotation keys use: [prefix/]name. */
const QUALIFIED_NAME =
  '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$';
const LABEL_VALUE = '^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$';

export const PATTERN_HINTS: Record<string, string> = {
  [DNS1123_LABEL]: "a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit)",
  [QUALIFIED_NAME]: "a qualified name ([DNS-subdomain/]name, the name of letters, digits, '-', '_' and '.', starting and ending with a letter or digit)",
  [LABEL_VALUE]: "a label value (empty, or letters, digits, '-', '_' and '.', starting and ending with a letter or digit, at most 63 characters)",
  '^/[^\\x00\\n]*$': 'an absolute path',
  '^[A-Z][A-Za-z0-9]*$': 'a PascalCase word',
  // Patterns of crds/ fields (the strings exactly as the CRDs write them).
  '^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|sk-ssh-ed25519@openssh\\.com|sk-ecdsa-sha2-nistp256@openssh\\.com) [A-Za-z0-9+/]+={0,3}( [^\\n]*)?$':
    'an SSH public host key as ssh-keyscan prints it ("ssh-ed25519 AAAA...")',
  '^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])/([0-9]|[12][0-9]|3[0-2])$':
    'an IPv4 subnet in CIDR notation (10.10.1.0/24)',
};

export const METADATA_SCHEMA: OpenApiSchema = {
  type: 'object',
  description: 'Standard object metadata.',
  required: ['name'],
  properties: {
    name: {
      type: 'string',
      description: 'The object name: a DNS-1123 label, unique per kind (and namespace).',
      pattern: DNS1123_LABEL,
      maxLength: 63,
    },
    namespace: {
      type: 'string',
      description: 'The namespace of a namespaced object (default: the -n flag, else "default"); absent for cluster-scoped kinds.',
      pattern: DNS1123_LABEL,
      maxLength: 63,
    },
    labels: {
      type: 'object',
      description: 'Labels for selection (-l).',
      propertyNames: { pattern: QUALIFIED_NAME, maxLength: 317 },
      additionalProperties: { type: 'string', pattern: LABEL_VALUE, maxLength: 63 },
    },
    annotations: {
      type: 'object',
      description: 'Free-form notes for tools; virtualinux.org/last-applied-configuration is written by apply.',
      propertyNames: { pattern: QUALIFIED_NAME, maxLength: 317 },
      additionalProperties: { type: 'string', maxLength: 262144 },
    },
    uid: { type: 'string', description: 'Assigned by the store.', maxLength: 128 },
    resourceVersion: {
      type: 'string',
      description: 'The store revision of the last write; an update carrying a stale one is a conflict.',
      pattern: '^[0-9]+$',
    },
    generation: { type: 'integer', description: 'Increases on every change of spec.', minimum: 0 },
    creationTimestamp: { type: 'string', description: 'Assigned by the store.', format: 'date-time' },
    deletionTimestamp: { type: 'string', description: 'Set when deletion waits for finalizers.', format: 'date-time' },
    finalizers: {
      type: 'array',
      description: 'Controllers that must clean up before the object goes.',
      items: { type: 'string', pattern: QUALIFIED_NAME, maxLength: 317 },
    },
    ownerReferences: {
      type: 'array',
      description: 'The objects this one belongs to (garbage collection).',
      items: {
        type: 'object',
        required: ['apiVersion', 'kind', 'name', 'uid'],
        properties: {
          apiVersion: { type: 'string', description: "The owner's apiVersion." },
          kind: { type: 'string', description: "The owner's kind.", pattern: '^[A-Z][A-Za-z0-9]*$' },
          name: { type: 'string', description: "The owner's name.", pattern: DNS1123_LABEL, maxLength: 63 },
          uid: { type: 'string', description: "The owner's uid.", maxLength: 128 },
          controller: { type: 'boolean', description: 'The owner is the managing controller.' },
          blockOwnerDeletion: { type: 'boolean', description: 'Foreground deletion of the owner waits for this object.' },
        },
      },
    },
  },
};
