/**
 * The source runner's pipeline against the real broker: while one batch waits for its ack the next is
 * polled and encoded, yet every commit comes after its own records were acked, in poll order, each
 * record is in Kafka exactly once and in order per key, and pause stops after the batch in flight.
 */
import { expect } from 'chai'
import { SourceRunner } from '../../connectors/source/runner.ts'
import type { SourceConnector, SourceRecord } from '../../connectors/source/types.ts'
import { DataError } from '../../common/errors.ts'
import { HEADER } from '../../schemas/headers.ts'
import { createKafka } from '../../common/kafka/index.ts'
import { HttpIngestSource } from '../../producers/http-ingest/source.ts'
import { testConfig, uniqueName, waitFor } from '../helpers/env.ts'
import { faultySockets } from '../helpers/kafka-faults.ts'
import { quietLogger } from '../helpers/registry.ts'
import { readTopic, sourceSuite } from '../helpers/sources.ts'

const KEYS = 7

/** One inventory level of manufacturer acme, keyed as the topic's contract says. */
class ListSourceRecord implements SourceRecord {
  key: unknown = { manufacturerId: 'acme', sku: 'SKU-0', locationId: 'DC-1' }
  value: Record<string, unknown> = {
    manufacturerId: 'acme',
    sku: 'SKU-0',
    gtin: null,
    locationId: 'DC-1',
    locationType: 'WAREHOUSE',
    unitOfMeasure: 'EA',
    onHand: 1,
    reserved: 0,
    available: 1,
    incoming: [],
    safetyStock: null,
    sequence: 1,
    occurredAt: 1_732_000_000_000,
  }
  type = 'inventory.level.changed'
  constructor(readonly topic: string) {}
}

/** A pull source over a fixed list of inventory levels: `perPoll` per poll, position = index. */
class ListSource implements SourceConnector<unknown> {
  readonly kind = 'source' as const
  next = 0
  readonly commits: Array<{ first: number; last: number; producedAtCommit: number }> = []
  runner: SourceRunner | undefined
  /** Records handed out but not yet acked when poll was called: > 0 means polled while in flight. */
  maxUnackedAtPoll = 0

  constructor(
    private readonly topic: string,
    private readonly total: number,
    private readonly perPoll: number,
  ) {}

  async start(): Promise<void> {}
  async stop(): Promise<void> {}

  async poll(): Promise<SourceRecord[]> {
    this.maxUnackedAtPoll = Math.max(this.maxUnackedAtPoll, this.next - this.runner!.stats.produced)
    const out: SourceRecord[] = []
    while (out.length < this.perPoll && this.next < this.total) {
      const i = this.next++
      const sku = `SKU-${i % KEYS}`
      out.push({
        topic: this.topic,
        key: { sku, locationId: 'DC-1' },
        value: {
          manufacturerId: 'acme',
          sku,
          gtin: null,
          locationId: 'DC-1',
          locationType: 'WAREHOUSE',
          unitOfMeasure: 'EA',
          onHand: i,
          reserved: 0,
          available: i,
          incoming: [],
          safetyStock: null,
          sequence: i,
          occurredAt: 1_732_000_000_000 + i,
        },
        type: 'inventory.level.changed',
        position: i,
      })
    }
    return out
  }

  async commit(records: SourceRecord[]): Promise<void> {
    // Slow like a durable store, so the next batch is in flight while this one commits.
    await new Promise((r) => setTimeout(r, 5))
    this.commits.push({
      first: records[0]!.position as number,
      last: records.at(-1)!.position as number,
      producedAtCommit: this.runner!.stats.produced,
    })
  }
}

describe('source runner pipeline', function () {
  this.timeout(120_000)
  const suite = sourceSuite()

  it(
    'commits each batch after its ack, in poll order, while the next is in ' +
      'flight; every record once, in order per key',
    async () => {
      const t = await suite.topic()
      const total = 1_000
      const source = new ListSource(t.name, total, 50)
      // maxBatch 20: each poll of 50 goes out as 20 + 20 + 10, one request at a time.
      const runner = new SourceRunner(
        source,
        {},
        {
          name: 'pipeline-test',
          kafka: suite.kafka,
          serde: suite.serde,
          topics: [t],
          logger: quietLogger,
          maxBatch: 20,
          idleMs: 10,
        },
      )
      source.runner = runner
      await runner.start()
      try {
        await waitFor(() => source.commits.at(-1)?.last === total - 1, {
          timeoutMs: 60_000,
          what: 'every record committed',
        })
      } finally {
        await runner.stop()
      }
      expect(runner.stats.batches).to.equal((total / 50) * 3)
      expect(source.maxUnackedAtPoll).to.be.above(0) // the next poll overlapped a batch in flight
      // contiguous, in order, each after the broker acked it (the runner counts acked records)
      let expected = 0
      for (const c of source.commits) {
        expect(c.first).to.equal(expected)
        expect(c.producedAtCommit).to.be.at.least(c.last + 1)
        expected = c.last + 1
      }
      expect(expected).to.equal(total)

      const records = await readTopic(suite.kafka, suite.admin, suite.serde, t.name)
      expect(records).to.have.length(total)
      expect(new Set(records.map((r) => r.value.sequence)).size).to.equal(total)
      expect(new Set(records.map((r) => r.headers[HEADER.id])).size).to.equal(total)
      const byKey = new Map<string, number[]>()
      for (const r of records) {
        const k = `${r.key.sku}/${r.key.locationId}`
        if (!byKey.has(k)) byKey.set(k, [])
        byKey.get(k)!.push(Number(r.value.sequence))
      }
      expect(byKey.size).to.equal(KEYS)
      for (const seqs of byKey.values()) expect(seqs).to.deep.equal([...seqs].sort((a, b) => a - b))
    },
  )

  it('pause stops after the batch in flight, acked and committed; resume goes on without loss', async () => {
    const t = await suite.topic()
    const total = 3_000
    const source = new ListSource(t.name, total, 20)
    const runner = new SourceRunner(
      source,
      {},
      {
        name: 'pipeline-pause-test',
        kafka: suite.kafka,
        serde: suite.serde,
        topics: [t],
        logger: quietLogger,
        idleMs: 10,
      },
    )
    source.runner = runner
    await runner.start()
    try {
      await waitFor(() => source.commits.length >= 3, { what: 'a few commits' })
      runner.pause()
      await new Promise((r) => setTimeout(r, 500))
      const produced = runner.stats.produced
      const committed = (source.commits.at(-1)?.last ?? -1) + 1
      expect(committed).to.equal(produced) // nothing acked is left uncommitted while paused
      await new Promise((r) => setTimeout(r, 500))
      expect(runner.stats.produced).to.equal(produced) // and nothing more is produced
      expect(produced).to.be.below(total)
      runner.resume()
      await waitFor(() => source.commits.at(-1)?.last === total - 1, {
        timeoutMs: 60_000,
        what: 'every record committed after resume',
      })
    } finally {
      await runner.stop()
    }
    const records = await readTopic(suite.kafka, suite.admin, suite.serde, t.name)
    expect(records).to.have.length(total)
    expect(new Set(records.map((r) => r.value.sequence)).size).to.equal(total)
  })

  it(
    'publishing for an owner: every record carries the owner, and one naming ' +
      'another manufacturer is refused before anything is produced',
    async () => {
      const t = await suite.topic()
      const runner = new SourceRunner(
        new ListSource(t.name, 0, 1),
        {},
        {
          name: 'owner-test',
          kafka: suite.kafka,
          serde: suite.serde,
          topics: [t],
          logger: quietLogger,
          publisherId: 'acme',
        },
      )
      await runner.start()
      try {
        const record = (over: Partial<SourceRecord>) => ({ ...new ListSourceRecord(t.name), ...over })
        await runner.produce([record({})])
        for (const forged of [
          record({ publisherId: 'globex' }),
          record({ key: { manufacturerId: 'globex', sku: 'S', locationId: 'DC-1' } }),
          {
            ...new ListSourceRecord(t.name),
            value: { ...new ListSourceRecord(t.name).value, manufacturerId: 'globex' },
          },
        ]) {
          let refused: unknown
          await runner.produce([record({}), forged]).catch((err: unknown) => (refused = err))
          expect(refused, JSON.stringify(forged.key)).to.be.instanceOf(DataError)
          expect((refused as Error).message).to.match(
            new RegExp(
              'names manufacturer globex in (publisherId|key\\.manufacturerId|value\\.manufacturerId), ' +
                'but the source publishes for acme',
            ),
          )
        }
      } finally {
        await runner.stop()
      }
      const records = await readTopic(suite.kafka, suite.admin, suite.serde, t.name)
      expect(records, 'only the first, valid request was produced').to.have.length(1)
      expect(records[0]!.headers[HEADER.publisherId]).to.equal('acme')
    },
  )
})

describe('source runner: a produce whose answer was lost', function () {
  this.timeout(60_000)
  const suite = sourceSuite()

  it(
    'an event acknowledged after a failed produce is in Kafka: the next batch ' +
      "goes through a new producer, not the failed one's sequence numbers",
    async () => {
      // Without a new producer the second event below carries the sequence numbers of the first request
      // (kafkajs gives them back when a request fails), which the broker appended: it answers "duplicate"
      // with success, and the second event is acknowledged without being written.
      const t = await suite.topic()
      const faults = faultySockets()
      const kafka = createKafka(testConfig(), undefined, uniqueName('lost-answer'), {
        socketFactory: faults.socketFactory,
      })
      const source = new HttpIngestSource()
      const runner = new SourceRunner(
        source,
        { bufferCapacity: 100, maxBatch: 100, pollWaitMs: 20 },
        {
          name: 'lost-answer',
          kafka,
          serde: suite.serde,
          topics: [t],
          logger: quietLogger,
          producerRetry: { retries: 1, maxRetryTime: 1000, initialRetryTime: 100 },
        },
      )
      const level = (onHand: number): SourceRecord => ({
        topic: t.name,
        key: { manufacturerId: 'acme', sku: 'SKU-1', locationId: 'DC-1' },
        value: {
          manufacturerId: 'acme',
          sku: 'SKU-1',
          gtin: null,
          locationId: 'DC-1',
          locationType: 'WAREHOUSE',
          unitOfMeasure: 'EA',
          onHand,
          reserved: 0,
          available: onHand,
          incoming: [],
          safetyStock: null,
          sequence: onHand,
          occurredAt: 1_732_000_000_000 + onHand,
        },
        type: 'inventory.level.changed',
      })
      await runner.start()
      try {
        await source.offer([level(1)]) // the producer's first request: sequence 0 of its partition
        faults.loseNextProduceAnswer(3000)
        const second = level(2)
        const failed = await source.offer([second]).then(
          () => undefined,
          (err: Error) => err,
        )
        expect(failed?.message, 'the request whose answer was lost fails (the caller is told 503)').to.match(
          /produce failed/,
        )
        expect([faults.lost, faults.refused > 0]).to.deep.equal([1, true])
        await new Promise((r) => setTimeout(r, 3000)) // the network is back
        const third = level(3)
        await source.offer([third]) // acknowledged: it must be in the topic
        const records = await readTopic(suite.kafka, suite.admin, suite.serde, t.name)
        const ids = records.map((r) => r.headers[HEADER.id])
        expect(ids, 'the acknowledged event is in Kafka').to.include(third.id)
        expect(
          records.map((r) => r.value.onHand),
          'the first event once, the unacknowledged one at most once, the acknowledged one',
        ).to.satisfy((v: number[]) => v[0] === 1 && v.at(-1) === 3 && v.length <= 3)
        expect(runner.producerSessions, 'a new producer after the failed produce').to.equal(2)
      } finally {
        await runner.stop()
      }
    },
  )
})
