/**
 * The contract every sink connector runs (after BullMQ's one conformance suite over every backend):
 * driven through the runtime's DeliveryQueue, as the sink worker drives it.
 *  - idempotent redelivery: the same record delivered twice carries the same idempotency key;
 *  - commit after success only: the safe offset does not pass a record the partner has not confirmed;
 *  - poison to dead letters: a record the sink cannot send (DataError) is dead-lettered at once;
 *  - retriable errors are retried on the schedule, then dead-lettered as exhausted.
 * A sink provides a harness: a fresh partner endpoint it can make succeed, fail retriably or reject.
 */
import { expect } from 'chai'
import { createLogger } from '../../common/logger.ts'
import { DeliveryQueue, type DeadLetterInfo } from '../../connectors/sink/delivery-queue.ts'
import type { AttemptReport, SinkConnector, SinkRecord } from '../../connectors/sink/types.ts'
import { waitFor } from '../helpers/env.ts'

export type PartnerMode = 'ok' | 'retriable' | 'reject'

export interface ContractPartner {
  /** Idempotency keys (event ids) of every call the partner received, in order. */
  receivedIds(): string[]
  setMode(mode: PartnerMode): void
}

export interface SinkContractHarness {
  /** A started sink (subscription `subscriptionId`) and the partner endpoint it delivers to. */
  start(
    subscriptionId: string,
    onAttempt: (r: AttemptReport) => void,
  ): Promise<{ sink: SinkConnector<unknown>; partner: ContractPartner }>
  /** A record this sink cannot send at all (e.g. a value it cannot serialise). */
  poisonRecord(offset: number): SinkRecord
  close(): Promise<void>
}

const silent = createLogger({ write: () => {} })
const TOPIC = 'contract.topic'

export function contractRecord(offset: number, key = 'K'): SinkRecord {
  return {
    topic: TOPIC,
    partition: 0,
    offset: String(offset),
    key,
    value: { key, n: offset },
    headers: {},
    eventId: `evt-contract-${offset}`,
    eventType: 'contract.event',
    timestamp: Date.now(),
  }
}

export function runSinkContract(name: string, makeHarness: () => Promise<SinkContractHarness>): void {
  describe(`sink contract: ${name}`, function () {
    this.timeout(20_000)
    let harness: SinkContractHarness
    let queue: DeliveryQueue
    const dead: Array<{ record: SinkRecord; info: DeadLetterInfo }> = []
    const attempts: AttemptReport[] = []

    const setup = async (
      policy = { kind: 'schedule' as const, delaysMs: [20, 20, 20], jitter: 0, maxRetryAfterMs: 100 },
    ) => {
      const { sink, partner } = await harness.start('sub-contract', (r) => attempts.push(r))
      queue.addSubscription({
        id: 'sub-contract',
        policy,
        parkAfterFailures: 1000,
        deliver: (record, { signal }) => sink.put([record], { signal }),
      })
      return { sink, partner }
    }

    beforeEach(async () => {
      harness = await makeHarness()
      dead.length = 0
      attempts.length = 0
      queue = new DeliveryQueue(
        { onDeadLetter: (_id, record, info) => void dead.push({ record, info }) },
        { logger: silent },
      )
    })
    afterEach(async () => {
      queue.close()
      await harness.close()
    })

    it('redelivers idempotently: the same record carries the same idempotency key every time', async () => {
      const { sink, partner } = await setup()
      const r = contractRecord(1)
      await sink.put([r])
      await sink.put([r])
      expect(partner.receivedIds()).to.deep.equal([r.eventId, r.eventId])
    })

    it('commits after success only: the safe offset stays before an unconfirmed record', async () => {
      const { partner } = await setup({
        kind: 'schedule',
        delaysMs: [300, 300, 300, 300],
        jitter: 0,
        maxRetryAfterMs: 1000,
      })
      partner.setMode('retriable')
      queue.enqueue('sub-contract', contractRecord(0))
      queue.enqueue('sub-contract', contractRecord(1))
      await waitFor(() => partner.receivedIds().length >= 1)
      expect(queue.safeOffset('sub-contract', TOPIC, 0)).to.equal('0')
      partner.setMode('ok')
      await waitFor(() => queue.safeOffset('sub-contract', TOPIC, 0) === '2', { what: 'commit after success' })
      expect(dead).to.have.length(0)
      expect(attempts.some((a) => a.outcome === 'delivered')).to.equal(true)
    })

    it('sends poison to the dead letters at once, without retrying it, and commits past it', async () => {
      await setup()
      queue.enqueue('sub-contract', harness.poisonRecord(0))
      queue.enqueue('sub-contract', contractRecord(1))
      await waitFor(() => queue.safeOffset('sub-contract', TOPIC, 0) === '2', { what: 'past the poison' })
      expect(dead).to.have.length(1)
      expect(dead[0]!.info).to.include({ reason: 'rejected', attempts: 1 })
    })

    it('retries retriable errors on the schedule, then dead-letters the record as exhausted', async () => {
      const { partner } = await setup()
      partner.setMode('retriable')
      queue.enqueue('sub-contract', contractRecord(0))
      await waitFor(() => dead.length === 1, { what: 'exhausted' })
      expect(dead[0]!.info).to.include({ reason: 'exhausted', attempts: 4 })
      expect(partner.receivedIds()).to.deep.equal(Array(4).fill('evt-contract-0'))
      expect(queue.safeOffset('sub-contract', TOPIC, 0)).to.equal('1')
    })

    it('dead-letters a record the partner rejects, without retrying it', async () => {
      const { partner } = await setup()
      partner.setMode('reject')
      queue.enqueue('sub-contract', contractRecord(0))
      await waitFor(() => dead.length === 1)
      expect(dead[0]!.info.reason).to.equal('rejected')
      expect(partner.receivedIds()).to.have.length(1)
    })
  })
}
