/** The snapshot bootstrap's pure parts: the key -> latest offset table, the winners, the restart decision, progress. */
import { expect } from 'chai'
import { countBelow, LatestOffsetTable } from '../../connectors/sink/scan.ts'
import { snapshotDecision, SnapshotRun, type SnapshotDoc } from '../../connectors/sink/snapshot.ts'

const key = (i: number) => Buffer.from(`{"sku":"SKU-${i}","locationId":"WH1"}`)

describe('snapshot: latest offset per key', () => {
  it('keeps only the latest deliverable record of every key, ascending', () => {
    const t = new LatestOffsetTable(16)
    // 5 keys updated 4 times each, interleaved: offsets 0..19, key = offset % 5
    for (let o = 0; o < 20; o++) t.set(key(o % 5), o, true)
    expect([...t.winners()]).to.deep.equal([15, 16, 17, 18, 19])
    expect(t.size).to.equal(5)
  })

  it('a later tombstone or unwanted type removes the key; an earlier offset never overwrites a later one', () => {
    const t = new LatestOffsetTable()
    t.set(key(1), 3, true)
    t.set(key(1), 7, false) // tombstone: the key is gone
    t.set(key(2), 9, true)
    t.set(key(2), 4, true) // fetched again out of order: ignored
    t.set(null, 5, true) // no key: its own state
    t.set(null, 6, false)
    expect([...t.winners()]).to.deep.equal([5, 9])
  })

  it('grows past many keys without losing any, and holds 200,000 keys in a few MB', () => {
    const t = new LatestOffsetTable()
    const n = 200_000
    for (let o = 0; o < 2 * n; o++) t.set(key(o % n), o, true)
    const w = t.winners()
    expect(w.length).to.equal(n)
    expect(w[0]).to.equal(n)
    expect(w[n - 1]).to.equal(2 * n - 1)
    expect(t.bytes).to.be.at.most((n * 20 * 2) / 0.75 + 1024)
  })

  it('countBelow is a binary search', () => {
    const a = new Float64Array([2, 5, 9])
    expect([0, 2, 3, 5, 9, 10].map((x) => countBelow(a, x))).to.deep.equal([0, 0, 1, 1, 2, 3])
    expect(countBelow(new Float64Array(0), 4)).to.equal(0)
  })
})

describe('snapshot: decision on start', () => {
  const base = { startFrom: 'snapshot', hasCursor: false, cursorResetId: null, applyingReset: null, existing: null }
  it('starts a snapshot for a new snapshot subscription, or a reset to snapshot; never for latest/earliest', () => {
    expect(snapshotDecision(base)).to.equal('new')
    expect(snapshotDecision({ ...base, startFrom: 'latest' })).to.equal('none')
    expect(snapshotDecision({ ...base, startFrom: 'earliest' })).to.equal('none')
    expect(
      snapshotDecision({ ...base, startFrom: 'latest', hasCursor: true, applyingReset: { id: 'r1', to: 'snapshot' } }),
    ).to.equal('new')
    expect(snapshotDecision({ ...base, hasCursor: true, applyingReset: { id: 'r1', to: 'earliest' } })).to.equal('none')
  })
  it('resumes an unfinished snapshot of the cursor’s reset; not a finished one, not another reset’s', () => {
    expect(snapshotDecision({ ...base, hasCursor: true, existing: { phase: 'delivering', resetId: null } })).to.equal(
      'resume',
    )
    expect(snapshotDecision({ ...base, hasCursor: true, existing: { phase: 'scanning', resetId: null } })).to.equal(
      'resume',
    )
    expect(snapshotDecision({ ...base, hasCursor: true, existing: { phase: 'live', resetId: null } })).to.equal('none')
    expect(
      snapshotDecision({
        ...base,
        hasCursor: true,
        cursorResetId: 'r2',
        existing: { phase: 'delivering', resetId: 'r1' },
      }),
    ).to.equal('none')
    expect(
      snapshotDecision({
        ...base,
        startFrom: 'latest',
        hasCursor: true,
        cursorResetId: 'r1',
        existing: { phase: 'delivering', resetId: 'r1' },
      }),
    ).to.equal('resume')
  })
})

describe('snapshot: a run', () => {
  const doc = (over: Partial<SnapshotDoc> = {}): SnapshotDoc => ({
    _id: 'sub_1',
    snapshotId: 'snp_1',
    resetId: null,
    highs: { 't|0': '10', 't|1': '4' },
    phase: 'scanning',
    total: null,
    done: 0,
    startedAt: new Date(),
    completedAt: null,
    workerId: 'w',
    updatedAt: new Date(),
    ...over,
  })

  it('below H only winners are wanted, from H on everything; progress counts keys done', () => {
    const run = new SnapshotRun(
      doc(),
      new Map([
        ['t|0', 0],
        ['t|1', 0],
      ]),
    )
    expect(run.progress({}).total).to.equal(14) // scanning: records below H
    run.scannedAll(
      new Map([
        ['t|0', new Float64Array([3, 8, 9])],
        ['t|1', new Float64Array([2])],
      ]),
    )
    expect(run.phase).to.equal('delivering')
    expect([0, 3, 4, 8, 9, 10, 11].map((o) => run.wants('t|0', o))).to.deep.equal([
      false,
      true,
      false,
      true,
      true,
      true,
      true,
    ])
    expect(run.wants('t|2', 0), 'a partition outside the snapshot').to.equal(true)
    expect(run.progress({ 't|0': '9', 't|1': '0' })).to.include({ phase: 'delivering', done: 2, total: 4 })
    expect(run.complete({ 't|0': '9', 't|1': '4' })).to.equal(false)
    expect(run.complete({ 't|0': '10', 't|1': '4' })).to.equal(true)
    run.finished()
    expect(run.progress({})).to.include({ phase: 'live', done: 4, total: 4 })
  })

  it('a resumed run keeps the first total and counts what was done before it', () => {
    // first run found 10 keys; the cursor is past 6 of them, so the re-scan from the cursor finds 4
    const run = new SnapshotRun(
      doc({ phase: 'delivering', total: 10 }),
      new Map([
        ['t|0', 5],
        ['t|1', 4],
      ]),
    )
    run.scannedAll(
      new Map([
        ['t|0', new Float64Array([6, 7, 8, 9])],
        ['t|1', new Float64Array(0)],
      ]),
    )
    expect(run.progress({ 't|0': '5', 't|1': '4' })).to.include({ done: 6, total: 10 })
    expect(run.progress({ 't|0': '8', 't|1': '4' })).to.include({ done: 8, total: 10 })
  })
})
