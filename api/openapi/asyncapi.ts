/**
 * The event catalog as an AsyncAPI 3.0 document (GET /v1/asyncapi.json), generated from the Avro
 * contracts and the topics (schemas/), so it cannot drift from what flows:
 *
 *  - one channel per Kafka topic, with its Kafka binding (partitions, replicas left to the cluster,
 *    cleanup policy, retention) and one message per event type: the Avro value contract as its payload
 *    (schemaFormat Avro), the key contract as the Kafka message binding's key, the CloudEvents headers
 *    (ce_*) as headers, and the ingestion example;
 *  - one channel for the webhook delivery a partner receives (Standard Webhooks): the body
 *    `{type, timestamp, data}` with `data` the event's JSON form, and the webhook-id,
 *    webhook-timestamp and webhook-signature headers;
 *  - operations: the platform sends to the topics (after ingestion or a source) and to each
 *    subscription's webhook; readers of the topics receive.
 *
 * test/unit/asyncapi.test.ts validates it with the AsyncAPI parser (and its Avro schema parser);
 * docs/event-catalog.md is rendered from it (`eventCatalogMarkdown`) and checked to be current.
 */
import { contractSchema, type ContractName } from '../../schemas/contracts.ts'
import { HEADER } from '../../schemas/headers.ts'
import { ALL_TOPICS, type TopicSpec } from '../../schemas/topics.ts'
import { avroToJsonSchema, EVENT_EXAMPLES } from './events.ts'

type Json = Record<string, unknown>

const AVRO_FORMAT = 'application/vnd.apache.avro+json;version=1.9.0'

/** The CloudEvents Kafka headers every event carries (schemas/headers.ts). */
const KAFKA_HEADERS: Json = {
  type: 'object',
  required: [
    HEADER.specVersion,
    HEADER.id,
    HEADER.type,
    HEADER.source,
    HEADER.time,
    HEADER.contentType,
    HEADER.schemaSubject,
    HEADER.schemaVersion,
  ],
  properties: {
    [HEADER.specVersion]: { type: 'string', const: '1.0', description: 'CloudEvents spec version.' },
    [HEADER.id]: {
      type: 'string',
      format: 'uuid',
      description:
        'Event id, a UUIDv7: unique and time-ordered; the webhook-id and idempotency key partners see on every retry.',
    },
    [HEADER.type]: { type: 'string', description: 'The event type, e.g. inventory.level.changed.' },
    [HEADER.source]: { type: 'string', description: 'URI reference of the producer, e.g. /sources/http-ingest.' },
    [HEADER.time]: { type: 'string', format: 'date-time', description: 'When it happened in the source system.' },
    [HEADER.contentType]: {
      type: 'string',
      const: 'application/vnd.confluent.avro',
      description: 'The value is Avro in the Confluent wire format (magic byte 0, 4-byte schema id, Avro binary).',
    },
    [HEADER.schemaSubject]: {
      type: 'string',
      description: 'Registry subject of the value schema (TopicNameStrategy: <topic>-value).',
    },
    [HEADER.schemaVersion]: { type: 'string', description: 'Version of the value schema in that subject.' },
    [HEADER.traceparent]: {
      type: 'string',
      description:
        "W3C trace context of the event (docs/tracing.md): the ingestion request's " +
        "(with tracing on, its create span's), or the produce batch's.",
    },
    [HEADER.tracestate]: {
      type: 'string',
      description: 'W3C tracestate that came with the traceparent of the ingestion request, when there was one.',
    },
    [HEADER.publisherId]: {
      type: 'string',
      description:
        'The organization that published the event, stamped by the platform (never ' +
        'taken from the payload; docs/tenancy.md).',
    },
  },
}

/** The Standard Webhooks headers of each delivery (consumers/webhook). */
const WEBHOOK_HEADERS: Json = {
  type: 'object',
  required: ['webhook-id', 'webhook-timestamp', 'webhook-signature', 'content-type'],
  properties: {
    'webhook-id': { type: 'string', description: 'The event id (ce_id): the same on every retry; deduplicate on it.' },
    'webhook-timestamp': {
      type: 'string',
      pattern: '^[0-9]+$',
      description: 'Seconds since the epoch when this attempt was signed (fresh on every attempt).',
    },
    'webhook-signature': {
      type: 'string',
      description:
        'Space-separated `v1,<base64>` signatures: HMAC-SHA256 of ' +
        '`<webhook-id>.<webhook-timestamp>.<body>` keyed with the base64 part of each ' +
        '`whsec_` secret in force (two during a rotation). Verify with any Standard ' +
        'Webhooks library.',
    },
    'content-type': { type: 'string', const: 'application/json' },
    traceparent: {
      type: 'string',
      description:
        "W3C trace context of the event: continue it to join the publisher's trace. " +
        "With tracing on, the span of this call; off, the event's as the publisher " +
        'sent it (docs/tracing.md). Not signed.',
    },
  },
}

const messageName = (eventType: string) =>
  eventType.replace(/\.([a-z])/g, (_m, c: string) => c.toUpperCase()).replace(/^[a-z]/, (c) => c.toUpperCase())
const channelId = (t: TopicSpec) => t.name.replace(/[^A-Za-z0-9]/g, '-')
const docOf = (contract: ContractName): string | undefined =>
  (JSON.parse(contractSchema(contract)) as { doc?: string }).doc

function topicMessages(t: TopicSpec): Record<string, Json> {
  const out: Record<string, Json> = {}
  for (const type of t.eventTypes) {
    const example = EVENT_EXAMPLES[type]?.[0]
    out[messageName(type)] = {
      name: type,
      title: type,
      summary: docOf(t.valueSchema) ?? type,
      contentType: 'application/vnd.confluent.avro',
      headers: KAFKA_HEADERS,
      payload: { schemaFormat: AVRO_FORMAT, schema: JSON.parse(contractSchema(t.valueSchema)) },
      ...(example
        ? {
            examples: [
              {
                name: type,
                summary: 'The JSON form a publisher posts to POST /v1/events/{eventType} (Avro on the topic).',
                payload: example,
              },
            ],
          }
        : {}),
      bindings: {
        kafka: {
          key: { type: 'string', description: `Avro (Confluent wire format) of ${t.keySchema}: ${t.key}` },
          bindingVersion: '0.5.0',
        },
      },
    }
  }
  return out
}

/** The AsyncAPI 3.0 document of the platform's events. */
export function asyncApiDocument(version = '0.1.0'): Json {
  const channels: Json = {}
  const operations: Json = {}
  const messages: Json = {}
  const schemas: Json = {}
  for (const t of ALL_TOPICS) {
    const id = channelId(t)
    const msgs = topicMessages(t)
    Object.assign(messages, msgs)
    channels[id] = {
      address: t.name,
      title: t.name,
      description:
        (t.cleanupPolicy === 'compact' ? 'State topic (compacted: the latest value per key is kept)' : 'Event topic') +
        `, keyed by ${t.key}; written by ` +
        (t.writtenBy === 'publishers' ? 'publishers (HTTP ingestion and sources)' : 'the platform only') +
        '.',
      messages: Object.fromEntries(Object.keys(msgs).map((m) => [m, { $ref: `#/components/messages/${m}` }])),
      bindings: {
        kafka: {
          topic: t.name,
          partitions: t.partitions,
          topicConfiguration: {
            'cleanup.policy': t.cleanupPolicy.split(','),
            ...(t.config['retention.ms'] ? { 'retention.ms': Number(t.config['retention.ms']) } : {}),
          },
          bindingVersion: '0.5.0',
        },
      },
    }
    operations[`publish-${id}`] = {
      action: 'send',
      title: `Events to ${t.name}`,
      summary:
        t.writtenBy === 'publishers'
          ? 'The platform produces what publishers post and what sources read, stamped with the publisher.'
          : 'The platform produces these itself (from its outbox).',
      channel: { $ref: `#/channels/${id}` },
      messages: Object.keys(msgs).map((m) => ({ $ref: `#/channels/${id}/messages/${m}` })),
    }
    operations[`consume-${id}`] = {
      action: 'receive',
      title: `Reading ${t.name}`,
      summary:
        "Sink workers (and the platform operator's own Kafka clients) read the topic; values decode with the registry.",
      channel: { $ref: `#/channels/${id}` },
      messages: Object.keys(msgs).map((m) => ({ $ref: `#/channels/${id}/messages/${m}` })),
    }
  }

  // The webhook a partner receives: one message per event type, the data being the event's JSON form.
  const webhookMessages: Record<string, Json> = {}
  for (const t of ALL_TOPICS) {
    schemas[`${messageName(t.eventTypes[0]!)}Data`] = avroToJsonSchema(contractSchema(t.valueSchema))
    for (const type of t.eventTypes) {
      const name = `${messageName(type)}Webhook`
      const example = EVENT_EXAMPLES[type]?.[0]
      webhookMessages[name] = {
        name: type,
        title: `${type} (webhook)`,
        summary:
          `The delivery of ${type} to a partner's webhook: after the grant's row ` +
          `filter and field projection, in the schema version the subscription pinned.`,
        contentType: 'application/json',
        headers: WEBHOOK_HEADERS,
        payload: {
          type: 'object',
          required: ['type', 'timestamp', 'data'],
          properties: {
            type: { type: 'string', const: type },
            timestamp: { type: 'string', format: 'date-time', description: 'When the event happened (ce_time).' },
            data: { $ref: `#/components/schemas/${messageName(t.eventTypes[0]!)}Data` },
          },
        },
        ...(example
          ? { examples: [{ name: type, payload: { type, timestamp: '2026-11-24T10:00:00.000Z', data: example } }] }
          : {}),
      }
    }
  }
  Object.assign(messages, webhookMessages)
  channels.webhook = {
    address: '{webhookUrl}',
    title: 'Partner webhook',
    description:
      "A partner subscription's webhook endpoint (Standard Webhooks). Answer 2xx to " +
      "confirm; 408, 429 and 5xx are retried on the subscription's schedule " +
      '(Retry-After honoured), 410 disables the subscription, other 4xx dead-letter ' +
      'the event. Deliveries are at least once, in order per key.',
    parameters: { webhookUrl: { description: "The URL of the subscription's webhook sink." } },
    messages: Object.fromEntries(Object.keys(webhookMessages).map((m) => [m, { $ref: `#/components/messages/${m}` }])),
    bindings: { http: { bindingVersion: '0.3.0' } },
  }
  operations['deliver-webhook'] = {
    action: 'send',
    title: 'Webhook delivery',
    summary: "The platform POSTs each entitled event to the subscription's URL, signed.",
    channel: { $ref: '#/channels/webhook' },
    messages: Object.keys(webhookMessages).map((m) => ({ $ref: `#/channels/webhook/messages/${m}` })),
    bindings: { http: { method: 'POST', bindingVersion: '0.3.0' } },
  }

  return {
    asyncapi: '3.0.0',
    info: {
      title: 'Distributary events',
      version,
      description:
        'Every event the platform carries: the Kafka topics with their Avro contracts ' +
        'and CloudEvents headers, and the signed webhook each partner receives. ' +
        'Generated from the contracts in schemas/; the same as docs/event-catalog.md.',
      license: { name: 'Apache-2.0' },
    },
    defaultContentType: 'application/json',
    servers: {
      kafka: {
        host: '127.0.0.1:9092',
        protocol: 'kafka',
        description: "The local stack's broker (KAFKA_BROKERS in production).",
      },
    },
    channels,
    operations,
    components: { messages, schemas },
  }
}

/** A Markdown page of every event type with its fields and their docs (docs/event-catalog.md). */
export function eventCatalogMarkdown(): string {
  const lines: string[] = [
    '# Event catalog',
    '',
    'Generated from the Avro contracts in `schemas/avro/` (`npm run catalog` writes this page; a unit test',
    'checks that it is current). The same catalog, machine-readable: `GET /v1/asyncapi.json` (AsyncAPI 3.0).',
    '',
    'Every event carries the CloudEvents headers `ce_id` (UUIDv7, the webhook-id partners see), `ce_type`,',
    '`ce_source`, `ce_time`, `ce_schemasubject`, `ce_schemaversion`, `traceparent` and `ce_publisherid`',
    '(stamped by the platform). On Kafka the value is Avro in the Confluent wire format; a webhook carries',
    '`{type, timestamp, data}` with `data` in the JSON form below.',
    '',
  ]
  for (const { topic: t, doc, fields } of eventCatalog()) {
    lines.push(`## ${t.eventTypes.join(', ')}`, '')
    lines.push(
      `Topic \`${t.name}\` (${t.partitions} partitions, ${t.cleanupPolicy}), key ` +
        `${t.key}; written by ` +
        `${t.writtenBy === 'publishers' ? 'publishers' : 'the platform only'}.`,
    )
    if (doc) lines.push('', doc)
    lines.push('', '| Field | Type | Description |', '|---|---|---|')
    for (const f of fields) {
      const text = f.doc.replace(/\|/g, '\\|').replace(/\n/g, ' ')
      const byDefault = f.default !== undefined ? ` Default: \`${JSON.stringify(f.default)}\`.` : ''
      lines.push(`| \`${f.name}\` | ${f.type} | ${text}${byDefault} |`)
    }
    lines.push('')
  }
  return lines.join('\n')
}

export interface CatalogEntry {
  topic: TopicSpec
  doc: string | undefined
  /** `type`: Markdown (names in backticks), as the catalog page shows it. */
  fields: Array<{ name: string; type: string; doc: string; default?: unknown }>
}

/** Every topic's value contract, its doc and its fields' (the catalog page and the console's event catalog). */
export function eventCatalog(): CatalogEntry[] {
  return ALL_TOPICS.map((topic) => {
    const schema = JSON.parse(contractSchema(topic.valueSchema)) as {
      name: string
      doc?: string
      fields: Array<{ name: string; type: unknown; doc?: string; default?: unknown }>
    }
    return {
      topic,
      doc: schema.doc,
      fields: schema.fields.map((f) => ({
        name: f.name,
        type: typeText(f.type),
        doc: f.doc ?? '',
        ...(f.default !== undefined ? { default: f.default } : {}),
      })),
    }
  })
}

function typeText(t: unknown): string {
  if (typeof t === 'string') return `\`${t}\``
  if (Array.isArray(t)) return t.map(typeText).join(' or ')
  const o = t as { type: unknown; logicalType?: string; name?: string; items?: unknown; symbols?: string[] }
  if (o.logicalType) return `\`${String(o.type)}\` (${o.logicalType})`
  if (o.type === 'array') return `array of ${typeText(o.items)}`
  if (o.type === 'enum') return `enum ${o.symbols ? o.symbols.map((s) => `\`${s}\``).join(', ') : ''}`
  if (o.type === 'record') return `record \`${o.name ?? ''}\``
  return typeText(o.type)
}
