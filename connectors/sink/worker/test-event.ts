/**
 * Test events (POST /v1/subscriptions/{id}/test; docs/sink-workers.md, "Test events"): the example of
 * an event type (schemas/examples.ts), encoded with the latest registered schema of its topic and read
 * with the subscription's pinned reader, as a record of that topic would be, and sent to the
 * subscription's sink by the worker holding it. It is no position of the subscription and no
 * publisher's data: no grant is needed, it goes whether the subscription is running, paused or parked,
 * and in its own lane (its key is `distributary-test:<eventId>`, no partner key). A few quick attempts;
 * every attempt goes to the delivery log under its event id, a failed test ends dead without a dead
 * letter. A sink that projects state per key (MongoDB) gets a tombstone of that key after it, so that
 * nothing of the test stays in the partner's collection. A webhook body carries `"test": true`.
 */
import type { KafkaMessage } from '../../../common/kafka/index.ts'
import type { RetryRequestDoc } from '../../../control-plane/types.ts'
import { createConverter } from '../../source/json-avro.ts'
import { contractSchema } from '../../../schemas/contracts.ts'
import { EVENT_EXAMPLES } from '../../../schemas/examples.ts'
import { envelope, toHeaders } from '../../../schemas/headers.ts'
import type { AvroSerde } from '../../../schemas/serde/serde.ts'
import { valueSubject, type TopicSpec } from '../../../schemas/topics.ts'
import { DEFAULT_SHORT_POLICY, withRetry } from '../../retry.ts'
import { DecodedMessage, markTestEvent, textHeaders } from '../records.ts'
import type { SinkRecord } from '../types.ts'
import type { Delivery } from './delivery.ts'
import type { Outcomes } from './outcomes.ts'
import type { Run } from './run.ts'

/** Attempts at a test event: a few quick ones (the one asking waits for the answer); a rejection ends them. */
export const TEST_POLICY = { ...DEFAULT_SHORT_POLICY, maxAttempts: 3 }
/** A test event is given up after this long (held deliveries included: the control plane away). */
const TEST_TIMEOUT_MS = 120_000

/** The test event's record and, for a sink that projects state per key, the tombstone that removes it again. */
export async function testRecords(
  serde: AvroSerde,
  topics: readonly TopicSpec[],
  run: Run,
  req: Pick<RetryRequestDoc, 'eventId' | 'eventType'>,
): Promise<{ record: SinkRecord; cleanup: SinkRecord | null }> {
  const eventType = req.eventType!
  const spec = topics.find((t) => t.eventTypes.includes(eventType))
  const example = EVENT_EXAMPLES[eventType]?.[0]
  if (!spec || example === undefined) throw new Error(`no example of event type ${eventType}`)
  const { value, faults } = createConverter(contractSchema(spec.valueSchema)).convert(example)
  if (faults.length > 0) throw new Error(`the example of ${eventType} does not fit its contract: ${faults[0]!.message}`)
  const subject = valueSubject(spec.name)
  const latest = await serde.client.getVersion(subject, 'latest')
  const headers = toHeaders(
    envelope({
      id: req.eventId!,
      type: eventType,
      source: 'distributary/test',
      schemaSubject: subject,
      schemaVersion: latest.version,
    }),
  )
  const key = `distributary-test:${req.eventId}`
  const message = (value: Buffer | null, offset: string): KafkaMessage =>
    ({
      key: Buffer.from(key),
      value,
      headers: textHeaders(headers),
      offset,
      timestamp: String(Date.now()),
    }) as KafkaMessage
  const reader = run.readers.get(spec.name)
  const record = (m: KafkaMessage) => {
    const r = new DecodedMessage(serde, spec.name, 0, m).record(reader)
    r.key = key
    return markTestEvent(r)
  }
  return {
    record: record(message(await serde.encode(latest.id, value), '0')),
    cleanup: run.sink?.acceptsTombstones === true ? record(message(null, '1')) : null,
  }
}

/**
 * Sends a test event: TEST_POLICY's attempts, then the tombstone of its key where the sink
 * takes one. Returns what came of it (the retry request's outcome); null when the run stopped first (its next holder
 * sends it).
 */
export async function sendTestEvent(
  o: { serde: AvroSerde; topics: readonly TopicSpec[]; delivery: Delivery; outcomes: Outcomes },
  run: Run,
  req: RetryRequestDoc,
): Promise<string | null> {
  let records: { record: SinkRecord; cleanup: SinkRecord | null }
  try {
    records = await testRecords(o.serde, o.topics, run, req)
  } catch (err) {
    return `not sent: ${err instanceof Error ? err.message : String(err)}`
  }
  const { record, cleanup } = records
  const error = await attempts(o.delivery, run, record)
  if (error === STOPPED) return null
  if (error !== undefined) {
    const reason = `test event not delivered: ${error}`
    await o.outcomes.markTestFailed(run, record, reason)
    return reason
  }
  const left = cleanup ? await attempts(o.delivery, run, cleanup) : undefined
  if (left === STOPPED) return null
  return left === undefined ? 'delivered' : `delivered; its removal failed: ${left}`
}

const STOPPED = Symbol('stopped')

/** Undefined once delivered, else why not (STOPPED: the run stopped). */
async function attempts(
  delivery: Delivery,
  run: Run,
  record: SinkRecord,
): Promise<string | undefined | typeof STOPPED> {
  try {
    const signal = AbortSignal.timeout(TEST_TIMEOUT_MS)
    await withRetry(() => delivery.deliver(run, record, signal, 'test'), TEST_POLICY, { signal })
    return undefined
  } catch (err) {
    return run.stopped ? STOPPED : err instanceof Error ? err.message : String(err)
  }
}
