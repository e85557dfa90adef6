/**
 * Child process of the partners benchmark: the manufacturer's producer. On { topic, registryUrl,
 * publisherId, rate, ms, keys, firstSeq } it produces inventory.level.changed events (key SKU-(seq %
 * keys), the harness's message: test/helpers/sink-runtime.ts levelMessage) at `rate` per second for
 * `ms` (open loop: each event has its intended time on a fixed schedule), sending the events that came
 * due every LINGER_MS in one request, as a producer with linger.ms would (the wait counts in the
 * measured latency, which starts at the intended time), and reports to the parent in batches over IPC: `sent` (seq,
 * intended
 * time, ...), then { done: number sent, failed: events not produced }. Producers of a deployment are other machines;
 * here
 * another process, so that the measured process only runs the sink worker.
 */
import { AvroSerde, RegistryClient, registerTopicSchemas, type TopicSpec } from '../../schemas/index.ts'
import { levelMessage } from '../../test/helpers/sink-runtime.ts'
import { testKafka } from '../../test/helpers/env.ts'
import { openLoop } from './latency.ts'

interface Run {
  topic: TopicSpec
  registryUrl: string
  publisherId: string
  rate: number
  ms: number
  keys: number
  firstSeq: number
}

const LINGER_MS = 5
let sent: number[] = []
const flush = (): void => {
  if (sent.length === 0) return
  process.send?.({ sent })
  sent = []
}
setInterval(flush, 20)

process.on('message', (msg: Run) => {
  void (async () => {
    const serde = new AvroSerde(new RegistryClient({ url: msg.registryUrl }))
    const ids = (await registerTopicSchemas(serde, [msg.topic]))[msg.topic.name]!
    const producer = testKafka('bench-producer-child').producer()
    await producer.connect()
    let open = 0
    let failed = 0
    let due: ReturnType<typeof levelMessage>[] = []
    const send = (): void => {
      if (due.length === 0) return
      const messages = due
      due = []
      open++
      producer
        .send({ topic: msg.topic.name, messages })
        .catch(() => (failed += messages.length))
        .finally(() => open--)
    }
    const linger = setInterval(send, LINGER_MS)
    const total = await openLoop(
      msg.rate,
      msg.ms,
      (seq, at) => {
        sent.push(seq, at)
        due.push(levelMessage(serde, ids, msg.topic.name, msg.publisherId, { sku: `SKU-${seq % msg.keys}`, seq }))
      },
      msg.firstSeq,
    )
    clearInterval(linger)
    send()
    const deadline = Date.now() + 30_000
    while (open > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    flush()
    await producer.disconnect()
    process.send?.({ done: total, failed })
  })()
})
process.on('disconnect', () => process.exit(0))
