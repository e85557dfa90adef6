import { expect } from 'chai'
import { OffsetTimes } from '../../connectors/sink/worker/offset-times.ts'

describe('offset times (connectors/sink/worker/offset-times.ts)', () => {
  it('interpolates between samples, clamps at the ends, and knows nothing of a partition it never saw', () => {
    const t = new OffsetTimes({ minGapMs: 0 })
    expect(t.timeOf('p', 5)).to.equal(undefined)
    t.note('p', 10, 1000)
    t.note('p', 20, 2000)
    expect(t.timeOf('p', 15)).to.equal(1500)
    expect(t.timeOf('p', 20)).to.equal(2000)
    expect(t.timeOf('p', 3), 'before the first sample: its time (an age too small, never too large)').to.equal(1000)
    expect(t.timeOf('p', 25), 'after the last: the last').to.equal(2000)
    expect(t.timeOf('q', 15)).to.equal(undefined)
  })

  it('keeps samples at least minGapMs apart and only for increasing offsets', () => {
    const t = new OffsetTimes({ minGapMs: 100 })
    t.note('p', 1, 1000)
    t.note('p', 2, 1050) // too close
    t.note('p', 0, 1200) // not increasing
    t.note('p', 3, 1100)
    expect(t.timeOf('p', 2)).to.equal(1050) // interpolated between 1@1000 and 3@1100
    expect(t.timeOf('p', 3)).to.equal(1100)
  })

  it('stays bounded over a long outage: thins the older half, still covering the whole range', () => {
    const t = new OffsetTimes({ minGapMs: 0, maxSamples: 16 })
    for (let i = 0; i < 1000; i++) t.note('p', i * 10, i * 1000)
    const at = t.timeOf('p', 5)!
    expect(at)
      .to.be.at.least(0)
      .and.at.most(1000 * 1000)
    // interpolation stays exact on the line every sample lies on
    for (const offset of [5, 1234, 5000, 9990]) expect(t.timeOf('p', offset)).to.be.closeTo(offset * 100, 1e-6)
  })
})
