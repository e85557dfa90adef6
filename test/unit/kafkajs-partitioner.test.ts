import { expect } from 'chai'
import { Partitioners, type PartitionerArgs } from 'kafkajs'
import { KeyHashPartitioner } from '../../common/kafka/partitioner.ts'

describe('KeyHashPartitioner (common/kafkajs-partitioner.ts)', () => {
  it(
    'puts every key where the kafkajs DefaultPartitioner does: random bytes of ' +
      'every length, string keys, any partition count',
    () => {
      const ours = KeyHashPartitioner()
      const stock = Partitioners.DefaultPartitioner()
      let seed = 5
      const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n
      let compared = 0
      for (let i = 0; i < 20_000; i++) {
        const count = 1 + rnd(64)
        const partitionMetadata = Array.from({ length: count }, (_, p) => ({
          partitionId: p,
          leader: p % 5 === 4 ? -1 : 0,
          partitionErrorCode: 0,
          replicas: [0],
          isr: [0],
        }))
        const bytes = Buffer.from(Array.from({ length: rnd(70) }, () => rnd(256)))
        const key = i % 3 === 0 ? `SKU-${rnd(100000)}-é${'x'.repeat(rnd(9))}` : bytes
        const args = { topic: 't', partitionMetadata, message: { key, value: null } } as unknown as PartitionerArgs
        expect(ours(args), `key ${String(key)} over ${count}`).to.equal(stock(args))
        compared++
      }
      expect(compared).to.equal(20_000)
    },
  )

  it('keeps an explicit partition, and spreads records without a key over the partitions', () => {
    const ours = KeyHashPartitioner()
    const partitionMetadata = Array.from({ length: 6 }, (_, p) => ({
      partitionId: p,
      leader: 0,
      partitionErrorCode: 0,
      replicas: [0],
      isr: [0],
    }))
    expect(
      ours({
        topic: 't',
        partitionMetadata,
        message: { key: 'k', value: null, partition: 4 },
      } as unknown as PartitionerArgs),
    ).to.equal(4)
    const seen = new Set(
      Array.from({ length: 60 }, () =>
        ours({ topic: 't', partitionMetadata, message: { key: null, value: null } } as unknown as PartitionerArgs),
      ),
    )
    expect(seen.size).to.equal(6)
  })
})
