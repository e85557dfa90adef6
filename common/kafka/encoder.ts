/**
 * kafkajs 2.2.4 builds every produce request from small Encoders (one per record and one per
 * header: eleven for an event with our ten envelope headers), and each starts with a zero-filled
 * 512-byte `Buffer.alloc`: a fresh ArrayBuffer outside the pool, memset, and external memory for the
 * garbage collector to track. Each varint also goes through a `Buffer.from(array)`. Profiled, that was
 * 19 % of the ingest process and ~70 us per one-event request (kafkajs' own record encoding ~90 us).
 *
 * The Encoder is append-only (every byte below its offset was written; `buffer` is the written
 * slice), so nothing reads memory it did not write and the buffers need no zero fill: this module
 * makes an encoder start empty (V8 keeps a zero-length buffer on its heap) and grow from Node's
 * buffer pool (`allocUnsafe`, 256 bytes first, then doubling, or at once to the size a large write
 * needs), and writes varints in place.
 * The bytes on the wire are the same (test/unit/kafkajs-encoder.test.ts compares them with the
 * stock encoder on generated records, headers and produce requests). Installed once, by
 * common/kafka/client.ts; the version is checked so that another kafkajs is left as it is.
 */
import { patchableKafkajsModule } from './internals.ts'

interface EncoderLike {
  buf: Buffer
  offset: number
}
interface EncoderClass {
  nextPowerOfTwo(value: number): number
  prototype: EncoderLike & {
    ensureAvailable(length: number): void
    writeUVarInt(value: number): EncoderLike
    writeEncoderArray(value: EncoderLike[]): EncoderLike
    writeArray(array: unknown[], type?: string, length?: number): EncoderLike
    writeInt32(value: number): EncoderLike
  }
}

let original:
  | {
      nextPowerOfTwo: EncoderClass['nextPowerOfTwo']
      ensureAvailable: EncoderClass['prototype']['ensureAvailable']
      writeUVarInt: EncoderClass['prototype']['writeUVarInt']
      writeEncoderArray: EncoderClass['prototype']['writeEncoderArray']
      writeArray: EncoderClass['prototype']['writeArray']
    }
  | undefined

const encoderClass = () => patchableKafkajsModule<EncoderClass>('kafkajs/src/protocol/encoder.js')

/**
 * Installs the pooled encoder buffers (idempotent). False when the installed kafkajs is not the version this was
 * written for.
 */
export function installKafkaEncoderPatch(): boolean {
  const Encoder = encoderClass()
  if (!Encoder) return false
  if (original) return true
  const proto = Encoder.prototype
  original = {
    nextPowerOfTwo: Encoder.nextPowerOfTwo,
    ensureAvailable: proto.ensureAvailable,
    writeUVarInt: proto.writeUVarInt,
    writeEncoderArray: proto.writeEncoderArray,
    writeArray: proto.writeArray,
  }
  // Used by the constructor (Buffer.alloc of this size) and the stock ensureAvailable only, both replaced here.
  Encoder.nextPowerOfTwo = () => 0
  proto.ensureAvailable = function (this: EncoderLike, length: number): void {
    const need = this.offset + length
    if (need <= this.buf.length) return
    // Doubling keeps appends amortised; a write larger than that (a batch or a request copied into a
    // new encoder) gets exactly its size, not the next power of two (up to twice the bytes, per stage).
    const size = Math.max(need, 256, this.buf.length * 2)
    const next = Buffer.allocUnsafe(size)
    this.buf.copy(next, 0, 0, this.offset)
    this.buf = next
  }
  proto.writeUVarInt = function (
    this: EncoderLike & { ensureAvailable(length: number): void },
    value: number,
  ): EncoderLike {
    this.ensureAvailable(5)
    const buf = this.buf
    let offset = this.offset
    while ((value & 0xffffff80) !== 0) {
      buf[offset++] = (value & 0x7f) | 0x80
      value >>>= 7
    }
    buf[offset++] = value & 0x7f
    this.offset = offset
    return this
  }
  // The records of a batch (and the headers of a record): one allocation for all of them instead of
  // doubling from 256 bytes while they are appended (a 2,000-record batch grew through 12 buffers), and
  // each one's bytes copied from its buffer directly rather than through a `buffer` slice per record.
  proto.writeEncoderArray = function (
    this: EncoderLike & { ensureAvailable(length: number): void },
    value: EncoderLike[],
  ): EncoderLike {
    if (!Array.isArray(value) || value.some((v) => v == null || !Buffer.isBuffer(v.buf))) {
      throw new Error('all values should be an instance of Encoder[]')
    }
    let total = 0
    for (const v of value) total += v.offset
    this.ensureAvailable(total)
    for (const v of value) {
      v.buf.copy(this.buf, this.offset, 0, v.offset)
      this.offset += v.offset
    }
    return this
  }
  // An untyped array of encoders (a produce request's partitions, its topics) is written like a typed
  // one: presized, instead of doubling through every element (a 1 MB request grew through 185 KB,
  // 371 KB, 742 KB and 1.4 MB). Arrays holding anything else take the stock path.
  const stockWriteArray = original.writeArray
  proto.writeArray = function (
    this: EncoderLike & EncoderClass['prototype'],
    array: unknown[],
    type?: string,
    length?: number,
  ): EncoderLike {
    if (
      type === undefined &&
      Array.isArray(array) &&
      array.length > 0 &&
      array.every((v) => v != null && typeof v === 'object' && Buffer.isBuffer((v as EncoderLike).buf))
    ) {
      this.writeInt32(length == null ? array.length : length)
      return this.writeEncoderArray(array as EncoderLike[])
    }
    return stockWriteArray.call(this, array, type, length)
  }
  return true
}

/** Restores the stock encoder (tests compare both). */
export function uninstallKafkaEncoderPatch(): void {
  const Encoder = encoderClass()
  if (!Encoder || !original) return
  Encoder.nextPowerOfTwo = original.nextPowerOfTwo
  Encoder.prototype.ensureAvailable = original.ensureAvailable
  Encoder.prototype.writeUVarInt = original.writeUVarInt
  Encoder.prototype.writeEncoderArray = original.writeEncoderArray
  Encoder.prototype.writeArray = original.writeArray
  original = undefined
}
