/** Shared set-up of the source benchmarks: an in-memory registry on port 0, Kafka from the config, a bench topic. */
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomUUID } from 'node:crypto'
import type { Admin, Kafka } from 'kafkajs'
import { createKafka } from '../common/clients.ts'
import { createLogger } from '../common/logger.ts'
import { loadConfig, type AppConfig } from '../config/index.ts'
import { createRegistryApp, MemorySchemaLog, SchemaRegistryService } from '../schemas/registry/index.ts'
import { AvroSerde, RegistryClient } from '../schemas/serde/index.ts'
import { TOPICS, topicConfig, type TopicSpec } from '../schemas/topics.ts'

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

export async function benchEnv(what: string): Promise<BenchEnv> {
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
  const topic: TopicSpec = { ...TOPICS.inventoryLevels, name: `bench-${what}-${randomUUID()}` }
  await admin.createTopics({ topics: [topicConfig(topic)], waitForLeaders: false })
  for (let i = 0; i < 300; i++) {
    const meta = await admin.fetchTopicMetadata({ topics: [topic.name] }).catch(() => undefined)
    const t = meta?.topics[0]
    if (t && t.partitions.length === topic.partitions && t.partitions.every((p) => p.leader >= 0)) break
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    config,
    kafka,
    admin,
    serde,
    registryUrl,
    topic,
    async close() {
      await admin.deleteTopics({ topics: [topic.name] }).catch(() => undefined)
      await admin.disconnect()
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    },
  }
}

/** Peak RSS (MB) sampled while `op` runs. */
export async function withPeakRss<T>(op: () => Promise<T>): Promise<{ result: T; peakMb: number }> {
  let peak = process.memoryUsage().rss
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20)
  try {
    const result = await op()
    peak = Math.max(peak, process.memoryUsage().rss)
    return { result, peakMb: peak / 1024 / 1024 }
  } finally {
    clearInterval(timer)
  }
}
