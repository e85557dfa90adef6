/** Shared set-up of the source benchmarks: an in-memory registry on port 0, Kafka from the config, a bench topic. */
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomUUID } from 'node:crypto'
import type { Admin, Kafka, Message } from 'kafkajs'
import { createKafka } from '../common/kafka/index.ts'
import { createLogger } from '../common/logger.ts'
import { loadConfig, type AppConfig } from '../config/index.ts'
import { createRegistryApp, MemorySchemaLog, SchemaRegistryService } from '../schemas/registry/index.ts'
import { AvroSerde, RegistryClient } from '../schemas/serde/index.ts'
import { contractSchema } from '../schemas/contracts.ts'
import { HEADER, envelopeHeaders, newTraceparent, uuidv7 } from '../schemas/headers.ts'
import { TOPICS, keySubject, topicConfig, valueSubject, type TopicSpec } from '../schemas/topics.ts'
import { inventoryEvent } from './serde.bench.ts'

export interface BenchEnv {
  config: AppConfig
  kafka: Kafka
  admin: Admin
  serde: AvroSerde
  /** The in-memory registry the serde uses (for benchmark child processes). */
  registryUrl: string
  topic: TopicSpec
  close(): Promise<void>
}

/**
 * `topic` overrides the bench topic's shape (e.g. its partition count); by default it is shaped as inventory.levels.
 */
export async function benchEnv(what: string, topic: Partial<Omit<TopicSpec, 'name'>> = {}): Promise<BenchEnv> {
  const config = loadConfig()
  const logger = createLogger({ level: 'error' })
  const app = createRegistryApp(new SchemaRegistryService(new MemorySchemaLog()), logger)
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s))
  })
  const registryUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const serde = new AvroSerde(new RegistryClient({ url: registryUrl }))
  const kafka = createKafka(config, undefined, `bench-${what}`)
  const admin = kafka.admin()
  await admin.connect()
  const spec: TopicSpec = { ...TOPICS.inventoryLevels, ...topic, name: `bench-${what}-${randomUUID()}` }
  await admin.createTopics({ topics: [topicConfig(spec)], waitForLeaders: false })
  for (let i = 0; i < 300; i++) {
    const meta = await admin.fetchTopicMetadata({ topics: [spec.name] }).catch(() => undefined)
    const t = meta?.topics[0]
    if (t && t.partitions.length === spec.partitions && t.partitions.every((p) => p.leader >= 0)) break
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    config,
    kafka,
    admin,
    serde,
    registryUrl,
    topic: spec,
    async close() {
      await admin.deleteTopics({ topics: [spec.name] }).catch(() => undefined)
      await admin.disconnect()
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    },
  }
}

/** Peak RSS (MB) sampled while `op` runs. */
export async function withPeakRss<T>(op: () => Promise<T>): Promise<{ result: T; peakMb: number }> {
  // memoryUsage.rss() reads the RSS alone (memoryUsage() walks the heap spaces too, 50 times a second here)
  let peak = process.memoryUsage.rss()
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20)
  try {
    const result = await op()
    peak = Math.max(peak, process.memoryUsage.rss())
    return { result, peakMb: peak / 1024 / 1024 }
  } finally {
    clearInterval(timer)
  }
}

/**
 * `n` inventory events as the ingest benchmarks post them (97 SKUs at 7 locations, so keys spread over the partitions).
 */
export function inventoryEvents(n: number) {
  return Array.from({ length: n }, (_, i) => ({
    ...inventoryEvent,
    sku: `SKU-${i % 97}`,
    locationId: `LOC-${i % 7}`,
    sequence: i,
  }))
}

/**
 * The records the HTTP ingest produces for these events, built before any clock starts: Avro key and
 * value in the Confluent wire format (the contracts registered under the bench topic's subjects), and
 * `withHeaders` the same with the ten headers the ingest puts on every event (the CloudEvents/traceparent
 * envelope with its own id and time, one traceparent per batch, the publisher). `source` is the
 * ingest's ce_source (its runner's `source`).
 */
export async function inventoryRecords(
  env: BenchEnv,
  events: ReturnType<typeof inventoryEvents>,
  source = '/sources/http-ingest',
): Promise<{ plain: Message[]; withHeaders: Message[] }> {
  const keyId = await env.serde.register(keySubject(env.topic.name), contractSchema('inventory-level-key'))
  const subject = valueSubject(env.topic.name)
  const valueSchema = contractSchema('inventory-level')
  const valueId = await env.serde.register(subject, valueSchema)
  const { version } = await env.serde.client.lookup(subject, valueSchema)
  const plain = events.map((e) => ({
    key: env.serde.encodeSync(keyId, { manufacturerId: e.manufacturerId, sku: e.sku, locationId: e.locationId }),
    value: env.serde.encodeSync(valueId, e),
  }))
  const traceparent = newTraceparent()
  const withHeaders = events.map((e, i) => ({
    ...plain[i]!,
    headers: {
      ...envelopeHeaders(
        uuidv7(),
        'inventory.level.changed',
        source,
        new Date(e.occurredAt),
        subject,
        version,
        traceparent,
      ),
      [HEADER.publisherId]: e.manufacturerId,
    },
  }))
  return { plain, withHeaders }
}
