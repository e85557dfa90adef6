import { expect } from 'chai'
import { Limiter } from '../../common/limiter.ts'

describe('Limiter', () => {
  it('runs at most max tasks at a time, the rest in arrival order, and passes results and errors through', async () => {
    const limiter = new Limiter(2)
    let running = 0
    let peak = 0
    const started: number[] = []
    const task = (i: number) => async () => {
      started.push(i)
      running++
      peak = Math.max(peak, running)
      await new Promise((r) => setTimeout(r, 5))
      running--
      if (i === 3) throw new Error('task 3 failed')
      return i * 10
    }
    const results = await Promise.allSettled([0, 1, 2, 3, 4, 5].map((i) => limiter.run(task(i))))
    expect(peak).to.equal(2)
    expect(started).to.deep.equal([0, 1, 2, 3, 4, 5])
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).to.deep.equal([
      0,
      10,
      20,
      'task 3 failed',
      40,
      50,
    ])
    expect(limiter.size).to.equal(0)
  })

  it('refuses a max that is not a positive integer', () => {
    expect(() => new Limiter(0)).to.throw(RangeError, /positive integer/)
  })
})
