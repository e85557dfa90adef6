/**
 * The event ingestion route (POST /v1/events/{eventType}, producers/http-ingest/router.ts) in the
 * OpenAPI document: one JSON Schema per event contract, derived from the Avro schemas in
 * schemas/avro/ (so they cannot drift), accepting the JSON forms json-avro.ts converts (dates as
 * YYYY-MM-DD or days, timestamps as RFC 3339 or milliseconds, decimals as strings), and an example
 * batch per event type (a unit test converts each against its contract).
 *
 * The route has its own router and authentication (publisher keys), so the operation carries
 * `x-distributary-router: ingest`; the management API's table tests leave it to the ingestion tests.
 */
import { contractSchema, type ContractName } from '../../schemas/contracts.ts'
import { EVENT_EXAMPLES } from '../../schemas/examples.ts'
import { ALL_TOPICS, PUBLISHER_TOPICS, type TopicSpec } from '../../schemas/topics.ts'
import { object, pathParam, RATE_LIMIT_HEADERS, RETRY_AFTER } from './parts.ts'

export { EVENT_EXAMPLES }

type Avro = string | Avro[] | { type: Avro; [k: string]: unknown }
type Json = Record<string, unknown>

/** JSON Schema (2020-12, as OpenAPI 3.1 uses) of what the ingestion converter accepts for an Avro schema. */
export function avroToJsonSchema(schemaText: string): Json {
  const named = new Map<string, Avro>()
  const conv = (s: Avro, ns: string): Json => {
    if (Array.isArray(s)) {
      const branches = s.map((b) => conv(b, ns))
      return branches.length === 1 ? branches[0]! : { anyOf: branches }
    }
    if (typeof s === 'string') {
      const found = named.get(s) ?? named.get(`${ns}.${s}`)
      if (found) return conv(found, ns)
      return primitive(s, undefined)
    }
    const t = s.type
    if (typeof t !== 'string') return conv(t, ns)
    const logical = s.logicalType as string | undefined
    const doc = typeof s.doc === 'string' ? { description: s.doc } : {}
    if (t === 'record' || t === 'error' || t === 'enum' || t === 'fixed') {
      const name = String(s.name)
      const full = name.includes('.') ? name : `${(s.namespace as string | undefined) ?? ns}.${name}`
      named.set(full, s)
      named.set(name, s)
      ns = full.slice(0, full.lastIndexOf('.'))
    }
    switch (t) {
      case 'record':
      case 'error': {
        const fields = s.fields as Array<{ name: string; type: Avro; default?: unknown; doc?: string }>
        const nullable = (f: Avro): boolean => f === 'null' || (Array.isArray(f) && f.includes('null'))
        return {
          type: 'object',
          ...doc,
          additionalProperties: false,
          required: fields.filter((f) => !('default' in f) && !nullable(f.type)).map((f) => f.name),
          properties: Object.fromEntries(
            fields.map((f) => [f.name, { ...conv(f.type, ns), ...(f.doc ? { description: f.doc } : {}) }]),
          ),
        }
      }
      case 'enum':
        return { type: 'string', enum: s.symbols as string[], ...doc }
      case 'array':
        return { type: 'array', items: conv(s.items as Avro, ns) }
      case 'map':
        return { type: 'object', additionalProperties: conv(s.values as Avro, ns) }
      default:
        return primitive(t, logical)
    }
  }
  return conv(JSON.parse(schemaText) as Avro, '')
}

/** Avro's int and long as the JSON converter takes them (connectors/source/json-avro.ts): 32 bits, and ±2^53-1. */
const INT = { type: 'integer', minimum: -2147483648, maximum: 2147483647 }
const LONG = { type: 'integer', minimum: -9007199254740991, maximum: 9007199254740991 }

function primitive(t: string, logical: string | undefined): Json {
  if (logical === 'date')
    return {
      anyOf: [
        { type: 'string', format: 'date' },
        { ...INT, description: 'days since 1970-01-01' },
      ],
    }
  if (logical === 'timestamp-millis')
    return {
      anyOf: [
        { type: 'string', format: 'date-time' },
        { ...LONG, description: 'milliseconds since 1970-01-01T00:00:00Z' },
      ],
    }
  if (logical === 'decimal')
    return {
      anyOf: [{ type: 'string', pattern: '^-?\\d+(\\.\\d+)?$' }, { type: 'number' }],
      description: 'a decimal, best as a string such as "12.50"',
    }
  if (logical === 'uuid') return { type: 'string', format: 'uuid' }
  switch (t) {
    case 'null':
      return { type: 'null' }
    case 'boolean':
      return { type: 'boolean' }
    case 'int':
      return { ...INT }
    case 'long':
      return { ...LONG }
    case 'float':
    case 'double':
      return { type: 'number' }
    case 'bytes':
    case 'fixed':
      return { type: 'string', contentEncoding: 'base64' }
    default:
      return { type: 'string' }
  }
}

/** Component name of each value contract's event schema, e.g. InventoryLevelEvent. */
export const componentName = (contract: ContractName) =>
  `${contract.replace(/(^|-)([a-z])/g, (_m, _d: string, c: string) => c.toUpperCase())}Event`

/** components.schemas of the event contracts. */
export const eventSchemas: Record<string, Json> = Object.fromEntries(
  ALL_TOPICS.map((t) => [componentName(t.valueSchema), avroToJsonSchema(contractSchema(t.valueSchema))]),
)

const problem = (description: string, headers?: Json) => ({
  description,
  ...(headers ? { headers } : {}),
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
})

/**
 * The ingestion operation for the event types of `topics`: on `/events/{eventType}` (the types as the path parameter's
 * list) or, for a contract with one event type, on its own literal path, so that its body schema is that contract
 * alone (OpenAPI cannot tie a body schema to a path parameter's value: with one operation for every type, an inventory
 * event posted as a deal type was schema-valid and refused). Express serves them all at /events/:eventType.
 */
function ingestion(topics: readonly TopicSpec[], literal: string | null, operationId: string): Json {
  const types = topics.flatMap((t) => t.eventTypes)
  return {
    post: {
      summary: 'Publish a batch of events of one type (publisher keys)',
      tags: ['events'],
      operationId,
      'x-distributary-router': 'ingest',
      description:
        "A JSON array of events of one type, each checked against the event type's Avro contract: " +
        PUBLISHER_TOPICS.map(
          (t) => `${t.eventTypes.join(', ')} → ${componentName(t.valueSchema)} on topic ${t.name}`,
        ).join('; ') +
        (". The platform stamps the publisher (the key's organization) on every event, " +
          'in the ce_publisherid header and in the Kafka key: an event whose ' +
          'manufacturerId names another organization is refused (403), and ') +
        ALL_TOPICS.filter((t) => t.writtenBy === 'platform')
          .flatMap((t) => t.eventTypes)
          .join(', ') +
        ' is published by the platform alone (403)' +
        ('. An invalid batch is refused whole (400, every fault by JSON Pointer) and ' +
          'nothing is produced. 202 comes only after the broker ') +
        ('acknowledged every event (acks=all), with their event ids; 503 with ' +
          'Retry-After when they could not be stored. ') +
        ('Idempotency-Key replays the first answer for the window; a key still in ' +
          'progress is 409, a key reused with another body 422. ') +
        ('Each API key may send INGEST_RATE_LIMIT_EVENTS_PER_SECOND events per second ' +
          '(default 10,000; a token bucket of INGEST_RATE_LIMIT_BURST, ') +
        ('default 20,000): a request is admitted while the key has a unit left and is ' +
          'charged its number of events; beyond, 429 with Retry-After ') +
        ('before the body is read, and nothing is produced. Every answer carries ' +
          'RateLimit and RateLimit-Policy (policy "ingest", quota units: events).'),
      parameters: [
        ...(literal === null
          ? [pathParam('eventType', 'The event type (ce_type).', { type: 'string', enum: types })]
          : []),
        {
          name: 'Idempotency-Key',
          in: 'header',
          required: false,
          description: 'Repeat a batch safely: the same key and body return the first answer.',
          schema: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e]+$' },
        },
        {
          name: 'traceparent',
          in: 'header',
          required: false,
          description: 'W3C Trace Context of the caller, carried on every event of the batch.',
          schema: { type: 'string' },
        },
      ],
      requestBody: {
        required: true,
        content: {
          'application/json': {
            schema: {
              type: 'array',
              minItems: 1,
              maxItems: 1000,
              items: {
                anyOf: topics.map((t) => ({ $ref: `#/components/schemas/${componentName(t.valueSchema)}` })),
              },
            },
            examples: Object.fromEntries(
              Object.entries(EVENT_EXAMPLES)
                .filter(([type]) => types.includes(type))
                .map(([type, value]) => [type, { summary: `A batch of ${type}`, value }]),
            ),
          },
        },
      },
      responses: {
        '202': {
          description: 'Stored in Kafka (acknowledged by every in-sync replica).',
          headers: RATE_LIMIT_HEADERS,
          content: {
            'application/json': {
              schema: object(['accepted', 'eventType', 'topic', 'eventIds'], {
                accepted: { type: 'integer' },
                eventType: { type: 'string' },
                topic: { type: 'string' },
                eventIds: { type: 'array', items: { type: 'string', format: 'uuid' } },
              }),
            },
          },
        },
        '400': problem(
          'Not a JSON array of valid events; `errors[].field` is the JSON Pointer of ' +
            'each fault (e.g. /3/onHand), `index` the event.',
        ),
        '401': problem('No valid publisher API key.'),
        '403': problem(
          'An event names another manufacturer than the publishing organization ' +
            '(`errors[].field` names it, e.g. /0/manufacturerId), or the event type is ' +
            'published by the platform alone (partner profiles); nothing was accepted.',
        ),
        '404': problem('No topic carries this event type; `knownTypes` lists those that do.'),
        '409': problem('A request with this Idempotency-Key is still in progress.', {
          'Retry-After': { schema: { type: 'integer' } },
        }),
        '413': problem('The body or the batch is larger than the limit.'),
        '415': problem('The body is not application/json.'),
        '422': problem('The Idempotency-Key was used with another body or event type.'),
        '429': problem(
          'The key sent more events than its rate limit allows, or the client address ' +
            'or key prefix failed too many API key attempts; nothing was accepted. Retry ' +
            'after Retry-After.',
          { ...RETRY_AFTER, ...RATE_LIMIT_HEADERS },
        ),
        '503': problem(
          'The events were not stored (Kafka unavailable, buffer full), or the API key ' +
            'could not be verified now (too many verifications waiting); nothing was ' +
            'accepted. Retry after Retry-After.',
          { 'Retry-After': { schema: { type: 'integer' } } },
        ),
      },
    },
  }
}

/** Contracts with one event type: each on its own path. */
const SINGLE = PUBLISHER_TOPICS.filter((t) => t.eventTypes.length === 1)
const SHARED = PUBLISHER_TOPICS.filter((t) => t.eventTypes.length > 1)

export const ingestionPaths = {
  ...(SHARED.length > 0 ? { '/events/{eventType}': ingestion(SHARED, null, 'publishEvents') } : {}),
  ...Object.fromEntries(
    SINGLE.map((t) => [
      `/events/${t.eventTypes[0]}`,
      ingestion([t], t.eventTypes[0]!, `publish${componentName(t.valueSchema).replace(/Event$/, 'Events')}`),
    ]),
  ),
}
