/**
 * `npm run bench -- kafka-client`: the produce and consume paths of kafkajs 2.2.4 (the platform's client,
 * with the platform's patches: the pooled header encoder and the timeout patch installed by
 * common/kafka/, the KeyHashPartitioner of its producers) beside @platformatic/kafka (1.x, the line
 * that still runs on Node 20), in one run, on one topic of their own (3 partitions), for issue #22's
 * question whether to move (docs/kafka-client.md). Every figure is @platformatic/kafka's with kafkajs as
 * the baseline; no goal (information).
 *
 * 1. Produce, idempotent: the same pre-built records (the ingest's: Avro key and value, about 135 bytes,
 *    and its ten envelope headers, about 380), 500 per send, acks=all, one send at a time. One at a time because
 *    kafkajs' idempotent producer holds a lock per broker for the whole request anyway, and because
 *    @platformatic/kafka 1.x must not be given concurrent sends when idempotent: it reads the partition
 *    sequence when it encodes a request and advances it only on the response, so concurrent requests
 *    carry the same sequence and the broker acknowledges the later ones as duplicates without writing
 *    them (three concurrent sends of 10 records answered "ok" with one offset and wrote 10 records;
 *    platformatic/kafka#309, fixed in 2.3.0, which needs Node 22).
 * 2. Produce, 5 in flight: the same records and batches, acks=all, not idempotent, 4 concurrent senders,
 *    at most 5 requests in flight per connection in both clients (kafkajs maxInFlightRequests,
 *    @platformatic/kafka maxInflights).
 * 3. Produce latency: one record per send, open loop at BENCH_KAFKA_CLIENT_RATE records/s (default
 *    1,000), acks=all, the producers of phase 2; p50 and p99 from each record's intended send time to
 *    its acknowledgement.
 * 4. Consume: the first BENCH_KAFKA_CLIENT_CONSUME_RECORDS records (default 100,000, at most what the
 *    phases above wrote) read from the beginning by a consumer group of its own per arm and round, fetch
 *    sizes alike (1 MB per request and per partition, maxWait 100 ms as the sink worker's readers),
 *    offsets committed every second; timed from the group join to the last record.
 *
 * Each phase warms both clients up, then runs two rounds in the order kafkajs, platformatic,
 * platformatic, kafkajs (so load drift on the shared machine hits both alike), `--duration-ms` split over
 * the rounds of a phase. CPU per record is this process's (process.cpuUsage) over each arm's phases.
 */
import { randomUUID } from 'node:crypto'
import type { Producer as KafkajsProducer } from 'kafkajs'
import {
  Consumer,
  Producer,
  ProduceAcks,
  stringSerializer,
  type MessageToProduce,
  type ProducerOptions,
  type SASLMechanismValue,
} from '@platformatic/kafka'
import { kafkaConfig } from '../common/kafka/index.ts'
import { KeyHashPartitioner, murmur2 } from '../common/kafka/partitioner.ts'
import type { AppConfig } from '../config/index.ts'
import { now, openLoop, percentile, waitUntil } from './helpers/latency.ts'
import { benchEnv, inventoryEvents, inventoryRecords, type BenchEnv } from './sources-common.ts'
import { figure, type Benchmark, type Figure } from './types.ts'

const BATCH = 500
const SENDERS = 4
const IN_FLIGHT = 5
const PARTITIONS = 3
const FETCH_BYTES = 1024 * 1024
/** How long one consumer may take for its records before the round counts what it has. */
const CONSUME_DEADLINE_MS = 60_000

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive whole number, got ${raw}`)
  return n
}

type Arm = 'kafkajs' | 'platformatic'
/** kafkajs first in round 1 and last in round 2. */
const ORDER: Arm[][] = [
  ['kafkajs', 'platformatic'],
  ['platformatic', 'kafkajs'],
]

/** Records, seconds and CPU µs an arm accumulated over its rounds of a phase. */
interface Tally {
  n: number
  sec: number
  cpuUs: number
}
const tally = (): Tally => ({ n: 0, sec: 0, cpuUs: 0 })
function add(t: Tally, n: number, ms: number, cpu: NodeJS.CpuUsage): void {
  t.n += n
  t.sec += ms / 1000
  t.cpuUs += cpu.user + cpu.system
}
const rate = (t: Tally) => t.n / t.sec
const cpuPerRecord = (t: Tally) => t.cpuUs / Math.max(1, t.n)
/** One round's figures for the progress lines (the rounds' spread shows how much the machine drifted). */
function roundFigures(t: Tally, before: Tally): string {
  const n = t.n - before.n
  return (
    `${Math.round(n / (t.sec - before.sec)).toLocaleString('en-US')} rec/s, ` +
    `${((t.cpuUs - before.cpuUs) / Math.max(1, n)).toFixed(1)} µs CPU/rec`
  )
}

/**
 * @platformatic/kafka's connection options from the platform's Kafka settings (brokers, timeouts, TLS, SASL), as
 * kafkajs gets them.
 */
function platformaticBase(config: AppConfig, clientId: string) {
  const k = kafkaConfig(config, clientId)
  const sasl = k.sasl as { mechanism: string; username: string; password: string } | undefined
  return {
    clientId,
    bootstrapBrokers: k.brokers as string[],
    connectTimeout: k.connectionTimeout,
    timeout: k.requestTimeout,
    ...(k.ssl ? { tls: k.ssl === true ? {} : k.ssl } : {}),
    ...(sasl
      ? {
          sasl: {
            mechanism: sasl.mechanism.toUpperCase() as SASLMechanismValue,
            username: sasl.username,
            password: sasl.password,
          },
        }
      : {}),
  }
}

/** The records in both clients' shapes, and the producers of each arm. */
interface Clients {
  /** Key, value and header bytes of the records (for the reader). */
  sizes: { key: number; value: number; headers: number }
  kafkajs: { idempotent: KafkajsProducer; pipelined: KafkajsProducer }
  platformatic: {
    idempotent: Producer<Buffer, Buffer, string, string>
    pipelined: Producer<Buffer, Buffer, string, string>
  }
  send(arm: Arm, producer: 'idempotent' | 'pipelined', batch: 'all' | number): Promise<number>
  close(): Promise<void>
}

async function clients(env: BenchEnv): Promise<Clients> {
  const { withHeaders } = await inventoryRecords(env, inventoryEvents(BATCH))
  const topic = env.topic.name
  const kMessages = withHeaders
  const pMessages: MessageToProduce<Buffer, Buffer, string, string>[] = withHeaders.map((m) => ({
    topic,
    key: m.key as Buffer,
    value: m.value as Buffer,
    headers: m.headers as Record<string, string>,
  }))
  const kafkajs = {
    idempotent: env.kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: KeyHashPartitioner }),
    pipelined: env.kafka.producer({
      idempotent: false,
      maxInFlightRequests: IN_FLIGHT,
      createPartitioner: KeyHashPartitioner,
    }),
  }
  await Promise.all([kafkajs.idempotent.connect(), kafkajs.pipelined.connect()])
  // The header names and values are strings, as the platform gives them to kafkajs (which turns them into
  // bytes as it encodes); @platformatic/kafka's default serializers take only Buffers. Its default
  // partitioner maps murmur2 with `>>> 0` where Java and kafkajs mask the sign bit (`& 0x7fffffff`), which
  // puts about half the keys on another partition (compatibilityPartitioner came in 1.32, whose
  // dependencies need Node 22.19): the platform would pass its own, as here, so both arms write the
  // same partitions.
  const options = (idempotent: boolean): ProducerOptions<Buffer, Buffer, string, string> => ({
    ...platformaticBase(env.config, `bench-kafka-client-${idempotent ? 'idempotent' : 'pipelined'}`),
    idempotent,
    acks: ProduceAcks.ALL,
    maxInflights: idempotent ? 1 : IN_FLIGHT,
    serializers: { headerKey: stringSerializer, headerValue: stringSerializer },
    partitioner: (m) => murmur2(m.key!) & 0x7fffffff,
  })
  const platformatic = { idempotent: new Producer(options(true)), pipelined: new Producer(options(false)) }
  const bytes = (f: (m: (typeof pMessages)[number]) => number) =>
    Math.round(pMessages.reduce((sum, m) => sum + f(m), 0) / pMessages.length)
  return {
    sizes: {
      key: bytes((m) => m.key!.length),
      value: bytes((m) => m.value!.length),
      headers: bytes((m) =>
        Object.entries(m.headers as Record<string, string>).reduce(
          (sum, [k, v]) => sum + Buffer.byteLength(k) + Buffer.byteLength(v),
          0,
        ),
      ),
    },
    kafkajs,
    platformatic,
    async send(arm, producer, batch) {
      if (arm === 'kafkajs') {
        await kafkajs[producer].send({
          topic,
          acks: -1,
          messages: batch === 'all' ? kMessages : [kMessages[batch % BATCH]!],
        })
      } else {
        await platformatic[producer].send({
          messages: batch === 'all' ? pMessages : [pMessages[batch % BATCH]!],
          acks: ProduceAcks.ALL,
        })
      }
      return batch === 'all' ? BATCH : 1
    },
    async close() {
      await Promise.all(
        [
          kafkajs.idempotent.disconnect(),
          kafkajs.pipelined.disconnect(),
          platformatic.idempotent.close(),
          platformatic.pipelined.close(),
        ].map((p) => p.catch(() => undefined)),
      )
    },
  }
}

/** `senders` loops each sending whole batches until `ms` passed; the records acknowledged. */
async function throughput(
  c: Clients,
  arm: Arm,
  producer: 'idempotent' | 'pipelined',
  senders: number,
  ms: number,
  into?: Tally,
): Promise<number> {
  let n = 0
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: senders }, async () => {
      while (performance.now() - t0 < ms) {
        // Not `n += await ...`: that reads n before the await, and the other senders' counts would be lost.
        const sent = await c.send(arm, producer, 'all')
        n += sent
      }
    }),
  )
  if (into) add(into, n, performance.now() - t0, process.cpuUsage(c0))
  return n
}

/** One record per send at `rate`/s for `ms`; the latencies (ms from the intended send time to the ack). */
async function latency(
  c: Clients,
  arm: Arm,
  recordsPerSecond: number,
  ms: number,
  into?: Tally,
): Promise<{ latencies: number[]; failed: number }> {
  const latencies: number[] = []
  let failed = 0
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  const sent = await openLoop(recordsPerSecond, ms, (seq, intendedAt) => {
    c.send(arm, 'pipelined', seq).then(
      () => latencies.push(now() - intendedAt),
      () => failed++,
    )
  })
  await waitUntil(() => latencies.length + failed >= sent, 15_000)
  if (into) add(into, latencies.length, performance.now() - t0, process.cpuUsage(c0))
  return { latencies, failed }
}

/** A consumer group of its own reads the topic from the beginning until `records` arrived (or the deadline). */
async function consume(
  env: BenchEnv,
  arm: Arm,
  records: number,
  groups: string[],
): Promise<{ n: number; ms: number; cpu: NodeJS.CpuUsage }> {
  const groupId = `bench-kafka-client-${arm}-${randomUUID()}`
  groups.push(groupId)
  let n = 0
  // From the group join (the assignment received) on; before it, from the start (a join that never came).
  let from = { at: performance.now(), cpu: process.cpuUsage() }
  let done: { at: number; cpu: NodeJS.CpuUsage } | undefined
  const join = () => (from = { at: performance.now(), cpu: process.cpuUsage() })
  const count = (k: number) => {
    n += k
    if (n >= records && !done) done = { at: performance.now(), cpu: process.cpuUsage(from.cpu) }
  }
  let close: () => Promise<void>
  if (arm === 'kafkajs') {
    const consumer = env.kafka.consumer({
      groupId,
      maxWaitTimeInMs: 100,
      minBytes: 1,
      maxBytes: FETCH_BYTES,
      maxBytesPerPartition: FETCH_BYTES,
      sessionTimeout: 10_000,
      heartbeatInterval: 1000,
      rebalanceTimeout: 10_000,
    })
    consumer.on(consumer.events.GROUP_JOIN, join)
    await consumer.connect()
    await consumer.subscribe({ topics: [env.topic.name], fromBeginning: true })
    await consumer.run({ autoCommitInterval: 1000, eachBatch: async ({ batch }) => count(batch.messages.length) })
    close = () => consumer.disconnect()
  } else {
    const consumer = new Consumer({
      ...platformaticBase(env.config, 'bench-kafka-client'),
      groupId,
      maxWaitTime: 100,
      minBytes: 1,
      maxBytes: FETCH_BYTES,
      sessionTimeout: 10_000,
      heartbeatInterval: 1000,
      rebalanceTimeout: 10_000,
    })
    consumer.on('consumer:group:join', join)
    const stream = await consumer.consume({
      topics: [env.topic.name],
      mode: 'committed',
      fallbackMode: 'earliest',
      autocommit: 1000,
    })
    stream.on('data', () => count(1))
    close = async () => {
      await stream.close()
      await consumer.close()
    }
  }
  try {
    await waitUntil(() => done !== undefined, CONSUME_DEADLINE_MS)
  } finally {
    await close().catch(() => undefined)
  }
  const end = done ?? { at: performance.now(), cpu: process.cpuUsage(from.cpu) }
  return { n: Math.min(n, records), ms: end.at - from.at, cpu: end.cpu }
}

export const benchmark: Benchmark = {
  description:
    `kafkajs (the platform's, patched) vs @platformatic/kafka on one topic of ` +
    `${PARTITIONS} partitions: produce (the ingest's records, ${BATCH} per send, ` +
    `acks=all; idempotent one at a time, then ${IN_FLIGHT} in flight), produce ` +
    `latency (one record per send), consume (a group from the beginning); ` +
    `records/s, ms, CPU µs per record`,
  defaultDurationMs: 4000,
  async run(ctx): Promise<Figure[]> {
    const recordsPerSecond = positiveInt('BENCH_KAFKA_CLIENT_RATE', 1000)
    const consumeRecords = positiveInt('BENCH_KAFKA_CLIENT_CONSUME_RECORDS', 100_000)
    const env = await benchEnv('kafka-client', { partitions: PARTITIONS })
    const groups: string[] = []
    const c = await clients(env).catch(async (err: unknown) => {
      await env.close()
      throw err
    })
    try {
      const half = ctx.durationMs / 2
      const warm = Math.min(1000, ctx.durationMs / 4)
      let produced = 0
      const arms = (): Record<Arm, Tally> => ({ kafkajs: tally(), platformatic: tally() })
      ctx.progress(`records: key ${c.sizes.key} B, value ${c.sizes.value} B, 10 headers ${c.sizes.headers} B (mean)`)
      /** Runs one measured round of an arm into `t` and prints its own figures. */
      const round = async (label: string, t: Tally, op: () => Promise<number>) => {
        const before = { ...t }
        const n = await op()
        ctx.progress(`${label}: ${roundFigures(t, before)}`)
        return n
      }

      ctx.progress('produce, idempotent, one send at a time: warm-up')
      for (const arm of ORDER[0]!) produced += await throughput(c, arm, 'idempotent', 1, warm)
      const idempotent = arms()
      for (const [i, order] of ORDER.entries()) {
        for (const arm of order) {
          produced += await round(`produce, idempotent, round ${i + 1}, ${arm}`, idempotent[arm], () =>
            throughput(c, arm, 'idempotent', 1, half, idempotent[arm]),
          )
        }
      }

      ctx.progress(`produce, ${IN_FLIGHT} in flight, ${SENDERS} senders: warm-up`)
      for (const arm of ORDER[0]!) produced += await throughput(c, arm, 'pipelined', SENDERS, warm)
      const pipelined = arms()
      for (const [i, order] of ORDER.entries()) {
        for (const arm of order) {
          produced += await round(`produce, ${IN_FLIGHT} in flight, round ${i + 1}, ${arm}`, pipelined[arm], () =>
            throughput(c, arm, 'pipelined', SENDERS, half, pipelined[arm]),
          )
        }
      }

      ctx.progress(`produce latency, one record per send at ${recordsPerSecond}/s: warm-up`)
      for (const arm of ORDER[0]!) produced += (await latency(c, arm, recordsPerSecond, warm)).latencies.length
      const single = arms()
      const latencies: Record<Arm, number[]> = { kafkajs: [], platformatic: [] }
      for (const [i, order] of ORDER.entries()) {
        for (const arm of order) {
          const r = await latency(c, arm, recordsPerSecond, half, single[arm])
          const failed = r.failed > 0 ? `, ${r.failed} sends failed` : ''
          ctx.progress(
            `produce latency, round ${i + 1}, ${arm}: p50 ` +
              `${percentile(r.latencies, 0.5).toFixed(2)} ms, p99 ` +
              `${percentile(r.latencies, 0.99).toFixed(2)} ms${failed}`,
          )
          latencies[arm].push(...r.latencies)
          produced += r.latencies.length
        }
      }
      await c.close()

      const records = Math.min(consumeRecords, produced)
      ctx.progress('consume: warm-up')
      for (const arm of ORDER[0]!) await consume(env, arm, Math.min(records, 20_000), groups)
      const read = arms()
      for (const [i, order] of ORDER.entries()) {
        for (const arm of order) {
          await round(
            `consume ${records.toLocaleString('en-US')} records from the beginning, round ${i + 1}, ${arm}`,
            read[arm],
            async () => {
              const r = await consume(env, arm, records, groups)
              if (r.n < records) ctx.progress(`only ${r.n} records within ${CONSUME_DEADLINE_MS / 1000} s`)
              add(read[arm], r.n, r.ms, r.cpu)
              return r.n
            },
          )
        }
      }

      const pair = (name: string, unit: string, f: (t: Tally) => number, t: Record<Arm, Tally>, lower = false) =>
        figure(name, f(t.platformatic), unit, f(t.kafkajs), null, lower)
      const quantile = (name: string, q: number) =>
        figure(
          `kafka-client.produce.${name}`,
          percentile(latencies.platformatic, q),
          'ms',
          percentile(latencies.kafkajs, q),
          null,
          true,
        )
      return [
        pair('kafka-client.produce.idempotent', 'rec/s', rate, idempotent),
        pair('kafka-client.produce.idempotent.cpu', 'µs/rec', cpuPerRecord, idempotent, true),
        pair(`kafka-client.produce.${IN_FLIGHT}-in-flight`, 'rec/s', rate, pipelined),
        pair(`kafka-client.produce.${IN_FLIGHT}-in-flight.cpu`, 'µs/rec', cpuPerRecord, pipelined, true),
        quantile('p50', 0.5),
        quantile('p99', 0.99),
        pair('kafka-client.produce.single.cpu', 'µs/rec', cpuPerRecord, single, true),
        pair('kafka-client.consume', 'rec/s', rate, read),
        pair('kafka-client.consume.cpu', 'µs/rec', cpuPerRecord, read, true),
      ]
    } finally {
      await c.close()
      if (groups.length > 0) await env.admin.deleteGroups(groups).catch(() => undefined)
      await env.close()
    }
  },
}
