/**
 * The kafkajs record decoder patch (common/kafka/decoder.ts) builds the same records as the stock decoder:
 * generated records (null, text and binary keys, values and headers, repeated header keys, a `__proto__` header,
 * offsets and timestamps near and beyond 2^53, log-append time) decode to deeply equal objects with both.
 */
import { createRequire } from 'node:module'
import { expect } from 'chai'
import { kafkaDecoderPatched, stockRecordDecoder, fastRecordDecoder } from '../../common/kafka/decoder.ts'
import { createKafka } from '../../common/kafka/index.ts'

const require = createRequire(import.meta.url)
type Encoded = { buffer: Buffer }
const encodeRecord = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (r: {
  offsetDelta: number
  timestampDelta: number
  key: Buffer | string | null
  value: Buffer | string | null
  headers: Record<string, Buffer | string | Array<Buffer | string>>
}) => Encoded
const Decoder = require('kafkajs/src/protocol/decoder.js') as new (b: Buffer) => { readVarIntBytes(): Buffer }
const Long = require('kafkajs/src/utils/long.js')
const HeaderDecoder = require('kafkajs/src/protocol/recordBatch/header/v0/decoder.js')
const { LOG_APPEND_TIME, CREATE_TIME } = require('kafkajs/src/protocol/timestampTypes.js') as Record<string, number>

let seed = 7
const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n
const CHARS = ['a', 'z', ' ', '"', 'é', '中', '😀']
const text = (n: number) => Array.from({ length: n }, () => CHARS[rnd(CHARS.length)]).join('')
const field = () => [null, text(rnd(300)), Buffer.alloc(rnd(300), rnd(256))][rnd(3)]!
const NAMES = ['ce_id', 'ce_type', 'traceparent', '__proto__', 'x', 'content-type']

function headers(): Record<string, Buffer | string | Array<Buffer | string>> {
  const out: Record<string, Buffer | string | Array<Buffer | string>> = {}
  for (let i = rnd(12); i > 0; i--) {
    const name = NAMES[rnd(NAMES.length)]!
    const value = rnd(2) ? text(rnd(40)) : Buffer.alloc(rnd(40), 1)
    Object.defineProperty(out, name, {
      value: rnd(4) === 0 ? [value, text(3), Buffer.from('z')] : value,
      enumerable: true,
      writable: true,
      configurable: true,
    })
  }
  return out
}

const FIRST_OFFSETS = ['0', '41', '123456789', String(2 ** 53 - 3), '9223372036854775000']
const FIRST_TIMESTAMPS = ['1764000000000', '0', String(2 ** 53 - 2), '-1']

describe('kafkajs record decoder patch', () => {
  it('is installed by the Kafka client module', () => {
    createKafka // the import installs it
    expect(kafkaDecoderPatched()).to.equal(true)
  })

  it('decodes generated records as the stock decoder does', () => {
    const stock = stockRecordDecoder()!
    const fast = fastRecordDecoder(Long, HeaderDecoder, LOG_APPEND_TIME!)
    let compared = 0
    for (let b = 0; b < 200; b++) {
      const context = {
        firstOffset: FIRST_OFFSETS[rnd(FIRST_OFFSETS.length)]!,
        firstTimestamp: FIRST_TIMESTAMPS[rnd(FIRST_TIMESTAMPS.length)]!,
        magicByte: 2,
        isControlBatch: rnd(5) === 0,
        timestampType: rnd(4) === 0 ? LOG_APPEND_TIME : CREATE_TIME,
        maxTimestamp: '1764000009999',
        lastOffsetDelta: 0,
      }
      for (let i = 0; i < 1 + rnd(20); i++) {
        const bytes = encodeRecord({
          offsetDelta: rnd(5) === 0 ? 2 ** 31 - 1 - rnd(10) : rnd(1000),
          timestampDelta: rnd(5) === 0 ? 2 ** 40 + rnd(1000) : rnd(100_000),
          key: field(),
          value: field(),
          headers: headers(),
        }).buffer
        const read = (d: typeof stock) => d(new Decoder(new Decoder(bytes).readVarIntBytes()) as never, context)
        const expected = read(stock)
        const actual = read(fast)
        expect(actual).to.deep.equal(expected)
        expect(Object.keys(actual.headers as object)).to.deep.equal(Object.keys(expected.headers as object))
        expect(actual.batchContext).to.equal(context)
        compared++
      }
    }
    expect(compared).to.be.greaterThan(500)
  })

  it('keeps a header named like an Object.prototype member as its value', () => {
    const fast = fastRecordDecoder(Long, HeaderDecoder, LOG_APPEND_TIME!)
    const bytes = encodeRecord({
      offsetDelta: 1,
      timestampDelta: 0,
      key: null,
      value: null,
      headers: { constructor: 'c', toString: ['a', 'b'] },
    }).buffer
    const r = fast(new Decoder(new Decoder(bytes).readVarIntBytes()) as never, {
      firstOffset: '9',
      firstTimestamp: '5',
    }) as { offset: string; timestamp: string; headers: Record<string, unknown> }
    expect(r.offset).to.equal('10')
    expect(r.timestamp).to.equal('5')
    expect(r.headers.constructor).to.deep.equal(Buffer.from('c'))
    expect(r.headers.toString).to.deep.equal([Buffer.from('a'), Buffer.from('b')])
  })
})
