/**
 * The producers' partitioner: the same partition as kafkajs' DefaultPartitioner (Java's murmur2 of
 * the key bytes, positive, modulo the topic's partition count; round robin for records without a
 * key), computed with 32-bit integer arithmetic. kafkajs computes murmur2 with its 64-bit Long class
 * (a dozen object allocations per key) and filters the partition list for every message, about a
 * microsecond per record on the ingest path. test/unit/kafkajs-partitioner.test.ts checks that every
 * key lands where the DefaultPartitioner puts it.
 */
import { Partitioners, type ICustomPartitioner } from 'kafkajs'

const SEED = 0x9747b28c
const M = 0x5bd1e995

/** Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2) of the bytes, as a signed 32-bit int. */
export function murmur2(data: Uint8Array): number {
  const length = data.length
  let h = SEED ^ length
  const length4 = length >>> 2
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4
    let k = data[i4]! | (data[i4 + 1]! << 8) | (data[i4 + 2]! << 16) | (data[i4 + 3]! << 24)
    k = Math.imul(k, M)
    k ^= k >>> 24
    k = Math.imul(k, M)
    h = Math.imul(h, M) ^ k
  }
  const tail = length & ~3
  const rest = length & 3
  if (rest > 0) {
    if (rest === 3) h ^= data[tail + 2]! << 16
    if (rest >= 2) h ^= data[tail + 1]! << 8
    h ^= data[tail]!
    h = Math.imul(h, M)
  }
  h ^= h >>> 13
  h = Math.imul(h, M)
  h ^= h >>> 15
  return h | 0
}

export const KeyHashPartitioner: ICustomPartitioner = () => {
  const unkeyed = Partitioners.DefaultPartitioner()
  return (args) => {
    const { message, partitionMetadata } = args
    if (message.partition !== null && message.partition !== undefined) return message.partition
    const key = message.key
    if (key === null || key === undefined) return unkeyed(args)
    const bytes = Buffer.isBuffer(key) ? key : Buffer.from(String(key))
    return (murmur2(bytes) & 0x7fffffff) % partitionMetadata.length
  }
}
