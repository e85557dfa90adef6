/**
 * `npm run bench -- partner-topics`: Kafka-native partner access (docs/partner-topics.md).
 *
 * 1. Throughput: events fanned out live into 100 partner topics (100 kafka-topic subscriptions of one
 *    partner, one worker: read, entitle, re-encode in the partner's schema, group-committed produce,
 *    positions committed after the acknowledgement) in records/s, beside raw kafkajs producing the same
 *    number of records of the same bytes into 100 topics of the same shape (idempotent, acks=all,
 *    batched over all topics, 5 requests in flight) in the same run. Goal: >= 0.7x raw.
 * 2. Latency: p99 from ingestion (POST /v1/events answered 202, one event per request, open loop at
 *    1,000 events/s from a publisher child process) to the partner's own Kafka consumer (SCRAM on the
 *    partner listener when there is one) receiving the record from its partner topic. Goal: <= 50 ms.
 *
 * Settings: BENCH_PARTNER_TOPICS_EVENTS (source events of the throughput phase, default 2,000: 200,000
 * partner records), --duration-ms (the latency phase's measured time, default 20,000).
 */
import { Kafka, logLevel, type Admin, type Message } from 'kafkajs'
import { kafkaConfig } from '../common/kafka/index.ts'
import { KafkaScramAdmin } from '../common/kafka/scram.ts'
import { loadConfig, partnerKafkaAccess } from '../config/index.ts'
import { PartnerKafka } from '../control-plane/partner-kafka.ts'
import { ensureTopics } from '../schemas/index.ts'
import { ADMIN, levelMessage, startSinkHarness, type SinkHarness } from '../test/helpers/sink-runtime.ts'
import { testConfig, testKafka, uniqueName } from '../test/helpers/env.ts'
import { deleteTopics } from '../test/helpers/registry.ts'
import { configuredWorker, publish, serveIngest } from './helpers/ingest-arm.ts'
import { now, percentile, waitUntil } from './helpers/latency.ts'
import { figure, type Benchmark, type Figure } from './types.ts'

const SUBSCRIPTIONS = loadConfig().bench.partnerTopicsSubscriptions
const LATENCY_RATE = 1000
const WARMUP_MS = 8000

async function totalOffsets(admin: Admin, topics: string[]): Promise<number> {
  let n = 0
  for (const t of topics) for (const o of await admin.fetchTopicOffsets(t)) n += Number(o.high)
  return n
}

/** Until the worker runs every one of these subscriptions (positions placed: startFrom latest counts from then). */
async function running(h: SinkHarness, ids: string[], progress: (m: string) => void): Promise<void> {
  let last = 0
  const ok = await waitUntilAsync(async () => {
    const n = await h.cp.cols.connectorStatus.countDocuments({ _id: { $in: ids }, state: 'running' })
    if (Date.now() - last > 5000) {
      last = Date.now()
      progress(`${n}/${ids.length} subscriptions running`)
    }
    return n === ids.length
  }, 180_000)
  if (!ok) throw new Error(`the worker did not run all ${ids.length} subscriptions within 180 s`)
}

async function subscribe(h: SinkHarness, name: string, sinkName: string): Promise<{ id: string; topic: string }> {
  const r = await h.cp.createSubscription(ADMIN, {
    partnerId: h.partnerId,
    name,
    eventTypes: ['inventory.level.changed'],
    sink: { type: 'kafka-topic', name: sinkName },
    startFrom: 'latest',
  })
  return { id: r.subscription._id, topic: (r.subscription.sink as { topic: string }).topic }
}

/** Phase 2: 202 from ingestion -> the partner's consumer has the record, at LATENCY_RATE events/s. */
async function latency(
  h: SinkHarness,
  durationMs: number,
  progress: (m: string) => void,
): Promise<{ p50: number; p99: number; arrived: number; sent: number }> {
  const config = loadConfig()
  const access = partnerKafkaAccess(config)
  const sub = await subscribe(h, 'latency', 'latency')
  await running(h, [sub.id], progress)
  // The partner's consumer: its SCRAM user on the partner listener, as a partner runs it.
  let partnerClient: Kafka = testKafka('bench-partner-consumer')
  let group = `bench-${Date.now()}`
  if (access.bootstrapServers.length > 0) {
    const adminClient = testKafka('bench-partner-access').admin()
    const pk = new PartnerKafka({
      cols: h.cp.cols,
      access,
      admin: adminClient,
      scram: new KafkaScramAdmin(kafkaConfig(testConfig(), 'bench-scram')),
      logger: h.logger,
      registryUrl: () => h.registryUrl,
    })
    const creds = await pk.issueCredentials(h.partnerId)
    partnerClient = new Kafka({
      clientId: 'bench-partner',
      brokers: access.bootstrapServers,
      sasl: { mechanism: 'scram-sha-512', username: creds.username, password: creds.password },
      logLevel: logLevel.NOTHING,
    })
    group = `${creds.username}.bench-${Date.now()}`
    progress(`partner consumer: SCRAM user ${creds.username} on ${access.bootstrapServers.join(',')}`)
    await adminClient.disconnect()
  } else progress('partner consumer: no partner listener configured; reading on the platform listener')
  const arrivedAt = new Map<number, number>()
  const consumer = partnerClient.consumer({ groupId: group, maxWaitTimeInMs: 100 })
  await consumer.connect()
  const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()))
  await consumer.subscribe({ topic: sub.topic, fromBeginning: true })
  await consumer.run({
    eachMessage: async ({ message }) => {
      const at = now()
      if (!message.value) return
      const v = (await h.serde.decode(message.value)) as { sequence: number }
      if (!arrivedAt.has(v.sequence)) arrivedAt.set(v.sequence, at)
    },
  })
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`the partner consumer did not join group ${group} within 60 s`)), 60_000).unref(),
  )
  await Promise.race([joined, timeout])
  const served = await serveIngest(h, 'bench-pt-ingest', { perSecond: 100_000, burst: 100_000 })
  const acceptedAt = served.acceptedAt
  try {
    let answered = 0
    const run = {
      url: served.url,
      rate: LATENCY_RATE,
      ms: WARMUP_MS + durationMs,
      manufacturerId: h.publisherId,
      firstSeq: 0,
    }
    const sent = await publish(run, (r) => {
      if (r.answered) answered += r.answered.length / 3
    })
    await waitUntil(() => answered >= sent && arrivedAt.size >= acceptedAt.size, 20_000)
    const warm = Math.floor((LATENCY_RATE * WARMUP_MS) / 1000)
    const lat: number[] = []
    for (const [seq, a] of acceptedAt) {
      const at = arrivedAt.get(seq)
      if (seq < warm || at === undefined) continue
      lat.push(Math.max(0, at - a))
    }
    return { p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), arrived: lat.length, sent: sent - warm }
  } finally {
    await served.close()
    await consumer.disconnect()
    await h.cp.deleteSubscription(ADMIN, sub.id)
    await deleteTopics(sub.topic)
  }
}

/** Phase 1, platform: live fan-out of `events` source events into 100 partner topics. */
async function platformThroughput(
  h: SinkHarness,
  events: number,
  progress: (m: string) => void,
): Promise<{ perSecond: number; topics: string[] }> {
  const topics: string[] = []
  const ids: string[] = []
  for (let i = 0; i < SUBSCRIPTIONS; i++) {
    const s = await subscribe(h, `fan-${i}`, `fan-${i}`)
    topics.push(s.topic)
    ids.push(s.id)
  }
  const admin = testKafka().admin()
  await admin.connect()
  try {
    await running(h, ids, progress)
    // warm-up: every partner topic created, every sink started and every connection up
    const produce = async (from: number, n: number) => {
      for (let i = from; i < from + n; i += 500)
        await h.produce(
          Array.from({ length: Math.min(500, from + n - i) }, (_, k) => ({ sku: `SKU-${(i + k) % 1000}`, seq: i + k })),
        )
    }
    await produce(0, 200)
    let last = 0
    const ok = await waitUntilAsync(async () => {
      const existing = (await admin.listTopics()).filter((t) => topics.includes(t))
      const n = await totalOffsets(admin, existing)
      if (Date.now() - last > 5000) {
        last = Date.now()
        progress(`warm-up: ${existing.length}/${topics.length} partner topics, ${n}/${200 * SUBSCRIPTIONS} records`)
      }
      return existing.length === topics.length && n >= 200 * SUBSCRIPTIONS
    }, 180_000)
    if (!ok) throw new Error('the warm-up did not reach every partner topic within 180 s')
    const base = await totalOffsets(admin, topics)
    progress(`platform: ${events} events into ${SUBSCRIPTIONS} partner topics`)
    const t0 = now()
    await produce(200, events)
    const done = await waitUntilAsync(
      async () => (await totalOffsets(admin, topics)) - base >= events * SUBSCRIPTIONS,
      300_000,
    )
    const seconds = (now() - t0) / 1000
    const delivered = (await totalOffsets(admin, topics)) - base
    if (!done) progress(`platform: only ${delivered} of ${events * SUBSCRIPTIONS} records within 300 s`)
    return { perSecond: delivered / seconds, topics }
  } finally {
    await admin.disconnect()
  }
}

async function waitUntilAsync(cond: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await cond()) return true
    await new Promise((r) => setTimeout(r, 200))
  }
  return false
}

/** Phase 1, baseline: raw kafkajs producing the same records into 100 topics of the same shape. */
async function rawThroughput(h: SinkHarness, events: number): Promise<{ perSecond: number; topics: string[] }> {
  const topics = Array.from({ length: SUBSCRIPTIONS }, (_, i) => uniqueName(`pt-raw-${i}`))
  const admin = testKafka().admin()
  await admin.connect()
  await ensureTopics(
    admin,
    topics.map((name) => ({ ...h.topic, name })),
  )
  await admin.disconnect()
  // the records as the source topic holds them (the partner topics' are the same size: no projection here)
  const ids = {
    keyId: await h.serde.idOf(`${h.topic.name}-key`, 'latest'),
    valueId: await h.serde.idOf(`${h.topic.name}-value`, 'latest'),
  }
  const records: Message[] = Array.from({ length: events }, (_, i) =>
    levelMessage(h.serde, ids, h.topic.name, h.publisherId, { sku: `SKU-${i % 1000}`, seq: i }),
  )
  const producer = testKafka('bench-pt-raw').producer({ idempotent: true, maxInFlightRequests: 5 })
  await producer.connect()
  try {
    // each topic's records in requests of 500, five requests in flight (the producer's limit when idempotent)
    await producer.sendBatch({
      acks: -1,
      topicMessages: topics.map((topic) => ({ topic, messages: records.slice(0, 1) })),
    }) // warm-up: connections, metadata
    const per = 500
    const t0 = now()
    const inFlight = new Set<Promise<unknown>>()
    for (const topic of topics) {
      for (let i = 0; i < events; i += per) {
        const p = producer
          .send({ topic, acks: -1, messages: records.slice(i, i + per) })
          .finally(() => inFlight.delete(p))
        inFlight.add(p)
        if (inFlight.size >= 5) await Promise.race(inFlight)
      }
    }
    await Promise.all(inFlight)
    // the warm-up record of each topic is not counted
    return { perSecond: (events * SUBSCRIPTIONS) / ((now() - t0) / 1000), topics }
  } finally {
    await producer.disconnect()
  }
}

async function throughputOnly(
  h: SinkHarness,
  events: number,
  progress: (m: string) => void,
  cleanup: string[],
): Promise<Figure[]> {
  const platform = await platformThroughput(h, events, progress)
  cleanup.push(...platform.topics)
  progress(`platform: ${Math.round(platform.perSecond)} records/s into ${SUBSCRIPTIONS} partner topics`)
  const raw = await rawThroughput(h, events)
  cleanup.push(...raw.topics)
  progress(`raw kafkajs: ${Math.round(raw.perSecond)} records/s into ${SUBSCRIPTIONS} topics`)
  return [figure('partner-topics.records-per-s', platform.perSecond, 'rec/s', raw.perSecond, 0.7)]
}

export const benchmark: Benchmark = {
  defaultDurationMs: 20_000,
  description:
    'live fan-out into 100 partner topics (kafka-topic sinks) vs raw kafkajs ' +
    'producing the same records, records/s; ingestion -> partner Kafka consumer ' +
    'p99 at 1,000 events/s',
  async run(ctx): Promise<Figure[]> {
    const events = loadConfig().bench.partnerTopicsEvents
    // the configured prefix: the partner's ACLs (its topics, its groups) are granted under it
    const h = await startSinkHarness({
      partitions: 3,
      partnerTopicPrefix: partnerKafkaAccess(loadConfig()).topicPrefix,
    })
    const cleanup: string[] = []
    try {
      // The sink worker in its own process, as `distributary start --role worker` runs it, with the
      // worker settings of the configuration (the delivery log of successful deliveries included).
      const config = loadConfig()
      const worker = await h.childWorker('bench-partner-topics-worker', configuredWorker(config))
      ctx.progress(`sink worker: process ${worker.pid} (successful deliveries logged: ${config.worker.logDelivered})`)
      if (config.bench.partnerTopicsSkipLatency) return [...(await throughputOnly(h, events, ctx.progress, cleanup))]
      ctx.progress(
        `latency: ${LATENCY_RATE} events/s for ${ctx.durationMs} ms after ` +
          `${WARMUP_MS} ms of warm-up, one kafka-topic subscription`,
      )
      const lat = await latency(h, ctx.durationMs, ctx.progress)
      ctx.progress(
        `latency: ${lat.arrived}/${lat.sent} measured events arrived, p50 ` +
          `${lat.p50.toFixed(1)} ms, p99 ${lat.p99.toFixed(1)} ms`,
      )
      const platform = await platformThroughput(h, events, ctx.progress)
      cleanup.push(...platform.topics)
      ctx.progress(`platform: ${Math.round(platform.perSecond)} records/s into ${SUBSCRIPTIONS} partner topics`)
      const raw = await rawThroughput(h, events)
      cleanup.push(...raw.topics)
      ctx.progress(`raw kafkajs: ${Math.round(raw.perSecond)} records/s into ${SUBSCRIPTIONS} topics`)
      return [
        figure('partner-topics.records-per-s', platform.perSecond, 'rec/s', raw.perSecond, 0.7),
        figure('partner-topics.latency.p50', lat.p50, 'ms', null, null, true),
        figure('partner-topics.latency.p99', lat.p99, 'ms', null, 50, true),
      ]
    } finally {
      await h.close()
      if (cleanup.length > 0) await deleteTopics(...cleanup)
    }
  },
}
