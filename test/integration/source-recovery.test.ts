/**
 * Recovery after a crash between the broker's ack and the plug-in's commit, when a produce request
 * reached Kafka only in part (one partition's records failed): the positions of a batch count only
 * if all of its records are in Kafka, and nothing after the first incomplete batch counts, so that
 * the plug-in produces those rows again instead of moving past rows that were never stored.
 */
import { expect } from 'chai'
import { POSITION_HEADER, positionHeader, scanPositions } from '../../connectors/source/recovery.ts'
import { SourceRunner } from '../../connectors/source/runner.ts'
import type { SourceConnector, SourceRecord } from '../../connectors/source/types.ts'
import { HEADER, uuidv7 } from '../../schemas/headers.ts'
import { quietLogger } from '../helpers/registry.ts'
import { sourceSuite } from '../helpers/sources.ts'

const SOURCE = '/sources/test/recovery'

describe('source recovery: batches that reached Kafka only in part', function () {
  this.timeout(120_000)
  const suite = sourceSuite()

  /** Produces records as a runner would have: value bytes are irrelevant to the scan, the headers are what it reads. */
  async function produce(
    t: string,
    records: Array<{ id: string; position: string; source?: string; partition: number }>,
  ): Promise<void> {
    const producer = suite.kafka.producer()
    await producer.connect()
    try {
      await producer.send({
        topic: t,
        acks: -1,
        messages: records.map((r) => ({
          partition: r.partition,
          key: r.id,
          value: 'x',
          headers: { [HEADER.id]: r.id, [HEADER.source]: r.source ?? SOURCE, [POSITION_HEADER]: r.position },
        })),
      })
    } finally {
      await producer.disconnect()
    }
  }

  it(
    'returns the positions of complete batches up to the first incomplete one, ' +
      'untagged positions as before, and ignores other sources',
    async () => {
      const t = await suite.topic()
      const since = Date.now()
      const [a, b, c] = [uuidv7(), uuidv7(), uuidv7()] // creation order
      const ids = Array.from({ length: 8 }, () => uuidv7())
      await produce(t.name, [
        { id: ids[0]!, position: positionHeader({ line: 1 }, ''), partition: 0 }, // written before batch tags
        // batch a: all three records, spread over partitions
        { id: ids[1]!, position: positionHeader({ line: 2 }, `${a} 3`), partition: 0 },
        { id: ids[2]!, position: positionHeader({ line: 3 }, `${a} 3`), partition: 1 },
        { id: ids[3]!, position: positionHeader({ line: 4 }, `${a} 3`), partition: 2 },
        // batch b: 3 records, one partition's record missing; one record twice (a retry) does not make up for it
        { id: ids[4]!, position: positionHeader({ line: 5 }, `${b} 3`), partition: 0 },
        { id: ids[4]!, position: positionHeader({ line: 5 }, `${b} 3`), partition: 0 },
        { id: ids[5]!, position: positionHeader({ line: 6 }, `${b} 3`), partition: 1 },
        // batch c: complete, but after the incomplete one
        { id: ids[6]!, position: positionHeader({ line: 8 }, `${c} 1`), partition: 2 },
        // another source's record
        { id: ids[7]!, position: positionHeader({ line: 99 }, ''), source: '/sources/test/other', partition: 1 },
      ])
      const found = (await scanPositions(suite.kafka, [t.name], since, SOURCE, quietLogger)) as Array<{ line: number }>
      expect(found.map((p) => p.line).sort((x, y) => x - y)).to.deep.equal([1, 2, 3, 4])

      // once the missing record is there (the retry landed), b and everything after it count
      await produce(t.name, [{ id: uuidv7(), position: positionHeader({ line: 7 }, `${b} 3`), partition: 2 }])
      const after = (await scanPositions(suite.kafka, [t.name], since, SOURCE, quietLogger)) as Array<{ line: number }>
      expect(after.map((p) => p.line).sort((x, y) => x - y)).to.deep.equal([1, 2, 3, 4, 5, 5, 6, 7, 8])
    },
  )

  it(
    'the runner tags the records it encodes for one request with one batch id and ' +
      'their count; a retried record keeps its tag',
    async () => {
      const t = await suite.topic()
      const idle: SourceConnector = {
        kind: 'source',
        start: async () => {},
        poll: async () => [],
        stop: async () => {},
      }
      const runner = new SourceRunner(
        idle,
        {},
        { name: 'recovery-tags', kafka: suite.kafka, serde: suite.serde, topics: [t], logger: quietLogger },
      )
      const record = (i: number, position?: unknown): SourceRecord => ({
        topic: t.name,
        key: { sku: `SKU-${i}`, locationId: 'DC-1' },
        value: {
          manufacturerId: 'acme',
          sku: `SKU-${i}`,
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
          occurredAt: 1_732_000_000_000,
        },
        type: 'inventory.level.changed',
        ...(position !== undefined ? { position } : {}),
      })
      const tagOf = (h: unknown) => {
        const v = String(h)
        return v.includes('\n') ? v.slice(v.lastIndexOf('\n') + 1) : ''
      }
      const first = [record(1, { line: 1 }), record(2), record(3, { line: 3 })]
      const m1 = (await runner.encode(first))[0]!.messages
      const tags1 = m1.map((m) => tagOf(m.headers?.[POSITION_HEADER]))
      expect(tags1[1], 'no position, no header').to.equal('')
      expect(m1[1]!.headers?.[POSITION_HEADER]).to.equal(undefined)
      expect(tags1[0]).to.equal(tags1[2])
      expect(tags1[0]).to.match(/^[0-9a-f-]{36} 2$/)
      expect(JSON.parse(String(m1[0]!.headers?.[POSITION_HEADER]).split('\n')[0]!)).to.deep.equal({ line: 1 })

      // a retry of the first record with two new ones: it is sent as it was; the new ones share a new tag
      const m2 = (await runner.encode([first[0]!, record(4, { line: 4 }), record(5, { line: 5 })]))[0]!.messages
      expect(m2[0]).to.equal(m1[0])
      const tags2 = m2.map((m) => tagOf(m.headers?.[POSITION_HEADER]))
      expect(tags2[1]).to.equal(tags2[2])
      expect(tags2[1]).to.match(/ 2$/)
      expect(tags2[1]!.split(' ')[0]! > tags1[0]!.split(' ')[0]!, 'later batches sort later').to.equal(true)
    },
  )
})
