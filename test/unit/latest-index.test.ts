/**
 * The collapse index (connectors/sink/worker/latest-index.ts): per partition, the latest offset of each key the
 * shared reader read since it started there; a collapse's winners only when it covers the collapse's start.
 */
import { expect } from 'chai'
import { createLogger } from '../../common/logger.ts'
import { LatestIndex } from '../../connectors/sink/worker/latest-index.ts'

const log = createLogger({ level: 'error' })
const key = (s: string) => Buffer.from(s)

describe('collapse index', () => {
  it("gives each key's latest offset in [from, to), ascending, from where the reader started on", () => {
    const idx = new LatestIndex(100, log)
    idx.track('t|0', 10)
    // offsets 10..19: keys b, c, a in turns (the latest: c@17, a@18, b@19), then b again at 20, an unkeyed one at 21
    for (let o = 10; o < 20; o++) idx.note('t|0', key('abc'[o % 3]!), o)
    idx.note('t|0', key('b'), 20)
    idx.note('t|0', null, 21)
    expect([...idx.winners('t|0', 10, 22)!]).to.deep.equal([17, 18, 20, 21])
    expect([...idx.winners('t|0', 19, 22)!], 'keys whose latest is below `from` have none from there').to.deep.equal([
      20, 21,
    ])
    expect([...idx.winners('t|0', 10, 20)!], 'b: its latest is at `to`, not below').to.deep.equal([17, 18])
    expect(idx.winners('t|0', 9, 22), 'before the reader started there: not covered').to.equal(undefined)
    expect(idx.winners('t|1', 10, 22), 'a partition not tracked').to.equal(undefined)
    expect(idx.keys).to.equal(4)
  })

  it('is dropped for good beyond its keys, and keeps nothing with 0', () => {
    const idx = new LatestIndex(3, log)
    idx.track('t|0', 0)
    for (let o = 0; o < 3; o++) idx.note('t|0', key(`k${o}`), o)
    expect(idx.winners('t|0', 0, 3)!.length).to.equal(3)
    idx.note('t|0', key('k0'), 3) // a known key: no new key
    expect(idx.winners('t|0', 0, 4)!.length).to.equal(3)
    idx.note('t|0', key('k9'), 4)
    expect(idx.winners('t|0', 0, 5)).to.equal(undefined)
    idx.track('t|0', 5)
    expect(idx.winners('t|0', 5, 5), 'not tracked again after the drop').to.equal(undefined)
    const none = new LatestIndex(0, log)
    none.track('t|0', 0)
    expect(none.winners('t|0', 0, 0)).to.equal(undefined)
  })

  it('covers a partition only from where its reader skipped records on (an out-of-range reset)', () => {
    const idx = new LatestIndex(100, log)
    idx.track('t|0', 0)
    idx.note('t|0', key('a'), 0)
    idx.note('t|0', key('b'), 1)
    // offsets 2..49 were never read (the reader's position went to the end of the log): a's latest may be among them
    idx.skipped('t|0', 50)
    idx.note('t|0', key('c'), 50)
    expect(idx.winners('t|0', 0, 51), 'a collapse from before the skip scans').to.equal(undefined)
    expect([...idx.winners('t|0', 50, 51)!]).to.deep.equal([50])
    expect([...idx.winners('t|0', 51, 51)!]).to.deep.equal([])
    expect(idx.keys, 'the keys before the skip stay (below the new start, they never answer)').to.equal(3)
    idx.skipped('t|1', 7)
    expect(idx.winners('t|1', 7, 8), 'a partition not tracked stays so').to.equal(undefined)
  })
})
