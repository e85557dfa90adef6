/**
 * The management API contract: one OpenAPI 3.1 document, served at /v1/openapi.json, used to
 * validate every request, and checked by the tests against the routes express actually serves.
 * Every request body carries an example that is valid against its schema (the tests use them).
 */
import { PARTNER_PROFILE_EXAMPLE } from '../../schemas/examples.ts'
import { eventSchemas, ingestionPaths } from './events.ts'
import {
  displayName,
  body,
  closed,
  dateTime,
  eventType,
  fieldPath,
  headerComponents,
  id,
  IDEMPOTENCY,
  mutation,
  nullableDateTime,
  object,
  ok,
  operationsOf,
  pathId,
  problems,
  query,
  RATE_LIMIT_HEADERS,
  ref,
  RETRY_AFTER,
  rotation,
} from './parts.ts'
import { sourcePaths, sourceSchemas, sourceTag } from './sources.ts'
import { connectorPaths, connectorSchemas } from './connectors.ts'
import { dealPaths, dealSchemas, dealTags } from './deals.ts'
import { inboundPaths, inboundSchemas } from './inbound.ts'
import { subscriptionPaths, subscriptionSchemas } from './subscriptions.ts'

const ORG = pathId('organizationId', 'org', 'organization')
const KEY = pathId('keyId', 'key', 'API key')
const GRANT = pathId('grantId', 'grt', 'grant')
const ORGANIZATION_EXAMPLE = {
  kind: 'partner',
  name: 'Northwind Distribution',
  slug: 'northwind',
  profile: PARTNER_PROFILE_EXAMPLE,
}
const GRANT_EXAMPLE = {
  partnerId: 'org_65f000000000000000000001',
  entitlements: [
    {
      eventType: 'inventory.level.changed',
      filter: { region: { in: ['EU'] } },
      fields: ['sku', 'available', 'warehouse'],
    },
  ],
}
/** A read that may also answer 403: the partner's own and the admin's, though a publisher sees the partner. */
const forbiddenToo = <T extends { responses: Record<string, unknown> }>(op: T): T => ({
  ...op,
  responses: { ...op.responses, ...problems(403) },
})
const organizations = operationsOf('organizations')
const kafkaAccess = operationsOf('kafka-access')
const apiKeys = operationsOf('api-keys')
const grants = operationsOf('grants')

const PROFILE_DOC =
  "A publisher's profile is free-form. A partner's profile is the " +
  'partner-profile contract (PartnerProfileEvent without partnerId, sequence ' +
  ('and occurredAt, which the platform sets): a field outside the contract or a ' +
    'wrong value is refused with 422 naming `profile.<field>`; ') +
  ('legalName defaults to the name, partnerType and tier to OTHER, status to ' +
    'UNKNOWN, headquartersCountry to ZZ (unknown). Every create ') +
  ('or change of a partner publishes a partner.profile.changed event (the full ' +
    'profile) to partners.profiles, keyed by the partner id.')

export const openApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'Distributary management API',
    version: '1.0.0',
    summary: 'Partners, API keys, grants, subscriptions, connectors, deliveries and source connectors.',
    description:
      'Every route but /openapi.json and /asyncapi.json needs `Authorization: ' +
      'Bearer <API key>`. Admin keys see everything; a publisher key sees its ' +
      'grants and ' +
      ('the subscriptions of partners to its event types; a partner key sees and ' +
        'changes only its own subscriptions, deliveries and keys. ') +
      ('Ids of other organizations answer 404. Errors are RFC 9457 problem+json ' +
        'naming the field at fault. Lists page with `cursor`. ') +
      ('Creates accept an `Idempotency-Key`. Keys and webhook secrets are shown ' +
        'once, in the answer that creates them. ') +
      'Each key has a rate limit (a token bucket; every answer carries the RateLimit and RateLimit-Policy fields of ' +
      ('draft-ietf-httpapi-ratelimit-headers-11, e.g. `RateLimit-Policy: ' +
        '"management";q=20;w=1`); failed keys are limited per client address ') +
      ('and per key prefix before they are checked (`"key-attempts"`). Over a limit: ' +
        '429 with Retry-After; a key this process has not ') +
      'verified yet while too many verifications wait: 503 with Retry-After.',
    license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
  },
  servers: [{ url: '/v1' }],
  security: [{ apiKey: [] }],
  tags: [
    {
      name: 'organizations',
      description: 'Publishers (manufacturers, vendors) and partners (distributors, resellers, MSPs).',
    },
    { name: 'api-keys', description: 'Shown once, stored as a slow hash, revocable, rotatable with an overlap.' },
    {
      name: 'grants',
      description: 'What a publisher lets a partner receive: event types, row filter, field projection.',
    },
    { name: 'subscriptions', description: "A partner's sink connector, bounded by its grants." },
    {
      name: 'kafka-access',
      description:
        "A partner's own Kafka topics (kafka-topic subscriptions): SCRAM credentials, ACLs, connection settings.",
    },
    { name: 'deliveries', description: 'The delivery log, dead letters and retry requests.' },
    { name: 'connectors', description: "Kafka Connect style control of each subscription's connector." },
    sourceTag,
    ...dealTags,
    { name: 'maintenance', description: 'Operator tasks.' },
    {
      name: 'events',
      description: "Event ingestion over HTTP (publisher keys): each event type's body follows its Avro contract.",
    },
  ],
  paths: {
    '/openapi.json': {
      get: {
        summary: 'This document',
        tags: ['maintenance'],
        operationId: 'getOpenApiDocument',
        security: [],
        responses: { '200': ok('The OpenAPI document.', { type: 'object' }) },
      },
    },
    '/asyncapi.json': {
      get: {
        summary: 'The event catalog (AsyncAPI 3.0)',
        description:
          'Every Kafka topic with its Avro contracts, CloudEvents headers and examples, ' +
          'and the signed webhook a partner receives; generated from the contracts ' +
          '(docs/event-catalog.md is the same, as a page).',
        tags: ['maintenance'],
        operationId: 'getAsyncApiDocument',
        security: [],
        responses: { '200': ok('The AsyncAPI document.', { type: 'object' }) },
      },
    },
    ...organizations.collection('Organization', ORG, {
      list: {
        summary: 'List organizations',
        filters: [query('kind', { type: 'string', enum: ['publisher', 'partner'] }, 'Only this kind.')],
      },
      create: { summary: 'Create an organization (admin)', example: ORGANIZATION_EXAMPLE },
      get: { summary: 'Get an organization' },
      update: { summary: "Change an organization's name or profile", example: { name: 'Northwind Distribution GmbH' } },
    }),
    '/organizations/{organizationId}/kafka-access': {
      get: forbiddenToo(
        kafkaAccess.one(
          "A partner's Kafka connection settings: bootstrap servers, SASL mechanism, " +
            'its user name, its topics and the registry (docs/partner-topics.md)',
          'getKafkaAccess',
          ORG,
          "What the partner's Kafka client needs (the password is shown only when credentials are issued).",
          'KafkaAccess',
        ),
      ),
    },
    '/organizations/{organizationId}/kafka-access/credentials': {
      post: kafkaAccess.mutation(
        "Issue the partner's Kafka credentials (SCRAM-SHA-512), or rotate them: a new " +
          'password, shown once; the old one stops working at once',
        'issueKafkaCredentials',
        [ORG, IDEMPOTENCY],
        { '201': ok('Issued; `password` is shown only now.', ref('KafkaCredentials')) },
      ),
      delete: kafkaAccess.remove(
        "Revoke the partner's Kafka credentials and every ACL of its user",
        'revokeKafkaCredentials',
        ORG,
        'Revoked: the user can no longer authenticate.',
      ),
    },
    ...apiKeys.collection('ApiKey', KEY, {
      list: {
        summary: 'List API keys (never their secrets)',
        answer: 'A page of keys.',
        filters: [
          query('organizationId', id('org'), 'Only keys of this organization.'),
          query('prefix', { type: 'string', pattern: '^dk_[0-9a-f]{12}$' }, 'The key with this prefix.'),
        ],
      },
      create: {
        summary: 'Create an API key (shown once)',
        answer: 'Created; `key` is shown only now.',
        schema: 'ApiKeyCreated',
        example: { scope: 'partner', name: 'ordering platform' },
      },
      get: { summary: 'Get an API key', answer: 'The key (without its secret).' },
      item: {
        delete: apiKeys.mutation('Revoke an API key (at once)', 'revokeApiKey', [KEY], {
          '200': ok('Revoked.', ref('ApiKey')),
        }),
      },
    }),
    '/api-keys/{keyId}/rotate': {
      post: rotation(
        'Rotate an API key: a new key now, the old one valid for the overlap',
        'api-keys',
        'rotateApiKey',
        KEY,
        ok('The new key, shown only now.', ref('ApiKeyCreated')),
        3600,
      ),
    },
    ...grants.collection('Grant', GRANT, {
      list: {
        summary: 'List grants',
        filters: [
          query('partnerId', id('org'), 'Only grants to this partner.'),
          query('publisherId', id('org'), 'Only grants of this publisher.'),
        ],
      },
      create: { summary: 'Give a partner a grant (publisher or admin)', example: GRANT_EXAMPLE },
      get: { summary: 'Get a grant' },
      update: {
        summary: "Replace a grant's entitlements",
        example: { entitlements: [{ eventType: 'inventory.level.changed', fields: ['sku', 'available'] }] },
      },
      remove: {
        summary: 'End a grant: the publisher revokes it, or the partner declines the offer or revokes its acceptance',
        answer: 'Ended: nothing more is delivered under it.',
      },
    }),
    '/grants/{grantId}/accept': {
      post: grants.update(
        'Accept a grant (the partner it is offered to, or an admin): its event types are delivered from now on',
        'acceptGrant',
        GRANT,
        ok('Accepted (accepting again changes nothing).', ref('Grant')),
        { ...body(ref('GrantAccept'), { version: 1 }), required: false },
      ),
    },
    ...subscriptionPaths,
    ...connectorPaths,
    ...ingestionPaths,
    ...sourcePaths,
    ...dealPaths,
    ...inboundPaths,
    '/maintenance/reencrypt-secrets': {
      post: mutation(
        'Re-encrypt every secret at rest with the current key (admin)',
        'maintenance',
        'reencryptSecrets',
        [],
        {
          '200': ok('How many records were re-encrypted.', {
            type: 'object',
            required: ['reencrypted'],
            properties: { reencrypted: { type: 'integer' } },
          }),
        },
      ),
    },
  },
  components: {
    securitySchemes: {
      apiKey: {
        type: 'http',
        scheme: 'bearer',
        description: 'An API key: `dk_<prefix>.<secret>`, or the bootstrap ADMIN_API_KEY.',
      },
    },
    parameters: {
      Limit: {
        name: 'limit',
        in: 'query',
        required: false,
        description: 'Items per page.',
        schema: { type: 'integer', minimum: 1, maximum: 200, default: 50 },
      },
      Cursor: {
        name: 'cursor',
        in: 'query',
        required: false,
        description: 'The `nextCursor` of the previous page.',
        // what the lists return (base64url): with any string admitted, one with a reserved character was refused by
        // the parser for not being percent-encoded, and any other by the list, neither foretold by the document
        schema: { type: 'string', minLength: 1, maxLength: 300, pattern: '^[A-Za-z0-9_-]+$' },
      },
      IdempotencyKey: {
        name: 'Idempotency-Key',
        in: 'header',
        required: false,
        description: 'Repeat a create safely: the same key with the same body returns the first answer (for 24 h).',
        schema: { type: 'string', minLength: 8, maxLength: 200, pattern: '^[\\x21-\\x7e]+$' },
      },
    },
    responses: Object.fromEntries(
      [
        [400, 'The request does not match the contract; `errors` names each field.'],
        [401, 'No valid API key.'],
        [403, "The key's scope may not do this."],
        [404, 'No such resource, or not visible to this key.'],
        [409, 'Duplicate, or a concurrent change.'],
        [413, 'The body is too large.'],
        [415, 'The body is not JSON: send Content-Type application/json.'],
        [422, 'Well-formed but refused (exceeds a grant, refused URL, unknown reference); `errors` names each field.'],
        [
          429,
          "Rate limit exceeded: the key's, or the failed-attempt limit of the client " +
            'address or key prefix; see Retry-After and RateLimit.',
        ],
        [503, 'API key verification is busy (too many keys waiting to be checked); see Retry-After.'],
      ].map(([code, description]) => [
        `Problem${code}`,
        {
          description,
          ...(code === 429
            ? { headers: { ...RETRY_AFTER, ...RATE_LIMIT_HEADERS } }
            : code === 503
              ? { headers: RETRY_AFTER }
              : {}),
          content: { 'application/problem+json': { schema: ref('Problem') } },
        },
      ]),
    ),
    headers: headerComponents,
    schemas: {
      ...eventSchemas,
      Problem: object(['type', 'title', 'status'], {
        type: { type: 'string' },
        title: { type: 'string' },
        status: { type: 'integer' },
        detail: { type: 'string' },
        errors: {
          type: 'array',
          items: object(['field', 'message'], {
            field: { type: 'string' },
            message: { type: 'string' },
            position: {
              type: 'integer',
              description: 'Character offset of the error within the value (e.g. a JSONata body mapping).',
            },
          }),
        },
      }),
      Organization: {
        type: 'object',
        description:
          'A publisher sees of a partner it has only offered a grant to (`relationship: ' +
          'offered`) its public name alone: id, kind and name.',
        required: ['id', 'kind', 'name'],
        properties: {
          id: id('org'),
          kind: { type: 'string', enum: ['publisher', 'partner'] },
          name: { type: 'string' },
          slug: { type: 'string' },
          profile: { type: 'object' },
          createdAt: dateTime,
          updatedAt: dateTime,
          relationship: {
            type: 'string',
            enum: ['offered', 'active'],
            description: "In a publisher's view of a partner: whether the partner accepted a grant of the publisher.",
          },
        },
      },
      OrganizationCreate: closed(['kind', 'name', 'slug'], {
        kind: { type: 'string', enum: ['publisher', 'partner'] },
        name: displayName(),
        slug: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{1,62}$' },
        profile: { type: 'object', description: PROFILE_DOC },
      }),
      OrganizationPatch: {
        type: 'object',
        additionalProperties: false,
        minProperties: 1,
        properties: {
          name: displayName(),
          profile: { type: 'object', description: PROFILE_DOC },
        },
      },
      ApiKey: object(
        ['id', 'prefix', 'scope', 'organizationId', 'name', 'createdAt', 'expiresAt', 'revokedAt', 'lastUsedAt'],
        {
          id: id('key'),
          prefix: { type: 'string' },
          scope: { type: 'string', enum: ['admin', 'publisher', 'partner'] },
          organizationId: { type: ['string', 'null'] },
          name: { type: 'string' },
          createdAt: dateTime,
          expiresAt: nullableDateTime,
          revokedAt: nullableDateTime,
          lastUsedAt: nullableDateTime,
          rotatedFrom: { type: ['string', 'null'] },
        },
      ),
      ApiKeyCreate: {
        ...closed(['scope', 'name'], {
          scope: { type: 'string', enum: ['admin', 'publisher', 'partner'] },
          organizationId: {
            ...id('org'),
            description: 'Required for publisher and partner keys created with an admin key; never for an admin key.',
          },
          name: displayName(),
        }),
        // an admin key belongs to no organization (was a 422 the document did not foretell)
        if: { properties: { scope: { const: 'admin' } } },
        then: { properties: { organizationId: false } },
      },
      ApiKeyCreated: {
        allOf: [
          ref('ApiKey'),
          object(['key'], { key: { type: 'string', description: 'The API key. Shown only in this answer.' } }),
        ],
      },
      RowFilter: {
        type: 'object',
        description:
          'Every listed field must hold one of the listed values. "$partnerId" stands for the receiving partner.',
        propertyNames: fieldPath,
        additionalProperties: closed(['in'], {
          in: { type: 'array', minItems: 1, maxItems: 1000, items: { type: ['string', 'number', 'boolean'] } },
        }),
      },
      Entitlement: closed(['eventType'], {
        eventType,
        filter: ref('RowFilter'),
        fields: { type: 'array', items: fieldPath, minItems: 1, maxItems: 500, uniqueItems: true },
      }),
      Grant: {
        type: 'object',
        description:
          'A relationship has two sides: a grant is an offer (`offered`) until its ' +
          'partner accepts it, and only accepted event types are delivered. A change ' +
          'that adds event types leaves those pending until the partner accepts again; ' +
          'either side may end the grant (DELETE).',
        required: [
          'id',
          'publisherId',
          'partnerId',
          'entitlements',
          'status',
          'acceptedEventTypes',
          'pendingEventTypes',
          'acceptedAt',
          'version',
          'createdAt',
          'updatedAt',
        ],
        properties: {
          id: id('grt'),
          publisherId: id('org'),
          partnerId: id('org'),
          entitlements: { type: 'array', items: ref('Entitlement') },
          status: {
            type: 'string',
            enum: ['offered', 'active'],
            description: 'offered: waiting for the partner, nothing is delivered; active: accepted.',
          },
          acceptedEventTypes: {
            type: 'array',
            items: { type: 'string' },
            description: 'Event types in force (delivered).',
          },
          pendingEventTypes: {
            type: 'array',
            items: { type: 'string' },
            description: 'Event types offered but not accepted yet.',
          },
          acceptedAt: nullableDateTime,
          version: { type: 'integer', description: 'Increases with every change; accept a version you have read.' },
          createdAt: dateTime,
          updatedAt: dateTime,
        },
      },
      GrantAccept: {
        type: 'object',
        additionalProperties: false,
        properties: {
          version: {
            type: 'integer',
            minimum: 1,
            description: 'Accept only this version of the grant (409 if the publisher changed it since).',
          },
        },
      },
      GrantCreate: closed(['partnerId', 'entitlements'], {
        publisherId: {
          ...id('org'),
          description: 'Required with an admin key; a publisher key grants for its own organization.',
        },
        partnerId: id('org'),
        entitlements: { type: 'array', minItems: 1, maxItems: 100, items: ref('Entitlement') },
      }),
      GrantPatch: closed(['entitlements'], {
        entitlements: { type: 'array', minItems: 1, maxItems: 100, items: ref('Entitlement') },
      }),
      KafkaAccess: closed(
        [
          'bootstrapServers',
          'securityProtocol',
          'saslMechanism',
          'username',
          'credentialsIssuedAt',
          'consumerGroupPrefix',
          'topics',
          'schemaRegistry',
        ],
        {
          bootstrapServers: { type: 'array', items: { type: 'string' }, description: 'bootstrap.servers' },
          securityProtocol: { type: 'string', enum: ['SASL_SSL', 'SASL_PLAINTEXT'], description: 'security.protocol' },
          saslMechanism: { type: 'string', enum: ['SCRAM-SHA-512'], description: 'sasl.mechanism' },
          username: { type: ['string', 'null'], description: 'sasl.username; null until credentials are issued.' },
          credentialsIssuedAt: nullableDateTime,
          consumerGroupPrefix: { type: 'string', description: 'group.id must start with it.' },
          topics: {
            type: 'array',
            items: closed(
              ['topic', 'subscriptionId', 'sourceTopic', 'eventTypes', 'readable', 'valueSubject', 'keySubject'],
              {
                topic: { type: 'string' },
                subscriptionId: { type: 'string' },
                sourceTopic: { type: 'string' },
                eventTypes: { type: 'array', items: { type: 'string' } },
                readable: {
                  type: 'boolean',
                  description: 'False while no accepted grant covers the subscription (its ACL is removed).',
                },
                valueSubject: { type: 'string' },
                keySubject: { type: 'string' },
              },
            ),
          },
          schemaRegistry: closed(['url', 'basicAuth'], {
            url: { type: 'string' },
            basicAuth: {
              type: 'string',
              description: 'basic.auth.user.info: the Kafka user name and password, or an API key.',
            },
          }),
        },
      ),
      KafkaCredentials: closed(['username', 'password', 'saslMechanism', 'rotated', 'issuedAt'], {
        username: { type: 'string' },
        password: { type: 'string', description: 'Shown only now; the platform keeps only a check of it.' },
        saslMechanism: { type: 'string', enum: ['SCRAM-SHA-512'] },
        rotated: {
          type: 'boolean',
          description: 'True when this replaced an earlier password (which no longer works).',
        },
        issuedAt: dateTime,
      }),
      ...subscriptionSchemas,
      ...connectorSchemas,
      ...sourceSchemas,
      ...dealSchemas,
      ...inboundSchemas,
    },
  },
} as const

/** A fresh copy (the validator dereferences what it is given). */
export function openApiDocumentCopy(): Record<string, unknown> {
  return structuredClone(openApiDocument) as unknown as Record<string, unknown>
}
