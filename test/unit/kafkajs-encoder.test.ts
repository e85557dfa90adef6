/**
 * The kafkajs encoder patch (common/kafkajs-encoder.ts) changes how buffers are allocated, never the
 * bytes: produce requests of generated records (keys, values and headers of every kind and size,
 * timestamps, many records per batch, gzip) encode identically with the stock encoder and the patched one.
 */
import { createRequire } from 'node:module'
import { expect } from 'chai'
import { installKafkaEncoderPatch, uninstallKafkaEncoderPatch } from '../../common/kafka/encoder.ts'

const require = createRequire(import.meta.url)
type ProduceRequest = (args: Record<string, unknown>) => { encode(): Promise<{ buffer: Buffer }> }
const produceV3 = require('kafkajs/src/protocol/requests/produce/v3/request.js') as ProduceRequest
const { Types } = require('kafkajs/src/protocol/message/compression/index.js') as {
  Types: { None: number; GZIP: number }
}
const Long = require('kafkajs/src/utils/long.js') as { fromInt(n: number): unknown; fromNumber(n: number): unknown }

let seed = 11
const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n
const CHARS = ['a', 'z', ' ', '"', 'é', '中', 'α', '😀']
const text = (n: number) =>
  Array.from({ length: Math.ceil(n / 64) }, () => CHARS[rnd(CHARS.length)]!.repeat(64))
    .join('')
    .slice(0, n)
const bytes = (n: number) => Buffer.alloc(n, rnd(256))
const SIZES = [0, 1, 5, 63, 64, 127, 128, 255, 256, 300, 4095, 4097, 20_000, 70_000]
// large fields only in small batches (a request stays under a few MB)
const field = (big: boolean) => {
  const n = SIZES[rnd(big ? SIZES.length : 10)]!
  return [null, text(n), bytes(n)][rnd(3)]
}

function request(compression: number) {
  const t0 = 1_764_000_000_000 + rnd(1_000_000)
  return {
    acks: -1,
    timeout: 30_000,
    transactionalId: rnd(4) === 0 ? 'tx-1' : null,
    producerId: Long.fromInt(rnd(1000)),
    producerEpoch: rnd(3),
    compression,
    topicData: Array.from({ length: 1 + rnd(2) }, (_, t) => ({
      topic: `topic-${t}-${text(rnd(20))}`,
      partitions: Array.from({ length: 1 + rnd(3) }, (_, p) => ({
        partition: p,
        firstSequence: rnd(100_000),
        messages: (() => {
          const n = 1 + rnd(rnd(4) === 0 ? 300 : 8)
          return Array.from({ length: n }, (_, i) => ({
            key: field(false),
            value: field(n <= 8 && i < 3),
            timestamp: String(t0 + rnd(100_000)),
            headers: Object.fromEntries(
              Array.from({ length: rnd(12) }, (_, h) => [
                `h${h}-${text(rnd(8))}`,
                rnd(5) === 0 ? [text(rnd(40)), bytes(rnd(40))] : rnd(2) ? text(SIZES[rnd(11)]!) : bytes(rnd(64)),
              ]),
            ),
          }))
        })(),
      })),
    })),
  }
}

describe('kafkajs encoder patch', () => {
  after(() => installKafkaEncoderPatch()) // as common/clients.ts leaves it

  it('encodes produce requests byte for byte as the stock encoder does', async function () {
    this.timeout(60_000)
    expect(installKafkaEncoderPatch(), 'the installed kafkajs is the version the patch was written for').to.equal(true)
    for (let i = 0; i < 60; i++) {
      const compression = i % 6 === 5 ? Types.GZIP : Types.None
      const s = seed
      const req = request(compression)
      uninstallKafkaEncoderPatch()
      const stock = (await produceV3(req).encode()).buffer
      installKafkaEncoderPatch()
      const patched = (await produceV3(req).encode()).buffer
      expect(
        patched.equals(stock),
        `request ${i} (seed ${s}): ${stock.length} bytes stock, ${patched.length} patched`,
      ).to.equal(true)
    }
  })
})
