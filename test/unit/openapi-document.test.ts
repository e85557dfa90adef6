import { expect } from 'chai'
import { MongoClient } from 'mongodb'
import { Validator } from '@seriousme/openapi-schema-validator'
import { managementRouter } from '../../api/management/router.ts'
import { openApiDocument } from '../../api/openapi/document.ts'
import { createLogger } from '../../common/logger.ts'
import { createSecretBox, generateKeyRingEntry, parseKeyRing } from '../../common/secret-box.ts'
import { createUrlGuard } from '../../common/url-guard.ts'
import { ControlPlane, INDEXES, QUERY_SHAPES } from '../../control-plane/index.ts'
import { operations } from '../helpers/openapi-ops.ts'
import { Kafka } from 'kafkajs'
import { createHttpIngest } from '../../producers/http-ingest/index.ts'
import { AvroSerde, RegistryClient } from '../../schemas/serde/index.ts'
import { createConverter } from '../../connectors/source/json-avro.ts'
import { contractSchema } from '../../schemas/contracts.ts'
import { ALL_TOPICS, PUBLISHER_TOPICS } from '../../schemas/topics.ts'
import { componentName, EVENT_EXAMPLES } from '../../api/openapi/events.ts'

/** The routes express serves under /v1, as "METHOD /path/{param}". */
function expressRoutes(): string[] {
  // Never connected: building the router does no I/O.
  const client = new MongoClient('mongodb://127.0.0.1:1/')
  const cp = new ControlPlane({
    db: client.db('unused'),
    box: createSecretBox(parseKeyRing(generateKeyRingEntry('u1'))),
    urlGuard: createUrlGuard(),
    logger: createLogger({ write: () => undefined }),
    bootstrapKey: '',
    apiKeyCacheMs: 0,
    idempotencyTtlSeconds: 60,
  })
  const router = managementRouter({
    controlPlane: cp,
    logger: createLogger({ write: () => undefined }),
    bodyLimit: '1kb',
    rateLimit: { perSecond: 1, burst: 1 },
    sourceDropRoot: '/nonexistent/drop',
  })
  // Event ingestion is mounted at the app's root with full /v1 paths (no I/O until it is started).
  const ingest = createHttpIngest({
    kafka: new Kafka({ brokers: ['127.0.0.1:1'] }),
    serde: new AvroSerde(new RegistryClient({ url: 'http://127.0.0.1:1' })),
    logger: createLogger({ write: () => undefined }),
    authenticate: async () => undefined,
  })
  return [...routesOf(router, ''), ...routesOf(ingest.router, '/v1')]
}

function routesOf(router: unknown, strip: string): string[] {
  const out: string[] = []
  for (const layer of (router as { stack: Array<{ route?: { path: string; methods: Record<string, boolean> } }> })
    .stack) {
    if (!layer.route) continue
    const path = layer.route.path.startsWith(strip)
      ? layer.route.path.slice(strip.length)
      : `(outside ${strip}) ${layer.route.path}`
    for (const [m, on] of Object.entries(layer.route.methods)) {
      if (on && m !== '_all') out.push(`${m.toUpperCase()} ${path.replace(/:(\w+)/g, '{$1}')}`)
    }
  }
  return out
}

describe('OpenAPI document', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const v = new Validator()
    const res = await v.validate(structuredClone(openApiDocument) as never)
    expect(res.errors ?? [], JSON.stringify(res.errors, null, 1)).to.deep.equal([])
    expect(res.valid).to.equal(true)
    expect(v.version).to.equal('3.1')
  })

  it('documents every route express serves, and express serves every documented operation', () => {
    const served = expressRoutes().sort()
    const documented = operations('all')
      .map((o) => `${o.method} ${o.path}`)
      .sort()
    expect(served).to.include('POST /events/{eventType}')
    // a one-type contract's own path (/events/inventory.level.changed) is the route /events/:eventType serves
    const single = PUBLISHER_TOPICS.filter((t) => t.eventTypes.length === 1).map(
      (t) => `POST /events/${t.eventTypes[0]}`,
    )
    expect(documented).to.include.members(single)
    expect(
      served.filter((r) => !documented.includes(r)),
      'served but not documented',
    ).to.deep.equal([])
    expect(
      documented.filter((r) => !served.includes(r) && !single.includes(r)),
      'documented but not served',
    ).to.deep.equal([])
    expect(served.length).to.be.greaterThan(30)
  })

  it(
    'documents every ingestible event type with a body schema of its own contract and an example ' +
      'batch valid against it: a one-type contract on its own path, the others on /events/{eventType}',
    () => {
      const paths = openApiDocument.paths as Record<string, any>
      // partner profiles are published by the platform's outbox alone: not offered to publishers (403)
      const types = PUBLISHER_TOPICS.flatMap((t) => t.eventTypes)
      expect(types).to.not.include('partner.profile.changed')
      const documented: string[] = []
      for (const t of PUBLISHER_TOPICS) {
        const single = t.eventTypes.length === 1
        const op = paths[single ? `/events/${t.eventTypes[0]}` : '/events/{eventType}'].post
        if (!single) expect(op.parameters[0].schema.enum, t.name).to.include.members(t.eventTypes)
        else expect(op.parameters.map((p: any) => p.name)).to.not.include('eventType')
        // the body is this contract's events alone
        const items = op.requestBody.content['application/json'].schema.items.anyOf.map((r: any) => r.$ref)
        expect(items, t.name).to.include(`#/components/schemas/${componentName(t.valueSchema)}`)
        if (single) expect(items).to.have.length(1)
        expect(Object.keys(op.responses)).to.include.members(['202', '400', '401', '403', '413', '415', '503'])
        expect(op.parameters.map((p: any) => p.name)).to.include('Idempotency-Key')
        const examples = op.requestBody.content['application/json'].examples
        const conv = createConverter(contractSchema(t.valueSchema))
        for (const type of t.eventTypes) {
          expect(examples[type], type).to.not.equal(undefined)
          for (const event of examples[type].value) expect(conv.convert(event).faults, type).to.deep.equal([])
          documented.push(type)
        }
      }
      expect(documented).to.have.members(types)
      expect(paths['/events/{eventType}'].post.parameters[0].schema.enum).to.not.include('inventory.level.changed')
      expect(Object.keys(EVENT_EXAMPLES)).to.have.members(ALL_TOPICS.flatMap((t) => t.eventTypes))
    },
  )

  it("bounds each event field of Avro long as the ingestion's converter does (±2^53-1, one beyond is refused)", () => {
    const schemas = (openApiDocument.components as any).schemas
    const conv = createConverter(contractSchema('inventory-level'))
    const [example] = (EVENT_EXAMPLES as any)['inventory.level.changed']
    for (const field of ['onHand', 'sequence']) {
      const { minimum, maximum } = schemas.InventoryLevelEvent.properties[field]
      expect([minimum, maximum], field).to.deep.equal([-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER])
      expect(conv.convert({ ...example, [field]: maximum }).faults, field).to.deep.equal([])
      expect(
        conv.convert({ ...example, [field]: maximum + 2 }).faults.map((f) => f.path),
        field,
      ).to.deep.equal([`/${field}`])
    }
  })

  it(
    'pages every list with limit and cursor (422 for a foreign cursor), documents ' +
      '413/415 for every JSON body, and takes an Idempotency-Key on every create',
    () => {
      for (const [path, item] of Object.entries(openApiDocument.paths as Record<string, Record<string, any>>)) {
        for (const [method, o] of Object.entries(item)) {
          const params = (o.parameters ?? []).map((p: any) => p.$ref ?? p.name)
          const answer = o.responses['200']?.content?.['application/json']?.schema
          if (answer?.required?.includes('nextCursor')) {
            expect(params, `${method} ${path}`).to.include.members([
              '#/components/parameters/Limit',
              '#/components/parameters/Cursor',
            ])
            expect(o.responses, `${method} ${path}: a foreign cursor is a 422`).to.have.property('422')
          }
          // A JSON body may be too large or not JSON at all: both answers are documented.
          if (o.requestBody?.content?.['application/json'])
            expect(o.responses, `${method} ${path}`).to.include.keys('413', '415')
          // A create answers 201, or 202 for a request the runtime performs (a retry request), except connector state
          // changes (idempotent by nature).
          const creates =
            o.responses['201'] !== undefined ||
            (method === 'post' && o.responses['202'] !== undefined && o.tags[0] !== 'connectors')
          if (creates)
            expect(
              params.some((p: string) => p === '#/components/parameters/IdempotencyKey' || p === 'Idempotency-Key'),
              `${method} ${path} takes no Idempotency-Key`,
            ).to.equal(true)
        }
      }
    },
  )

  it(
    'documents the rate limits: every authenticated operation answers 429 with ' +
      'Retry-After and the RateLimit fields, ingestion announces them on its 202',
    () => {
      const doc = openApiDocument as any
      const resolved = (r: any) => (r.$ref ? doc.components.responses[r.$ref.split('/').pop()] : r)
      for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
        for (const [method, o] of Object.entries(item)) {
          if (Array.isArray(o.security) && o.security.length === 0) continue // public: no key, no limit
          expect(o.responses, `${method} ${path}`).to.include.keys('429', '503')
          expect(resolved(o.responses['429']).headers, `${method} ${path}`).to.include.keys(
            'Retry-After',
            'RateLimit',
            'RateLimit-Policy',
          )
        }
      }
      const ingest = doc.paths['/events/{eventType}'].post
      expect(ingest.responses['202'].headers).to.include.keys('RateLimit', 'RateLimit-Policy')
    },
  )

  it('gives every operation a unique operationId and every request body an example', () => {
    const ops = operations('all')
    expect(new Set(ops.map((o) => o.operationId)).size).to.equal(ops.length)
    for (const o of ops) if (o.hasBody) expect(o.example, o.operationId).to.not.equal(undefined)
  })
})

describe('control-plane indexes', () => {
  it('serve every declared list query by an index prefix (equality fields, then the sort)', () => {
    for (const [name, shape] of Object.entries(QUERY_SHAPES)) {
      const sort = shape.sort ?? '_id'
      const n = shape.equality.length
      const byIdIndex = (n === 0 && sort === '_id') || (n === 1 && shape.equality[0] === '_id')
      const served =
        byIdIndex ||
        INDEXES[shape.collection].some((ix) => {
          const keys = Object.keys(ix.key as Record<string, number>)
          const head = keys.slice(0, n)
          if (head.length !== n || !shape.equality.every((f) => head.includes(f))) return false
          // Then the sort key; or a unique index on exactly the equality fields (one document at most).
          return keys[n] === sort || (ix.unique === true && keys.length === n)
        })
      expect(served, `${name} has no index`).to.equal(true)
    }
  })
})
