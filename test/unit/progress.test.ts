import { expect } from 'chai'
import { createProgress, formatDuration } from '../../cli/progress.ts'

function fakeStream(isTTY: boolean) {
  const writes: string[] = []
  return { writes, stream: { isTTY, columns: 100, write: (s: string) => writes.push(s) } }
}

describe('progress display', () => {
  it(
    'plain mode (not a terminal): a line every interval with count, percentage, ' + 'rate and ETA, and a final line',
    () => {
      let t = 0
      const { writes, stream } = fakeStream(false)
      const p = createProgress('replay sub_1', { unit: 'events', total: 1000, stream, intervalMs: 2000, now: () => t })
      t = 1000
      p.update(100)
      t = 1500
      p.update(150) // within the interval: no line
      t = 3000
      p.update(300)
      t = 10_000
      p.update(1000)
      p.finish()
      expect(writes).to.have.length(4)
      expect(writes[0]).to.equal('replay sub_1: 100/1,000 events  10%  100 events/s  ETA 9s\n')
      expect(writes[1]).to.equal('replay sub_1: 300/1,000 events  30%  100 events/s  ETA 7s\n')
      expect(writes[2]).to.equal('replay sub_1: 1,000/1,000 events  100%  100 events/s  in 10s\n')
      expect(writes[3]).to.equal(writes[2])
      expect(writes.join('')).not.to.include('\r')
    },
  )

  it('terminal mode: one line redrawn in place with a bar, then a newline', () => {
    let t = 0
    const { writes, stream } = fakeStream(true)
    const p = createProgress('import', { unit: 'rows', total: 10, stream, now: () => t })
    t = 1000
    p.update(5)
    t = 2000
    p.update(10)
    p.finish()
    // eslint-disable-next-line no-control-regex -- the escape that clears the rest of the line
    expect(writes[0]).to.match(/^\rimport \[#+\.+\] 5\/10 rows {2}50% {2}5 rows\/s {2}ETA 1s\u001b\[K$/)
    expect(writes.at(-2)).to.match(/^\rimport \[#{10,}\] 10\/10 rows {2}100%/)
    expect(writes.at(-1)).to.equal('\n')
  })

  it('without a total: count and rate only; a finish message replaces the counts', () => {
    let t = 0
    const { writes, stream } = fakeStream(false)
    const p = createProgress('bench', { stream, now: () => t })
    t = 2000
    p.update(42)
    p.finish('stopped')
    expect(writes).to.deep.equal(['bench: 42 items  21 items/s  in 2s\n', 'bench: stopped\n'])
  })

  it('formats durations', () => {
    expect(formatDuration(59_400)).to.equal('59s')
    expect(formatDuration(61_000)).to.equal('1m01s')
    expect(formatDuration(3_725_000)).to.equal('1h02m')
    expect(formatDuration(Infinity)).to.equal('?')
  })
})
