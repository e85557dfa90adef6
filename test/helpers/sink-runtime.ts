/**
 * A sink runtime harness for integration tests: a control plane in a database of its own, a schema
 * registry over its own log topic, a topic of its own (never the production names: others run tests
 * on the same broker), a producer of inventory levels, and sink workers in-process or as child
 * processes (for kill -9).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { IHeaders, Producer } from 'kafkajs'
import type { Db, MongoClient } from 'mongodb'
import { createLogger, type Logger } from '../../common/logger.ts'
import { Metrics } from '../../common/metrics.ts'
import { createSecretBox, generateKeyRingEntry, parseKeyRing } from '../../common/secret-box.ts'
import { createUrlGuard } from '../../common/url-guard.ts'
import { deliveryDefaults, type DeliveryDefaults } from '../../connectors/sink/settings.ts'
import { SinkWorker, type SinkFactory, type SinkWorkerSettings } from '../../connectors/sink/worker.ts'
import { WebhookClient, webhookSinkFactory } from '../../consumers/webhook/index.ts'
import {
  MappingSandbox,
  OAuth2TokenCache,
  restSinkFactory,
  type MappingSandboxSettings,
} from '../../consumers/rest/index.ts'
import { sinkFactoryByType } from '../../consumers/index.ts'
import { ControlPlane } from '../../control-plane/service.ts'
import type { Principal, SubscriptionInput } from '../../control-plane/index.ts'
import {
  AvroSerde,
  RegistryClient,
  ensureTopics,
  envelope,
  HEADER,
  registerTopicSchemas,
  toHeaders,
  valueSubject,
  keySubject,
  TOPICS,
  type TopicSpec,
} from '../../schemas/index.ts'
import { testConfig, testKafka, testMongo, uniqueName, dropDatabaseLater } from './env.ts'
import { deleteTopics, startTestRegistry } from './registry.ts'
import type { RegistryServer } from '../../schemas/registry/index.ts'

export const ADMIN: Principal = { keyId: 'test-admin', scope: 'admin', organizationId: null }

export interface Level {
  sku: string
  seq: number
}

export interface SinkHarness {
  dbName: string
  db: Db
  mongo: MongoClient
  cp: ControlPlane
  serde: AvroSerde
  registryUrl: string
  /** The harness's built-in registry (e.g. to install a register hook). */
  registry: RegistryServer
  encryptionKeys: string
  topic: TopicSpec
  healthTopic: TopicSpec | undefined
  deadLetterTopic: string
  groupId: string
  publisherId: string
  partnerId: string
  producer: Producer
  logger: Logger
  /** The mapping sandbox of this harness's in-process workers' REST sinks. */
  mappings: MappingSandbox
  /** The metrics every in-process worker of this harness reports to. */
  metrics: Metrics
  /** Produces levels (key = sku); returns the event ids in order. */
  produce(levels: Level[]): Promise<string[]>
  /** Produces a raw message (e.g. poison) with a valid envelope. */
  produceRaw(key: Buffer, value: Buffer, headers?: Record<string, string>): Promise<void>
  /** Produces tombstones (the key, a null value, a valid envelope) for these skus; returns the event ids. */
  produceTombstones(skus: string[]): Promise<string[]>
  subscribe(input: Partial<SubscriptionInput> & { url: string; name: string }): Promise<{ id: string; secret: string }>
  /**
   * A worker in this process; `createSink` replaces the webhook sink factory (e.g. another sink type);
   * `store`: its control plane and database on another client of the harness database (e.g. through a proxy).
   */
  worker(
    settings?: Partial<SinkWorkerSettings>,
    defaults?: Partial<DeliveryDefaults>,
    createSink?: SinkFactory,
    store?: { cp: ControlPlane; db: Db },
  ): Promise<SinkWorker>
  /** A control plane over `db` (the harness database through another client) with the harness's secrets key. */
  controlPlane(db: Db): Promise<ControlPlane>
  /** A worker in a child process (killable with SIGKILL). */
  childWorker(workerId: string, settings?: Partial<SinkWorkerSettings>): Promise<ChildProcess>
  close(): Promise<void>
}

/**
 * An inventory.level.changed message of the harness topic, as its producer sends it (also used by
 * producer processes of the benchmarks): key sku + WH1, the level's seq as onHand, available and
 * sequence, the envelope headers.
 */
export function levelMessage(
  serde: AvroSerde,
  ids: { keyId: number; valueId: number },
  topicName: string,
  publisherId: string,
  l: Level,
): { key: Buffer; value: Buffer; headers: IHeaders } {
  const env = envelope({
    type: 'inventory.level.changed',
    source: '/test',
    schemaSubject: valueSubject(topicName),
    schemaVersion: 1,
  })
  return {
    key: serde.encodeSync(ids.keyId, { manufacturerId: publisherId, sku: l.sku, locationId: 'WH1' }),
    value: serde.encodeSync(ids.valueId, {
      manufacturerId: publisherId, // ties the record to the harness grant (publisher -> partner)
      sku: l.sku,
      gtin: null,
      locationId: 'WH1',
      locationType: 'WAREHOUSE',
      unitOfMeasure: 'EA',
      onHand: l.seq,
      reserved: 0,
      available: l.seq,
      incoming: [],
      safetyStock: null,
      sequence: l.seq,
      occurredAt: Date.now(),
    }),
    headers: { ...toHeaders(env), [HEADER.publisherId]: publisherId }, // stamped, as the platform's producers do
  }
}

export const FAST: Partial<SinkWorkerSettings> = {
  leaseTtlMs: 3000,
  heartbeatMs: 500,
  pollMs: 300,
  cursorFlushMs: 300,
  statusIntervalMs: 1000,
}

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, '../..')

export async function startSinkHarness(
  options: {
    partitions?: number
    quiet?: boolean
    mappingSandbox?: Partial<MappingSandboxSettings>
    partnerTopicPrefix?: string
    /** A subscriptions.health topic of its own, which the workers write freshness objective events to. */
    healthTopic?: boolean
  } = {},
): Promise<SinkHarness> {
  const logger = createLogger({ level: process.env.LOG_LEVEL === 'debug' ? 'debug' : 'error' })
  const dbName = uniqueName('sink').slice(0, 50)
  const mongo = testMongo()
  await mongo.connect()
  const db = mongo.db(dbName)
  const encryptionKeys = generateKeyRingEntry('t1')
  const controlPlane = async (on: Db) => {
    const c = new ControlPlane({
      db: on,
      box: createSecretBox(parseKeyRing(encryptionKeys)),
      urlGuard: createUrlGuard({ allowlist: '127.0.0.1' }),
      logger,
      bootstrapKey: '',
      apiKeyCacheMs: 1000,
      idempotencyTtlSeconds: 60,
      // kafka-topic subscriptions (partner topics) when asked for
      ...(options.partnerTopicPrefix !== undefined
        ? { partnerKafka: { topicPrefix: options.partnerTopicPrefix } }
        : {}),
    })
    await c.init()
    return c
  }
  const cp = await controlPlane(db)
  const registry = await startTestRegistry()
  const serde = new AvroSerde(new RegistryClient({ url: registry.url }))
  const topic: TopicSpec = {
    name: uniqueName('levels'),
    partitions: options.partitions ?? 3,
    cleanupPolicy: 'delete',
    config: {},
    key: 'manufacturerId + sku + locationId',
    writtenBy: 'publishers',
    keySchema: 'inventory-level-key',
    valueSchema: 'inventory-level',
    eventTypes: ['inventory.level.changed'],
  }
  const deadLetterTopic = uniqueName('dead-letters')
  const kafka = testKafka()
  const admin = kafka.admin()
  await admin.connect()
  const healthTopic: TopicSpec | undefined = options.healthTopic
    ? { ...TOPICS.subscriptionHealth, name: uniqueName('health') }
    : undefined
  const topics = healthTopic ? [topic, healthTopic] : [topic]
  await ensureTopics(admin, topics)
  await admin.disconnect()
  const ids = await registerTopicSchemas(serde, topics)
  const { keyId, valueId } = ids[topic.name]!
  const producer = kafka.producer()
  await producer.connect()
  const publisher = await cp.createOrganization(ADMIN, { kind: 'publisher', name: 'P', slug: uniqueName('p') })
  const partner = await cp.createOrganization(ADMIN, { kind: 'partner', name: 'A', slug: uniqueName('a') })
  const grant = await cp.createGrant(ADMIN, {
    publisherId: publisher._id,
    partnerId: partner._id,
    entitlements: [{ eventType: 'inventory.level.changed' }],
  })
  await cp.acceptGrant(ADMIN, grant._id) // the partner's side of the relationship
  const workers: SinkWorker[] = []
  const children: ChildProcess[] = []
  const clients: WebhookClient[] = []
  // one per harness, shared by its in-process workers' REST sinks (as a platform process shares one)
  const mappings = new MappingSandbox(options.mappingSandbox, logger)
  const groupId = uniqueName('sinks')

  const h: SinkHarness = {
    metrics: new Metrics({ processMetrics: false }),
    mappings,
    dbName,
    db,
    mongo,
    cp,
    serde,
    registryUrl: registry.url,
    registry,
    encryptionKeys,
    topic,
    healthTopic,
    deadLetterTopic,
    groupId,
    publisherId: publisher._id,
    partnerId: partner._id,
    producer,
    logger,
    async produce(levels) {
      const messages = levels.map((l) => levelMessage(serde, { keyId, valueId }, topic.name, publisher._id, l))
      await producer.send({ topic: topic.name, messages })
      return messages.map((m) => String(m.headers[HEADER.id]))
    },
    async produceRaw(key, value, headers) {
      const env = envelope({
        type: 'inventory.level.changed',
        source: '/test',
        schemaSubject: valueSubject(topic.name),
        schemaVersion: 1,
      })
      await producer.send({
        topic: topic.name,
        messages: [{ key, value, headers: { ...toHeaders(env), ...(headers ?? {}) } }],
      })
    },
    async produceTombstones(skus) {
      const out: string[] = []
      const messages = skus.map((sku) => {
        const env = envelope({
          type: 'inventory.level.changed',
          source: '/test',
          schemaSubject: valueSubject(topic.name),
          schemaVersion: 1,
        })
        out.push(env.id)
        // a tombstone has no payload: its publisher is named by the header, as the source runner stamps it
        return {
          key: serde.encodeSync(keyId, { manufacturerId: publisher._id, sku, locationId: 'WH1' }),
          value: null,
          headers: { ...toHeaders(env), [HEADER.publisherId]: publisher._id },
        }
      })
      await producer.send({ topic: topic.name, messages })
      return out
    },
    async subscribe(input) {
      const { url, ...rest } = input
      const r = await cp.createSubscription(ADMIN, {
        partnerId: partner._id,
        eventTypes: ['inventory.level.changed'],
        sink: { type: 'webhook', url },
        deliveryPolicy: { retrySchedule: [0.05, 0.1, 0.2], timeoutMs: 2000 },
        ...rest,
      })
      return { id: r.subscription._id, secret: r.webhookSecret! }
    },
    controlPlane,
    async worker(settings = {}, defaults = {}, createSink, store) {
      const client = new WebhookClient({ guard: createUrlGuard({ allowlist: '127.0.0.1' }) })
      clients.push(client)
      const w = new SinkWorker({
        kafka: testKafka(),
        controlPlane: store?.cp ?? cp,
        db: store?.db ?? db,
        serde,
        topics,
        createSink:
          createSink ??
          sinkFactoryByType({
            webhook: webhookSinkFactory(client, store?.cp ?? cp, 2000),
            rest: restSinkFactory(client, new OAuth2TokenCache(client), mappings, store?.cp ?? cp, 2000),
          }),
        defaults: { ...deliveryDefaults(testConfig()), ...defaults },
        logger,
        settings: { groupId, deadLetterTopic, ...FAST, ...settings },
        metrics: h.metrics,
      })
      await w.start()
      workers.push(w)
      return w
    },
    async childWorker(workerId, settings = {}) {
      const args = JSON.stringify({
        dbName,
        registryUrl: registry.url,
        encryptionKeys,
        topic,
        settings: { groupId, deadLetterTopic, workerId, ...FAST, ...settings },
      })
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'worker-child.ts'), args], {
        cwd: root,
        env: process.env,
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      children.push(child)
      let err = ''
      child.stderr!.on('data', (d: Buffer) => {
        err += d.toString()
        if (process.env.DEBUG_CHILD) process.stderr.write(`[${workerId}] ${d.toString()}`)
      })
      await new Promise<void>((resolve, reject) => {
        let out = ''
        child.stdout!.on('data', (d: Buffer) => {
          out += d.toString()
          if (out.includes('worker-ready')) resolve()
        })
        child.once('exit', (code) => reject(new Error(`worker child exited with ${code}: ${err}`)))
      })
      return child
    },
    async close() {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
      await Promise.allSettled(workers.map((w) => w.stop()))
      await Promise.allSettled(clients.map((c) => c.close()))
      await mappings.close()
      await producer.disconnect()
      await registry.close()
      await deleteTopics(topic.name, deadLetterTopic, registry.topic)
      dropDatabaseLater(dbName)
      await mongo.close()
    },
  }
  void keySubject
  return h
}
