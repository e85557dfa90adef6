import { expect } from 'chai'
import { BatchedWriter } from '../../connectors/sink/batched-writer.ts'

type Op = { key: string; n: number }

function recorder(opts: { failFirst?: boolean; writeMs?: number } = {}) {
  const batches: Op[][] = []
  const errors: unknown[] = []
  let calls = 0
  const writer = new BatchedWriter<Op>({
    write: async (ops) => {
      calls++
      if (opts.writeMs) await new Promise((r) => setTimeout(r, opts.writeMs))
      if (opts.failFirst && calls === 1) throw new Error('store down')
      batches.push([...ops])
    },
    onError: (err) => errors.push(err),
    maxBatch: 3,
    delayMs: 20,
  })
  const add = (key: string, n: number) => writer.add(key, { key, n })
  return { writer, batches, errors, add }
}

describe('batched writer (delivery log)', () => {
  it('gathers writes into batches of at most maxBatch, and writes a partial batch after delayMs', async () => {
    const { writer, batches, add } = recorder()
    const done = [add('a', 1), add('b', 1), add('c', 1), add('d', 1)]
    expect(writer.pending).to.equal(4)
    await Promise.all(done)
    expect(batches.map((b) => b.map((o) => o.key))).to.deep.equal([['a', 'b', 'c'], ['d']])
    expect(writer.pending).to.equal(0)
  })

  it('keeps the writes of one key in order: a second write of a key goes to a later batch', async () => {
    const { batches, add } = recorder({ writeMs: 5 })
    await Promise.all([add('a', 1), add('b', 1), add('a', 2), add('a', 3), add('b', 2)])
    for (const b of batches) expect(new Set(b.map((o) => o.key)).size, 'one write per key per batch').to.equal(b.length)
    const order = batches.flat().filter((o) => o.key === 'a').map((o) => o.n)
    expect(order).to.deep.equal([1, 2, 3])
    expect(batches.flat()).to.have.length(5)
  })

  it('reports a failed batch and still resolves its writes; later batches are written', async () => {
    const { writer, batches, errors, add } = recorder({ failFirst: true })
    await Promise.all([add('a', 1), add('b', 1), add('c', 1), add('d', 1)])
    expect(errors).to.have.length(1)
    expect(batches.flat().map((o) => o.key)).to.deep.equal(['d'])
    await writer.flush()
  })

  it('flush writes what is queued at once', async () => {
    const { writer, batches, add } = recorder()
    void add('a', 1)
    const t0 = Date.now()
    await writer.flush()
    expect(batches.flat()).to.have.length(1)
    expect(Date.now() - t0).to.be.below(20)
  })
})
