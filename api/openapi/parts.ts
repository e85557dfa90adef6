/**
 * The building blocks of the management API document, shared by its parts (document.ts, sources.ts,
 * subscriptions.ts): references, JSON bodies, the operations with the problem answers every one of
 * them may give, and the ids and values several parts name.
 */

import { ALL_TOPICS } from '../../schemas/topics.ts'
import { HTTP_URL_MEANING, HTTP_URL_PATTERN } from '../../consumers/http/url.ts'
import { MAPPING_PATTERN } from '../../consumers/rest/mapping.ts'

export const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` })
export const problems = (...codes: number[]) =>
  Object.fromEntries(codes.map((c) => [String(c), { $ref: `#/components/responses/Problem${c}` }]))
export const json = (schema: unknown, example?: unknown) => ({
  content: { 'application/json': { schema, ...(example !== undefined ? { example } : {}) } },
})
export const body = (schema: unknown, example: unknown) => ({ required: true, ...json(schema, example) })
export const ok = (description: string, schema: unknown) => ({ description, ...json(schema) })
export const PAGE = [{ $ref: '#/components/parameters/Limit' }, { $ref: '#/components/parameters/Cursor' }]
export const IDEMPOTENCY = { $ref: '#/components/parameters/IdempotencyKey' }
export const dateTime = { type: 'string', format: 'date-time' }
export const nullableDateTime = { type: ['string', 'null'], format: 'date-time' }

/**
 * Response headers of the rate limits (draft-ietf-httpapi-ratelimit-headers-11), defined once in
 * components.headers: every admitted answer of a limited route carries RateLimit and RateLimit-Policy,
 * a 429 also Retry-After.
 */
export const headerComponents = {
  RetryAfter: {
    description: 'Seconds to wait before trying again.',
    schema: { type: 'integer', minimum: 1 },
    example: 2,
  },
  RateLimit: {
    description:
      'What is left of the quota policy now ' +
      '(draft-ietf-httpapi-ratelimit-headers-11): `r` units available, `t` the ' +
      'seconds that applies for (when r=0: until a unit is free again).',
    schema: { type: 'string' },
    example: '"ingest";r=0;t=2',
  },
  RateLimitPolicy: {
    description:
      'The quota policy (draft-ietf-httpapi-ratelimit-headers-11): `q` units per ' +
      '`w` seconds sustained; a token bucket, so a burst may exceed q at once.',
    schema: { type: 'string' },
    example: '"ingest";q=10000;w=1',
  },
}
export const RATE_LIMIT_HEADERS = {
  RateLimit: { $ref: '#/components/headers/RateLimit' },
  'RateLimit-Policy': { $ref: '#/components/headers/RateLimitPolicy' },
}
export const RETRY_AFTER = { 'Retry-After': { $ref: '#/components/headers/RetryAfter' } }

/** A change: with a body it may also be too large (413) or not JSON (415). */
export const mutation = (
  summary: string,
  tag: string,
  operationId: string,
  params: unknown[],
  responses: Record<string, unknown>,
  extra: Record<string, unknown> = {},
) => ({
  summary,
  tags: [tag],
  operationId,
  parameters: params,
  responses: {
    ...responses,
    ...problems(400, 401, 403, 404, 409, ...(extra.requestBody ? [413, 415] : []), 422, 429, 503),
  },
  ...extra,
})

/** A read: a list may also get a cursor this API did not return (422 naming `cursor`). */
export const read = (summary: string, tag: string, operationId: string, params: unknown[], response: unknown) => ({
  summary,
  tags: [tag],
  operationId,
  parameters: params,
  responses: { '200': response, ...problems(400, 401, 404, ...(params.includes(PAGE[1]) ? [422] : []), 429, 503) },
})

/** An operation of a collection: its summary, and its answer's description where it is not the usual one. */
interface Said {
  summary: string
  answer?: string
}
/** A create or a change: also its body's example, and the schema answered where it is not the resource. */
interface Written extends Said {
  example: unknown
  schema?: string
}
/** The operations of a collection (operationsOf(tag).collection), each stating only what differs from the usual. */
interface CollectionOperations {
  list?: Said & { filters?: unknown[] }
  create?: Written & { description?: string }
  get?: Said
  update?: Written
  remove?: Said
  /** Operations on the item's path that are none of these. */
  item?: Record<string, unknown>
}

/**
 * The operations of one tag, each stating only what differs from its kind: `read` and `mutation` with the tag given
 * once, and the usual kinds by name. An answer is `ok(description, schema)`, or for a removal its description.
 */
export function operationsOf(tag: string) {
  const get = (summary: string, operationId: string, params: unknown[], response: unknown) =>
    read(summary, tag, operationId, params, response)
  const change = (
    summary: string,
    operationId: string,
    params: unknown[],
    responses: Record<string, unknown>,
    extra: Record<string, unknown> = {},
  ) => mutation(summary, tag, operationId, params, responses, extra)
  const kinds = {
    read: get,
    mutation: change,
    /** A page of `item`s, filtered by the query parameters given after limit and cursor. */
    list: (summary: string, operationId: string, answer: string, item: string, ...filters: unknown[]) =>
      get(summary, operationId, [...PAGE, ...filters], ok(answer, listOf(item))),
    /** One thing, named by the path parameter. */
    one: (summary: string, operationId: string, param: unknown, answer: string, schema: string) =>
      get(summary, operationId, [param], ok(answer, ref(schema))),
    /** A create (repeatable with an Idempotency-Key), answered 201. */
    create: (summary: string, operationId: string, created: unknown, requestBody: unknown, description?: string) =>
      change(
        summary,
        operationId,
        [IDEMPOTENCY],
        { '201': created },
        { ...(description && { description }), requestBody },
      ),
    /** A change of the thing the path parameter names, answered 200. */
    update: (summary: string, operationId: string, param: unknown, changed: unknown, requestBody: unknown) =>
      change(summary, operationId, [param], { '200': changed }, { requestBody }),
    /** A removal of the thing the path parameter names, answered 204. */
    remove: (summary: string, operationId: string, param: unknown, gone: string) =>
      change(summary, operationId, [param], { '204': { description: gone } }),
    /**
     * PUT `<item>/<verb>` of each [verb, operationId, description]: "<Verb> the <what>" records the desired state,
     * answered 202 with `recorded`.
     */
    desiredStates: (item: string, param: unknown, what: string, recorded: unknown, verbs: [string, string, string][]) =>
      Object.fromEntries(
        verbs.map(([verb, operationId, description]) => [
          `${item}/${verb}`,
          {
            put: change(
              `${verb[0]!.toUpperCase()}${verb.slice(1)} the ${what}`,
              operationId,
              [param],
              { '202': recorded },
              {
                description,
              },
            ),
          },
        ]),
      ),
  }
  return {
    ...kinds,
    /**
     * The collection of one kind of resource, `name` (e.g. 'InboundConnector'), as this API's conventions make it:
     * - `/<names>` (kebab case: /inbound-connectors): GET `list<Name>s`, a page of <Name> filtered by
     *   `list.filters` ("A page of <names>."); POST `create<Name>`, body <Name>Create, 201 with a <Name>
     *   ("Created.");
     * - `/<names>/{<param>}`: GET `get<Name>`, the <Name> ("The <name>."); PATCH `update<Name>`, body
     *   <Name>Patch, 200 with a <Name> ("Changed."); DELETE `delete<Name>`, 204 ("Deleted."); and the operations
     *   of `item`.
     * Each operation given states only what differs from that; one not given is not served.
     */
    collection(name: string, param: { name: string }, ops: CollectionOperations) {
      const names = name.replace(/(?<=.)([A-Z])/g, '-$1').toLowerCase() + 's'
      const words = names.replaceAll('-', ' ')
      const { list, create, get, update, remove } = ops
      /** A create's or a change's answer and body. */
      const written = (w: Written, usual: string, bodySchema: string): [unknown, unknown] => [
        ok(w.answer ?? usual, ref(w.schema ?? name)),
        body(ref(bodySchema), w.example),
      ]
      return {
        [`/${names}`]: {
          ...(list && {
            get: kinds.list(
              list.summary,
              `list${name}s`,
              list.answer ?? `A page of ${words}.`,
              name,
              ...(list.filters ?? []),
            ),
          }),
          ...(create && {
            post: kinds.create(
              create.summary,
              `create${name}`,
              ...written(create, 'Created.', `${name}Create`),
              create.description,
            ),
          }),
        },
        [`/${names}/{${param.name}}`]: {
          ...(get && {
            get: kinds.one(get.summary, `get${name}`, param, get.answer ?? `The ${words.slice(0, -1)}.`, name),
          }),
          ...(update && {
            patch: kinds.update(update.summary, `update${name}`, param, ...written(update, 'Changed.', `${name}Patch`)),
          }),
          ...(remove && { delete: kinds.remove(remove.summary, `delete${name}`, param, remove.answer ?? 'Deleted.') }),
          ...ops.item,
        },
      }
    },
  }
}

/** An object schema: its properties, the `required` ones among them. */
export const object = (required: readonly string[], properties: Record<string, unknown>) => ({
  type: 'object',
  required,
  properties,
})
/** An object schema closed to properties it does not name. */
export const closed = (required: readonly string[], properties: Record<string, unknown>) => ({
  type: 'object',
  additionalProperties: false,
  required,
  properties,
})

// ids, lists and values the parts of the document share
export const listOf = (item: string) => ({
  type: 'object',
  required: ['items', 'nextCursor'],
  properties: {
    items: { type: 'array', items: ref(item) },
    nextCursor: { type: ['string', 'null'], description: 'Pass as `cursor` for the next page; null on the last page.' },
  },
})
export const pathParam = (name: string, description: string, schema: unknown) => ({
  name,
  in: 'path',
  required: true,
  description,
  schema,
})
/** A path parameter holding a platform id (`<prefix>_` and 24 hex digits). */
export const pathId = (name: string, prefix: string, what: string) =>
  pathParam(name, `Id of the ${what}.`, { type: 'string', pattern: `^${prefix}_[0-9a-f]{24}$` })
export const query = (name: string, schema: unknown, description: string) => ({
  name,
  in: 'query',
  required: false,
  description,
  schema,
})

/**
 * What a name may not hold: C0 and C1 control characters and DEL (a name is one line of text), and the bidirectional
 * embeddings, overrides and isolates, with which a name can be made to display as another organization's.
 */
const NOT_IN_NAMES = '\\u0000-\\u001f\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069'
/**
 * A name people read, 1 to `maxLength` characters: one line, not blank. The pattern has no ambiguous repetition (its
 * first class is spaces, its second anything else), so it is checked in linear time whatever the length sent.
 */
const NAME_PATTERN = `^[^\\S${NOT_IN_NAMES}]*[^\\s${NOT_IN_NAMES}][^${NOT_IN_NAMES}]*$`
export const displayName = (maxLength = 200) => ({
  type: 'string',
  minLength: 1,
  maxLength,
  pattern: NAME_PATTERN,
  description: 'One line of text, not blank: no control characters, no bidirectional overrides.',
})

/** What the document's patterns mean to a person: a schema validator says only `must match pattern "<pattern>"`. */
const PATTERN_MEANINGS = new Map([
  [NAME_PATTERN, 'must be one line of text, not blank, with no control or bidirectional override characters'],
  [HTTP_URL_PATTERN, HTTP_URL_MEANING],
  [MAPPING_PATTERN, 'must not be blank (leave it out instead)'],
])

/** A validator's message, with a pattern of the document said in words where it has some. */
export function readableMessage(message: string): string {
  // ajv's words for a field an if/then of the schema forbids (e.g. an admin key's organizationId)
  if (message === 'boolean schema is false') return 'is not allowed with the values of the other fields'
  const pattern = /^must match pattern "(.*)"$/s.exec(message)?.[1]
  return (pattern !== undefined && PATTERN_MEANINGS.get(pattern)) || message
}
export const id = (prefix: string) => ({ type: 'string', pattern: `^${prefix}_[0-9a-f]{24}$` })
/**
 * An event type the platform declares (schemas/topics.ts): a closed list, so the schema names it; with only a pattern,
 * an unknown one passed the schema and was a 422 the document did not foretell.
 */
export const eventType = {
  type: 'string',
  enum: ALL_TOPICS.flatMap((t) => t.eventTypes),
  description: 'e.g. inventory.level.changed',
}
export const fieldPath = {
  type: 'string',
  pattern: '^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*$',
  maxLength: 200,
}
const overlap = {
  type: 'object',
  additionalProperties: false,
  properties: {
    overlapSeconds: {
      type: 'integer',
      minimum: 0,
      maximum: 30 * 24 * 3600,
      default: 86400,
      description: 'How long the previous credential stays valid.',
    },
  },
}

/**
 * A rotation of the credential of the thing `param` names: a new one now, shown once in the 201 (`rotated`),
 * the previous one still valid for the overlap the body asks for (`overlapSeconds` in the example).
 */
export const rotation = (
  summary: string,
  tag: string,
  operationId: string,
  param: unknown,
  rotated: unknown,
  overlapSeconds: number,
) =>
  mutation(
    summary,
    tag,
    operationId,
    [param, IDEMPOTENCY],
    { '201': rotated },
    {
      requestBody: body(overlap, { overlapSeconds }),
    },
  )
