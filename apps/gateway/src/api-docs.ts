/**
 * The OpenAPI side of the HTTP API: the JSON schemas of every request and response body (served as
 * `components.schemas` of /docs-json), and decorators that attach them to routes. Written out here because
 * esbuild emits no decorator metadata, so @nestjs/swagger can infer nothing from the TypeScript types; the
 * contract test (openapi.spec.ts) checks real responses against these schemas, so they cannot drift from
 * views.ts unnoticed.
 */
import { applyDecorators } from '@nestjs/common';
import { ApiBody, ApiHeader, ApiOperation, ApiParam, ApiQuery, ApiResponse } from '@nestjs/swagger';
import type { SchemaObject } from '@nestjs/swagger/dist/interfaces/open-api-spec.interface';
import { ERROR_TABLE } from '@distri-vault/shared';

const str = (description?: string): SchemaObject => (description ? { type: 'string', description } : { type: 'string' });
const int = (description?: string): SchemaObject => (description ? { type: 'integer', minimum: 0, description } : { type: 'integer', minimum: 0 });
const time = (description: string, nullable = false): SchemaObject => ({ type: 'string', format: 'date-time', description, ...(nullable ? { nullable: true } : {}) });
const SERVER_ID: SchemaObject = { type: 'string', pattern: '^[a-z2-7]{32}$', description: 'server ID: 32 base32 characters' };
const SHA256: SchemaObject = { type: 'string', pattern: '^([0-9a-f]{64})?$', description: 'lowercase hex SHA-256 of the plaintext; empty on deletion records' };

/** A closed object: every listed property required unless named in `optional`, nothing else allowed. */
function obj(properties: Record<string, SchemaObject | { $ref: string }>, optional: string[] = [], description?: string): SchemaObject {
  return {
    type: 'object',
    ...(description ? { description } : {}),
    properties: properties as SchemaObject['properties'],
    required: Object.keys(properties).filter((k) => !optional.includes(k)),
    additionalProperties: false,
  };
}

/** The names of the body schemas. */
export type SchemaName =
  | 'Error'
  | 'File'
  | 'FileList'
  | 'VersionList'
  | 'Removed'
  | 'Node'
  | 'NodeList'
  | 'NodeInfo'
  | 'FolderHealth'
  | 'Replication'
  | 'RecoveryStatus'
  | 'RecoveryStarted'
  | 'RecoverySummary'
  | 'Message'
  | 'MessageList'
  | 'SendMessage'
  | 'MessageSent'
  | 'Token'
  | 'TokenList'
  | 'TokenCreated'
  | 'CreateToken'
  | 'Status'
  | 'KeyInfo'
  | 'Rotation'
  | 'Shredded';

/** A reference to one of SCHEMAS. */
export function ref(name: SchemaName): { $ref: string } {
  return { $ref: `#/components/schemas/${name}` };
}
const list = (name: SchemaName): SchemaObject => ({ type: 'array', items: ref(name) });

const RECOVERY_COUNTS = {
  phase: { type: 'string', enum: ['idle', 'syncing', 'indexing', 'verifying', 'done', 'failed', 'unknown'], description: 'idle: no recovery ran yet' },
  run: int('run number since the node started; 0 if none ran'),
  trigger: { type: 'string', enum: ['', 'startup', 'request'] },
  started: time('start, or null', true),
  finished: time('end, or null while it runs', true),
  peersDone: int('peers synced with (answered or failed)'),
  peersTotal: int('peers to sync with'),
  chunks: int('chunks fetched and verified'),
  manifests: int('manifests fetched and verified'),
  bytes: int('bytes fetched'),
  bytesPerSecond: { type: 'number', minimum: 0 },
  files: int('live files in the index'),
  chunksChecked: int('chunks of live versions checked for presence'),
  chunksMissing: int('chunks still missing'),
  errors: int(),
  errorMessages: { type: 'array', items: str(), description: 'the last few error messages' },
  durationMs: int(),
} satisfies Record<string, SchemaObject>;

/** Every body schema of the API, by name. */
export const SCHEMAS: Record<SchemaName, SchemaObject> = {
  Error: obj(
    {
      error: obj({
        code: { type: 'string', enum: Object.keys(ERROR_TABLE), description: 'machine-readable, from the error table' },
        message: str('safe to show to the caller'),
      }),
    },
    [],
    'Every error answer: `{"error": {"code", "message"}}`.',
  ),
  File: obj(
    {
      path: str('path inside the folder'),
      version: { type: 'integer', minimum: 1 },
      size: int('plaintext size in bytes'),
      sha256: SHA256,
      updated: time('when the version was written'),
      chunks: int(),
      deleted: { type: 'boolean', enum: [true], description: 'present on deletion records in version listings' },
    },
    ['deleted'],
    'One version of a file.',
  ),
  FileList: obj({ files: list('File'), next: { type: 'string', nullable: true, description: 'the `after` of the next page; null on the last' } }),
  VersionList: obj({ versions: list('File') }, [], "A file's history, oldest first."),
  Removed: obj({ removed: int('versions removed') }),
  Node: obj({
    serverId: { type: 'string', pattern: '^([a-z2-7]{32})?$', description: 'empty until its first handshake' },
    address: str('host:port of its PeerService'),
    state: { type: 'string', enum: ['self', 'connecting', 'connected', 'suspect', 'down', 'left', 'disconnected'] },
    lastSeen: time('last message from it, or null', true),
    since: time('its last state change, or null', true),
  }),
  NodeList: obj({ nodes: list('Node') }, [], 'The home node first, then its members by server ID, then addresses not identified yet.'),
  NodeInfo: obj({
    serverId: SERVER_ID,
    peerAddress: str(),
    protocolVersion: int(),
    chunkSize: int('plaintext bytes per chunk'),
    replicas: int('copies kept of every object (R)'),
    writeQuorum: int('durable copies a put waits for'),
    backlog: obj({
      objects: int('copies owed to peers, queued or in flight'),
      bytes: int(),
      sent: int('copies acknowledged since start'),
      failed: int('copies that could not be delivered since start'),
      peers: { type: 'array', items: obj({ serverId: SERVER_ID, objects: int(), bytes: int() }) },
    }),
    lastRepair: {
      ...obj({ finished: time('when the pass finished'), objects: int(), pushed: int(), pushedBytes: int(), deleted: int(), failed: int(), underReplicated: int(), durationMs: int() }),
      nullable: true,
      description: 'the last repair pass; null before the first',
    },
    garbage: obj({
      records: int('GC records applied since start (every record held is applied at start)'),
      tombstones: int('object IDs named by those records: never stored, pushed or fetched again'),
      deleted: int('objects deleted from this node\'s disk because a record named them, since start'),
    }),
  }),
  FolderHealth: obj(
    {
      folder: SERVER_ID,
      own: { type: 'boolean', description: "the home node's own folder" },
      objects: int('objects (chunks and manifests) of the folder the home node holds'),
      chunks: int(),
      underReplicated: int('objects below R copies among the members the node could reach'),
      chunksUnderReplicated: int(),
      soleCopy: int('objects no other reachable member holds'),
    },
    [],
    'Replication health of one folder at the last repair pass.',
  ),
  Replication: obj({
    serverId: SERVER_ID,
    replicas: int('R'),
    pass: { ...obj({ finished: time('when the repair pass finished'), durationMs: int() }), nullable: true, description: 'null before the first pass' },
    totals: obj({ folders: int(), objects: int(), underReplicated: int(), soleCopy: int() }),
    folders: list('FolderHealth'),
    backlog: obj({ objects: int('copies owed to peers now'), bytes: int() }),
  }),
  RecoveryStatus: obj(RECOVERY_COUNTS, [], "Progress of the home node's current or last recovery."),
  RecoveryStarted: obj({ ...RECOVERY_COUNTS, joined: { type: 'boolean', description: 'true when a running recovery was joined' } }),
  RecoverySummary: obj({ peers: int(), chunks: int(), manifests: int(), bytes: int(), files: int(), durationMs: int() }, [], 'What a finished recovery restored.'),
  Message: obj({
    id: { type: 'string', pattern: '^[0-9a-f]{32}$' },
    from: SERVER_ID,
    to: { ...SERVER_ID, nullable: true, description: 'null for a broadcast' },
    topic: str(),
    body: str('UTF-8 text (invalid sequences replaced)'),
    bodyBase64: { type: 'string', format: 'byte', description: 'the exact bytes' },
    sent: time("sender's clock"),
    received: time('when the home node received or sent it'),
  }),
  MessageList: obj({ messages: list('Message'), next: { type: 'string', nullable: true, description: 'the `after` of the next page; null on the last' } }),
  SendMessage: obj(
    {
      to: { ...SERVER_ID, description: 'recipient server ID; omit to broadcast' },
      topic: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$' },
      body: str('UTF-8 text'),
      bodyBase64: { type: 'string', format: 'byte', description: 'bytes (instead of body); body or bodyBase64 at most 64 KiB' },
    },
    ['to', 'body', 'bodyBase64'],
  ),
  MessageSent: obj({ id: { type: 'string', pattern: '^[0-9a-f]{32}$' }, recipients: { type: 'array', items: SERVER_ID } }),
  Token: obj({ id: str(), name: str(), scope: { type: 'string', enum: ['read', 'write'] }, created: time('creation time') }, [], 'A bearer token (no secret).'),
  TokenList: obj({ tokens: list('Token') }),
  TokenCreated: obj(
    { id: str(), name: str(), scope: { type: 'string', enum: ['read', 'write'] }, created: time('creation time'), token: { type: 'string', pattern: '^dvt_', description: 'the secret: shown only now' } },
    [],
  ),
  CreateToken: obj({ name: str('a label (default "token")'), scope: { type: 'string', enum: ['read', 'write'], default: 'read' } }, ['name', 'scope']),
  Status: obj({ status: { type: 'string', enum: ['ok'] } }),
  KeyInfo: obj(
    {
      fingerprint: str('fingerprint of the current vault key'),
      createdUnixMs: int('when it was created, Unix ms'),
      previousFingerprints: { type: 'array', items: str(), description: 'older keys still kept (a rotation that did not finish)' },
      rotationUnfinished: { type: 'boolean', description: 'true when old keys are still kept: run the rotation again' },
    },
    [],
    'The home node\'s vault key (never the key itself).',
  ),
  Rotation: obj(
    {
      fingerprint: str('the new vault key'),
      retiredFingerprints: { type: 'array', items: str(), description: 'keys destroyed by this rotation' },
      manifestsRewritten: int('kept versions whose data keys were re-wrapped'),
      versionsShredded: int('versions made unreadable on every disk'),
      garbage: obj({
        manifests: int('manifests replaced or shredded'),
        chunks: int('chunks only shredded versions referenced'),
        chunkBytes: int('their ciphertext bytes'),
        records: int('GC records written naming them (0 when nothing new was garbage)'),
        deleted: int('objects deleted from the home node\'s disk; each peer deletes its copies when a record reaches it'),
      }),
      durationMs: int(),
      notice: str('what to do now: export the new recovery key'),
    },
    [],
    'A finished rotation.',
  ),
  Shredded: obj({ removed: int('versions removed from the history'), rotation: ref('Rotation') }),
};

/** What each error status means in this API. */
const ERROR_MEANING: Record<number, string> = {
  400: 'invalid_argument: malformed path, query or body',
  401: 'unauthenticated: no token, or an unknown or revoked one',
  403: 'permission_denied: a read-only token writing, or touching tokens',
  404: 'not_found',
  409: 'aborted: another rotation is running',
  412: 'failed_precondition: a kept manifest cannot be read now (rotating would lose it), or the key directory is read-only',
  413: 'resource_exhausted: upload larger than GATEWAY_MAX_UPLOAD_BYTES',
  416: 'invalid_argument: Range past the end (Content-Range: bytes */size)',
  429: 'resource_exhausted: more than GATEWAY_MAX_CONCURRENT requests (Retry-After)',
  500: 'data_loss (a chunk failed verification) or internal',
  503: 'unavailable: the home node (or a needed peer) is unreachable',
};

/** Documents error answers (the Error schema) with the given statuses. */
export function ApiErrors(...statuses: number[]): MethodDecorator & ClassDecorator {
  return applyDecorators(
    ...statuses.map((status) => ApiResponse({ status, description: ERROR_MEANING[status] ?? 'error', content: { 'application/json': { schema: ref('Error') } } })),
  ) as MethodDecorator & ClassDecorator;
}

/** Documents a JSON success answer. */
export function ApiJson(status: number, schema: SchemaName, description = ''): MethodDecorator {
  return ApiResponse({ status, description, content: { 'application/json': { schema: ref(schema) } } });
}

/** Documents an answer with no body. */
export function ApiEmpty(status: number, description: string): MethodDecorator {
  return ApiResponse({ status, description });
}

/** Documents a request body of the given schema (JSON), or raw bytes. */
export function ApiJsonBody(schema: SchemaName, required = true): MethodDecorator {
  return ApiBody({ required, schema: ref(schema) });
}

/** The raw-bytes body of an upload. */
export function ApiBytesBody(): MethodDecorator {
  return applyDecorators(ApiBody({ required: true, description: 'the file content, streamed', schema: { type: 'string', format: 'binary' } }));
}

/** Raw bytes as a success answer (downloads). */
export function ApiBytes(status: number, description: string): MethodDecorator {
  return ApiResponse({ status, description, content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } });
}

/** The `{path}` parameter of file and version routes. */
export function ApiFilePath(): MethodDecorator {
  return ApiParam({ name: 'path', required: true, description: 'file path: `/`-separated, percent-encoded segments (no `.`, `..` or empty segment)', schema: { type: 'string' } });
}

/** An optional query parameter. */
export function ApiOptionalQuery(name: string, description: string, schema: SchemaObject = { type: 'string' }): MethodDecorator {
  return ApiQuery({ name, required: false, description, schema });
}

/** A request header the route honours. */
export function ApiRequestHeader(name: string, description: string): MethodDecorator {
  return ApiHeader({ name, required: false, description });
}

/** Summary and description of an operation. */
export function ApiDoc(summary: string, description?: string): MethodDecorator {
  return ApiOperation(description ? { summary, description } : { summary });
}

/** Errors every authenticated route can answer. */
export const AUTH_ERRORS = [401, 429, 500];
