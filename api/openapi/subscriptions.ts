/**
 * The /subscriptions part of the management API document (subscriptions, their deliveries and dead
 * letters), spread into document.ts; their connectors are in connectors.ts. The sink config schemas
 * come from the sink types' plug-ins (consumers/plugins.ts).
 */
import { SINK_PLUGINS, SINK_TYPES } from '../../consumers/plugins.ts'
import { ALL_TOPICS } from '../../schemas/topics.ts'
import {
  closed,
  dateTime,
  eventType,
  fieldPath,
  id,
  IDEMPOTENCY,
  json,
  listOf,
  nullableDateTime,
  object,
  ok,
  operationsOf,
  PAGE,
  pathId,
  pathParam,
  query,
  ref,
  rotation,
} from './parts.ts'

/** The event types of event topics (deals): every record is a step of its own, so no backlog of theirs collapses. */
const EVENT_TOPIC_TYPES = ALL_TOPICS.filter((t) => t.cleanupPolicy !== 'compact').flatMap((t) => t.eventTypes)

const SUB = pathId('subscriptionId', 'sub', 'subscription')
const EVENT = pathParam('eventId', 'Id of the event.', { type: 'string', minLength: 1, maxLength: 200 })
const subscriptions = operationsOf('subscriptions')
const deliveries = operationsOf('deliveries')
const SUBSCRIPTION_EXAMPLE = {
  name: 'stock-to-erp',
  eventTypes: ['inventory.level.changed'],
  fields: ['sku', 'available'],
  schemaVersions: { 'inventory.level.changed': 1 },
  sink: { type: 'webhook', url: 'https://erp.example.com/hooks/stock' },
  deliveryPolicy: { timeoutMs: 5000 },
}
export const subscriptionPaths = {
  ...subscriptions.collection('Subscription', SUB, {
    list: {
      summary: 'List subscriptions',
      filters: [
        query('partnerId', id('org'), "Only this partner's."),
        query('eventType', eventType, 'Only those receiving this event type.'),
      ],
    },
    create: {
      summary: "Create a subscription (within the partner's grants)",
      answer: 'Created; `webhookSecret` is shown only now.',
      schema: 'SubscriptionCreated',
      example: SUBSCRIPTION_EXAMPLE,
    },
    get: { summary: 'Get a subscription', answer: 'The subscription (secrets left out).' },
    update: {
      summary: 'Change a subscription (still within the grants)',
      schema: 'SubscriptionCreated',
      example: { deliveryPolicy: { timeoutMs: 8000 } },
    },
    remove: { summary: 'Delete a subscription, its connector and its delivery log' },
  }),
  '/subscriptions/{subscriptionId}/webhook-secrets/rotate': {
    post: rotation(
      'Rotate the webhook secret: both sign during the overlap',
      'subscriptions',
      'rotateWebhookSecret',
      SUB,
      ok('The new secret, shown only now.', ref('SubscriptionCreated')),
      86400,
    ),
  },
  '/subscriptions/{subscriptionId}/deliveries': {
    get: deliveries.read(
      'Search the delivery log (newest first)',
      'listDeliveries',
      [
        SUB,
        ...PAGE,
        query('eventId', { type: 'string', minLength: 1, maxLength: 200 }, 'Only this event.'),
        query('key', { type: 'string', minLength: 1, maxLength: 500 }, 'Only events with this key.'),
        query('status', { type: 'string', enum: ['pending', 'retrying', 'delivered', 'dead'] }, 'Only this status.'),
        query('since', dateTime, 'First attempted at or after.'),
        query('until', dateTime, 'First attempted at or before.'),
      ],
      ok('A page of deliveries.', listOf('Delivery')),
    ),
  },
  '/subscriptions/{subscriptionId}/deliveries/{eventId}': {
    get: deliveries.read(
      "One event's delivery and its attempts",
      'getDelivery',
      [SUB, EVENT],
      ok('The delivery.', ref('Delivery')),
    ),
  },
  '/subscriptions/{subscriptionId}/deliveries/{eventId}/retry': {
    post: deliveries.mutation('Deliver one event again', 'retryDelivery', [SUB, EVENT, IDEMPOTENCY], {
      '202': ok('Retry requested; the sink runtime performs it.', ref('RetryRequest')),
    }),
  },
  '/subscriptions/{subscriptionId}/dead-letters': {
    get: deliveries.read(
      'Dead letters of a subscription (newest first)',
      'listDeadLetters',
      [SUB, ...PAGE],
      ok('A page of dead deliveries.', listOf('Delivery')),
    ),
  },
  '/subscriptions/{subscriptionId}/dead-letters/retry': {
    post: deliveries.mutation('Deliver every dead letter again', 'retryDeadLetters', [SUB, IDEMPOTENCY], {
      '202': ok('Retry requested; the sink runtime performs it.', ref('RetryRequest')),
    }),
  },
  '/subscriptions/{subscriptionId}/test': {
    post: deliveries.mutation(
      'Send a test event',
      'sendTestEvent',
      [SUB, IDEMPOTENCY],
      {
        '202': {
          ...ok('Test requested; the worker holding the subscription sends it.', ref('RetryRequest')),
          headers: {
            Location: { description: 'The retry request, to follow its outcome.', schema: { type: 'string' } },
          },
        },
      },
      {
        description:
          "The example of one of the subscription's event types (the first when none is named), sent to its sink " +
          "whatever the grants (it is no publisher's data), also while the subscription is paused or parked. Its " +
          'attempts are in the delivery log under `eventId` (with `test: true`); a webhook body carries ' +
          '`"test": true`; a MongoDB sink gets the document and then its removal. A failed test is dead without a ' +
          'dead letter.',
        requestBody: {
          required: false,
          ...json(ref('TestEventRequest'), { eventType: 'inventory.level.changed' }),
        },
      },
    ),
  },
  '/subscriptions/{subscriptionId}/retry-requests/{requestId}': {
    get: deliveries.read(
      'A retry request or test event, and what came of it',
      'getRetryRequest',
      [SUB, pathId('requestId', 'rtr', 'retry request')],
      ok('The request.', ref('RetryRequest')),
    ),
  },
}

/** What a subscription's create sets and its change may change. */
const changeable = {
  name: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' },
  eventTypes: { type: 'array', items: eventType, minItems: 1, maxItems: 50, uniqueItems: true },
  filter: ref('RowFilter'),
  fields: { type: 'array', items: fieldPath, minItems: 1, maxItems: 500, uniqueItems: true },
  schemaVersions: { type: 'object', propertyNames: eventType, additionalProperties: { type: 'integer', minimum: 1 } },
  sink: ref('Sink'),
  deliveryPolicy: ref('DeliveryPolicy'),
}

export const subscriptionSchemas = {
  // the sink types' config schemas (consumers/plugins.ts), then Sink, the choice of one
  ...Object.fromEntries(SINK_TYPES.map((t) => [SINK_PLUGINS[t].schemaName, SINK_PLUGINS[t].schema])),
  Sink: {
    oneOf: SINK_TYPES.map((t) => ref(SINK_PLUGINS[t].schemaName)),
    discriminator: {
      propertyName: 'type',
      mapping: Object.fromEntries(SINK_TYPES.map((t) => [t, `#/components/schemas/${SINK_PLUGINS[t].schemaName}`])),
    },
  },
  DeliveryPolicy: {
    type: 'object',
    additionalProperties: false,
    properties: {
      retrySchedule: {
        type: 'array',
        items: { type: 'integer', minimum: 0, maximum: 7 * 24 * 3600 },
        maxItems: 50,
        description: 'Seconds before each retry.',
      },
      timeoutMs: { type: 'integer', minimum: 100, maximum: 120000 },
      rateLimitPerSecond: { type: 'integer', minimum: 0, maximum: 100000, description: '0: unlimited.' },
      batchSize: {
        type: 'integer',
        minimum: 1,
        maximum: 1000,
        description: 'Events per request for sinks that batch (REST); 1: one event per request.',
      },
      disableAfterFailingSeconds: { type: 'integer', minimum: 60 },
      concurrency: {
        type: 'integer',
        minimum: 1,
        maximum: 256,
        description:
          'Keys delivered at the same time (each key stays in order); a batching REST ' +
          'sink keeps at least batchSize keys in flight. Absent: the platform default ' +
          '(DELIVERY_CONCURRENCY, 32). Lower it for an endpoint that cannot take ' +
          'parallel requests.',
      },
      freshnessSloSeconds: {
        type: 'integer',
        minimum: 1,
        maximum: 30 * 24 * 3600,
        description:
          'Freshness objective: the connector status shows a breach (freshnessBreachedSince) while the ' +
          'oldest record not yet delivered is older than this many seconds. Absent: no objective.',
      },
      collapseBacklog: {
        type: 'boolean',
        description:
          'State topics only (inventory.levels): when the subscription is resumed with records waiting, ' +
          'it is sent only the latest record of each key among them (a deletion too), in order per key and ' +
          'never older than what it has, then goes on live. Default false: every record.',
      },
    },
  },
  SubscriptionCreate: {
    ...closed(['name', 'eventTypes', 'sink'], {
      partnerId: { ...id('org'), description: 'Required with an admin key; a partner key subscribes for itself.' },
      ...changeable,
      schemaVersions: { ...changeable.schemaVersions, description: 'Pinned reader schema version per event type.' },
      startFrom: { type: 'string', enum: ['latest', 'earliest', 'snapshot'], default: 'latest' },
    }),
    // a backlog collapses only on state topics (control-plane/subscriptions.ts, checkCollapse): said here too, so
    // that what the document admits is what the API takes
    if: {
      required: ['eventTypes', 'deliveryPolicy'],
      properties: {
        eventTypes: { contains: { enum: EVENT_TOPIC_TYPES } },
        deliveryPolicy: { required: ['collapseBacklog'], properties: { collapseBacklog: { const: true } } },
      },
    },
    then: { properties: { deliveryPolicy: { properties: { collapseBacklog: false } } } },
  },
  SubscriptionPatch: { type: 'object', additionalProperties: false, minProperties: 1, properties: changeable },
  WebhookSecretInfo: object(['id', 'createdAt', 'expiresAt'], {
    id: id('whs'),
    createdAt: dateTime,
    expiresAt: nullableDateTime,
  }),
  Subscription: {
    type: 'object',
    description:
      "A publisher sees of its partners' subscriptions (to event types they " +
      "accepted from it) the name, event types, pinned versions and the sink's type " +
      'only: no sink configuration, filter, fields, delivery policy or secrets.',
    required: [
      'id',
      'partnerId',
      'name',
      'eventTypes',
      'schemaVersions',
      'sink',
      'startFrom',
      'createdAt',
      'updatedAt',
    ],
    properties: {
      id: id('sub'),
      partnerId: id('org'),
      name: { type: 'string' },
      eventTypes: { type: 'array', items: { type: 'string' } },
      filter: ref('RowFilter'),
      fields: { type: 'array', items: { type: 'string' } },
      schemaVersions: { type: 'object' },
      schemaIssues: {
        type: 'array',
        description:
          "Writer schemas registered although this subscription's pinned reader cannot " +
          'read them (schemaRegistry.pinnedReaderPolicy=flag): re-pin or expect those ' +
          'records in the dead letters.',
        items: {
          type: 'object',
          properties: {
            subject: { type: 'string' },
            version: { type: 'integer' },
            eventType: { type: 'string' },
            pinnedVersion: { type: 'integer' },
            fields: { type: 'array', items: { type: 'string' } },
            at: dateTime,
          },
        },
      },
      sink: {
        type: 'object',
        description: 'The sink without its secret fields; `secretsSet` lists those that are set.',
      },
      deliveryPolicy: {
        allOf: [ref('DeliveryPolicy')],
        description:
          'What the subscription set itself. Every field it did not set follows the ' +
          "platform's default at delivery time (DELIVERY_RETRY_SCHEDULE, " +
          'WEBHOOK_TIMEOUT_MS, DELIVERY_CONCURRENCY, DELIVERY_DISABLE_AFTER_MS), so a ' +
          'changed default reaches it.',
      },
      effectiveDeliveryPolicy: {
        allOf: [ref('DeliveryPolicy')],
        description: "What applies to its deliveries now: its own values over the platform's defaults.",
      },
      startFrom: { type: 'string' },
      webhookSecrets: {
        type: 'array',
        items: ref('WebhookSecretInfo'),
        description: 'Metadata only; the secret is shown once.',
      },
      createdAt: dateTime,
      updatedAt: dateTime,
    },
  },
  SubscriptionCreated: {
    allOf: [
      ref('Subscription'),
      {
        type: 'object',
        properties: {
          webhookSecret: { type: 'string', description: 'whsec_...: shown only in the answer that creates it.' },
        },
      },
    ],
  },
  Delivery: object(
    [
      'id',
      'subscriptionId',
      'eventId',
      'eventType',
      'key',
      'status',
      'attemptCount',
      'attempts',
      'createdAt',
      'updatedAt',
    ],
    {
      id: id('dlv'),
      subscriptionId: id('sub'),
      eventId: { type: 'string' },
      eventType: { type: 'string' },
      key: { type: 'string' },
      status: { type: 'string', enum: ['pending', 'retrying', 'delivered', 'dead'] },
      attemptCount: { type: 'integer' },
      attempts: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            at: dateTime,
            durationMs: {
              type: 'number',
              minimum: 0,
              description: 'How long the attempt took, in milliseconds (to 0.1).',
            },
            statusCode: { type: ['integer', 'null'] },
            error: { type: ['string', 'null'] },
            responseExcerpt: { type: ['string', 'null'] },
          },
        },
      },
      source: { type: ['object', 'null'] },
      createdAt: dateTime,
      updatedAt: dateTime,
      deliveredAt: nullableDateTime,
      deadAt: nullableDateTime,
      deadReason: { type: ['string', 'null'] },
      retryRequestedAt: nullableDateTime,
      test: { type: 'boolean', description: 'A test event (POST /v1/subscriptions/{id}/test), not a record read.' },
    },
  ),
  RetryRequest: object(['id', 'subscriptionId', 'kind', 'status', 'requestedAt'], {
    id: id('rtr'),
    subscriptionId: id('sub'),
    kind: {
      type: 'string',
      enum: ['event', 'dead-letters', 'test'],
      description: 'event: one dead letter again; dead-letters: every one; test: a test event.',
    },
    eventId: { type: ['string', 'null'], description: 'The event (of a test: its id in the delivery log).' },
    eventType: { type: ['string', 'null'], description: 'The event type of a test event.' },
    status: { type: 'string', enum: ['pending', 'done'] },
    requestedAt: dateTime,
    completedAt: nullableDateTime,
    outcome: { type: ['string', 'null'], description: 'What came of it, once done.' },
    progress: {
      type: ['object', 'null'],
      additionalProperties: false,
      required: ['taken', 'redelivered', 'superseded', 'failed'],
      properties: {
        taken: { type: 'integer', minimum: 0, description: 'Dead letters taken so far (a page at a time).' },
        redelivered: { type: 'integer', minimum: 0, description: 'Of them, delivered again.' },
        superseded: {
          type: 'integer',
          minimum: 0,
          description: 'Of them, not sent: a later event of the same key was delivered since.',
        },
        failed: { type: 'integer', minimum: 0, description: 'Of them, failed again.' },
      },
      description:
        'A retry of every dead letter (kind dead-letters): how far it went, page by page, while pending and ' +
        'once done; null for the other kinds and before its first page is done.',
    },
  }),
  TestEventRequest: {
    type: 'object',
    additionalProperties: false,
    properties: { eventType: { ...eventType, description: "One of the subscription's event types." } },
  },
}
