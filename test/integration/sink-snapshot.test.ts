/**
 * Snapshot bootstrap (issue #6) against real Kafka, FerretDB and webhook receivers: a partner that
 * subscribes mid-stream receives the latest record of every key below the captured high watermarks,
 * then every change after them: no gap, no key version twice, progress visible in the connector
 * status up to its total; a kill -9 mid-snapshot resumes it; an offset reset to 'snapshot' re-runs it;
 * startFrom 'latest' and 'earliest' are unchanged.
 */
import { expect } from 'chai'
import { connectorStatusView } from '../../api/management/http.ts'
import type { SnapshotProgress } from '../../control-plane/types.ts'
import { SNAPSHOT_COLLECTION, SnapshotStore } from '../../connectors/sink/snapshot.ts'
import { scanLatest } from '../../connectors/sink/scan.ts'
import { createTopicsReady } from '../../common/kafka/admin.ts'
import { testKafka, uniqueName, waitFor } from '../helpers/env.ts'
import { deleteTopics } from '../helpers/registry.ts'
import { startReceiver, type Receiver } from '../helpers/receiver.ts'
import { ADMIN, startSinkHarness, type Level, type SinkHarness } from '../helpers/sink-runtime.ts'
import { levels, verified, type Got } from '../helpers/sink-assertions.ts'

/** Per key, the sequences received (first delivery of each event id), in arrival order. */
function perKey(got: Got[]): Map<string, number[]> {
  const seen = new Set<string>()
  const out = new Map<string, number[]>()
  for (const g of got) {
    if (seen.has(g.id)) continue
    seen.add(g.id)
    out.set(g.sku, [...(out.get(g.sku) ?? []), g.seq])
  }
  return out
}

/**
 * The snapshot-then-live contract, per key: what arrived is a contiguous suffix of what was produced
 * for the key (no gap, in order), it starts at or after the key's last version produced before the
 * subscription existed (older versions are never sent), and it ends at the key's current state.
 */
function expectSnapshotThenLive(got: Got[], produced: Level[], before: Level[]): void {
  const all = new Map<string, number[]>()
  for (const l of produced) all.set(l.sku, [...(all.get(l.sku) ?? []), l.seq])
  const lastBefore = new Map<string, number>()
  for (const l of before) lastBefore.set(l.sku, l.seq)
  const received = perKey(got)
  expect([...received.keys()].sort(), 'keys received').to.deep.equal([...all.keys()].sort())
  for (const [sku, seqs] of all) {
    const r = received.get(sku)!
    const start = seqs.indexOf(r[0]!)
    expect(start, `${sku}: first received ${r[0]} was produced`).to.be.at.least(0)
    expect(r, `${sku}: a contiguous suffix (no gap, in order)`).to.deep.equal(seqs.slice(start))
    if (lastBefore.has(sku))
      expect(r[0]!, `${sku}: nothing older than its state at subscription time`).to.be.at.least(lastBefore.get(sku)!)
    expect(r[r.length - 1], `${sku}: ends at the current state`).to.equal(seqs[seqs.length - 1])
  }
}

const slow = (ms: number) => (_r: unknown, res: { writeHead(n: number): { end(): void } }) =>
  setTimeout(() => res.writeHead(204).end(), ms)

describe('sink worker: snapshot bootstrap', function () {
  this.timeout(120_000)
  let h: SinkHarness
  const receivers: Receiver[] = []
  const rx = async (delayMs = 0) => {
    const r = await startReceiver(delayMs > 0 ? slow(delayMs) : undefined)
    receivers.push(r)
    return r
  }
  const statusView = async (id: string) => connectorStatusView(await h.cp.getConnector(ADMIN, id))

  beforeEach(async () => {
    h = await startSinkHarness()
  })
  afterEach(async () => {
    await h.close()
    await Promise.all(receivers.splice(0).map((r) => r.close()))
  })

  it(
    'a partner subscribing mid-stream gets each key once as its current state, ' +
      'then live changes: no gap, no version twice, progress up to total',
    async () => {
      await h.worker()
      // 40 keys updated 5 times before the partner subscribes
      const before = levels(200, 40)
      await h.produce(before)
      const r = await rx(15)
      const s = await h.subscribe({ name: 'snap', url: r.url, startFrom: 'snapshot' })
      // progress as the API shows it, sampled while the snapshot runs
      const seen: SnapshotProgress[] = []
      const states = new Set<string>()
      let sampling = true
      const sampler = (async () => {
        while (sampling) {
          const v = await statusView(s.id)
          if (v.snapshot) seen.push(v.snapshot as SnapshotProgress)
          states.add(v.state)
          await new Promise((res) => setTimeout(res, 100))
        }
      })()
      // keys keep changing while the snapshot runs (3 more versions each, in small batches)
      const during: Level[] = []
      for (let i = 0; i < 6; i++) {
        const batch = levels(20, 40, 200 + i * 20)
        during.push(...batch)
        await h.produce(batch)
        await new Promise((res) => setTimeout(res, 150))
      }
      const produced = [...before, ...during]
      const current = new Map(produced.map((l) => [l.sku, l.seq]))
      await waitFor(
        () => {
          const last = new Map<string, number>()
          for (const g of verified(s.secret, r)) last.set(g.sku, Math.max(last.get(g.sku) ?? -1, g.seq))
          return [...current].every(([sku, seq]) => last.get(sku) === seq)
        },
        { what: 'every key at its current state', timeoutMs: 60_000 },
      )
      await waitFor(async () => (await statusView(s.id)).snapshot?.phase === 'live', { what: 'snapshot live' })
      sampling = false
      await sampler

      const got = verified(s.secret, r)
      expectSnapshotThenLive(got, produced, before)
      // a clean run: no event (key version) delivered twice
      expect(new Set(got.map((g) => g.id)).size, 'no webhook-id twice').to.equal(got.length)
      // older versions were skipped: far fewer deliveries than records
      expect(got.length).to.be.below(produced.length)

      // progress: visible while it ran, then complete with total = the keys below the high watermarks
      const final = (await statusView(s.id)).snapshot!
      expect(final.phase).to.equal('live')
      expect(final.total).to.equal(40)
      expect(final.done).to.equal(final.total)
      expect(final.completedAt).to.not.equal(null)
      expect(
        seen.some((p) => p.phase !== 'live'),
        `progress seen before completion: ${JSON.stringify(seen.slice(0, 3))}`,
      ).to.equal(true)
      for (const p of seen) expect(p.done).to.be.at.most(p.total)
      expect(states.has('snapshotting'), `states seen: ${[...states].join(',')}`).to.equal(true)
      expect((await statusView(s.id)).state).to.equal('running')
      // the durable record holds the high watermarks the snapshot used
      const doc = await new SnapshotStore(h.db).get(s.id)
      expect(Object.keys(doc!.highs)).to.have.length(h.topic.partitions)
      expect(doc!.total).to.equal(40)
    },
  )

  it('scans a partition larger than one fetch to its end (it was fetched from the same offset forever)', async () => {
    const topic = uniqueName('big-partition')
    const kafka = testKafka()
    const admin = kafka.admin()
    await admin.connect()
    const producer = kafka.producer()
    try {
      await createTopicsReady(admin, [{ topic, numPartitions: 1 }])
      await producer.connect()
      // 3,000 records of 2 KiB over 1,000 keys: 6 MB, several fetches of maxBytesPerPartition (1 MiB)
      const pad = 'x'.repeat(2048)
      for (let b = 0; b < 3; b++) {
        for (let part = 0; part < 1000; part += 250) {
          await producer.send({
            topic,
            messages: Array.from({ length: 250 }, (_, i) => ({ key: `k${part + i}`, value: `${b}:${pad}` })),
          }) // under the broker's 1 MB request limit
        }
      }
      const t0 = Date.now()
      let scanned = 0
      const scan = scanLatest({
        kafka,
        groupId: uniqueName('scan'),
        ranges: [{ topic, partition: 0, from: 0, high: 3000 }],
        deliverable: () => true,
        onScanned: (n) => (scanned += n),
        logger: h.logger,
      })
      const result = await Promise.race([
        scan.result,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error(`scan stalled at ${scanned} of 3000 records`)), 30_000),
        ),
      ]).finally(() => scan.abort())
      expect(scanned).to.equal(3000)
      // each key's latest record is the third round's: offsets 2000..2999
      const winners = [...result.get(`${topic}|0`)!]
      expect(winners).to.have.length(1000)
      expect(winners[0]).to.equal(2000)
      expect(winners.at(-1)).to.equal(2999)
      console.log(`      scanned 3,000 records (6 MB) in ${Date.now() - t0} ms`)
    } finally {
      await producer.disconnect()
      await admin.disconnect()
      await deleteTopics(topic)
    }
  })

  it(
    'the snapshot record keeps the high watermarks of dotted topic names ' + '(inventory.levels) in the store',
    async () => {
      const store = new SnapshotStore(h.db)
      const now = new Date()
      const highs = { 'inventory.levels|0': '12', 'inventory.levels|5': '7', 'partners.profiles|2': '0' }
      await store.put({
        _id: 'sub_dots',
        snapshotId: 'snp_1',
        resetId: null,
        highs,
        phase: 'delivering',
        total: 3,
        done: 1,
        startedAt: now,
        completedAt: null,
        workerId: 'w',
        updatedAt: now,
      })
      const back = await store.get('sub_dots')
      expect(back!.highs).to.deep.equal(highs)
      expect(back).to.include({ phase: 'delivering', total: 3, snapshotId: 'snp_1' })
      await store.delete('sub_dots')
      expect(await store.get('sub_dots')).to.equal(null)
    },
  )

  it(
    'a kill -9 mid-snapshot resumes it from the cursor: the current state of ' +
      'every key, no older version, duplicates only with the same event id',
    async () => {
      const before = levels(600, 150)
      await h.produce(before)
      // about 150 keys at ~100 ms each and 8 at a time: the snapshot delivers for about two seconds
      const r = await rx(100)
      const s = await h.subscribe({ name: 'snap', url: r.url, startFrom: 'snapshot' })
      let child = await h.childWorker('snap-1')
      await waitFor(() => new Set(r.received.map((x) => String(x.headers['webhook-id']))).size >= 30, {
        what: 'snapshot under way',
        timeoutMs: 30_000,
      })
      const mid = (await statusView(s.id)).snapshot
      child.kill('SIGKILL')
      await new Promise((res) => child.once('exit', res))
      const atKill = new Set(r.received.map((x) => String(x.headers['webhook-id']))).size
      expect(atKill, 'killed before the snapshot finished').to.be.below(150)
      const after = levels(150, 150, 600)
      await h.produce(after)
      child = await h.childWorker('snap-2')
      const produced = [...before, ...after]
      await waitFor(
        () =>
          perKey(verified(s.secret, r)).size === 150 &&
          [...perKey(verified(s.secret, r)).values()].every((seqs) => seqs[seqs.length - 1]! >= 600),
        {
          what: 'every key at its current state after the restart',
          timeoutMs: 60_000,
        },
      )
      await waitFor(async () => (await statusView(s.id)).snapshot?.phase === 'live', {
        what: 'snapshot live after resume',
        timeoutMs: 30_000,
      })
      const got = verified(s.secret, r)
      expectSnapshotThenLive(got, produced, before)
      // duplicates carry the same event (same id, same body)
      const byId = new Map<string, string>()
      for (const x of r.received) {
        const id = String(x.headers['webhook-id'])
        const body = JSON.stringify(JSON.parse(x.body).data)
        if (byId.has(id)) expect(byId.get(id), `duplicate ${id} is the same event`).to.equal(body)
        byId.set(id, body)
      }
      const st = await statusView(s.id)
      expect(st.workerId).to.equal('snap-2')
      expect(st.snapshot!.total).to.equal(150)
      expect(st.snapshot!.done).to.equal(150)
      expect(st.snapshot!.id, 'the same snapshot, resumed').to.equal(mid?.id)
      console.log(`      (delivered before the kill: ${atKill}; duplicates: ${got.length - byId.size})`)
    },
  ).timeout(240_000)

  it('an offset reset to snapshot re-sends each key once, as its current state, then continues live', async () => {
    await h.worker()
    const r = await rx()
    const s = await h.subscribe({ name: 'live', url: r.url, startFrom: 'earliest' })
    const first = levels(90, 15)
    const ids = await h.produce(first)
    await waitFor(() => new Set(verified(s.secret, r).map((g) => g.id)).size === 90, { what: 'first pass' })
    const latestId = new Map<string, string>()
    first.forEach((l, i) => latestId.set(l.sku, ids[i]!))
    r.received.splice(0)
    const c = await h.cp.resetConnector(ADMIN, s.id, 'snapshot', null)
    await waitFor(
      async () => (await statusView(s.id)).snapshot?.phase === 'live' && verified(s.secret, r).length >= 15,
      { what: 'snapshot after reset' },
    )
    const got = verified(s.secret, r)
    expect(got).to.have.length(15)
    // each key's latest version, with its original event id (a re-delivery of the same event)
    expect(new Set(got.map((g) => g.id))).to.deep.equal(new Set(latestId.values()))
    const st = await statusView(s.id)
    expect(st.snapshot).to.include({ phase: 'live', done: 15, total: 15 })
    expect((await h.cp.getConnector(ADMIN, s.id)).status?.appliedResetId).to.equal(c.offsetReset!.id)
    // then live
    r.received.splice(0)
    const more = await h.produce(levels(15, 15, 90))
    await waitFor(() => verified(s.secret, r).length >= 15, { what: 'live after the snapshot' })
    await new Promise((res) => setTimeout(res, 500))
    expect(
      verified(s.secret, r)
        .map((g) => g.id)
        .sort(),
    ).to.deep.equal([...more].sort())
  })

  it(
    "startFrom 'latest' and 'earliest' are unchanged: no snapshot, latest gets " +
      'only new records, earliest every record',
    async () => {
      const before = levels(60, 10)
      const beforeIds = await h.produce(before)
      const rl = await rx()
      const re = await rx()
      const sl = await h.subscribe({ name: 'latest', url: rl.url, startFrom: 'latest' })
      const se = await h.subscribe({ name: 'earliest', url: re.url, startFrom: 'earliest' })
      await h.worker()
      await waitFor(
        async () => (await statusView(sl.id)).state === 'running' && (await statusView(se.id)).state === 'running',
        { what: 'running' },
      )
      const afterIds = await h.produce(levels(30, 10, 60))
      await waitFor(
        () =>
          new Set(verified(se.secret, re).map((g) => g.id)).size === 90 &&
          new Set(verified(sl.secret, rl).map((g) => g.id)).size === 30,
        { what: 'deliveries' },
      )
      await new Promise((res) => setTimeout(res, 500))
      expect(new Set(verified(se.secret, re).map((g) => g.id))).to.deep.equal(new Set([...beforeIds, ...afterIds]))
      expect(new Set(verified(sl.secret, rl).map((g) => g.id))).to.deep.equal(new Set(afterIds))
      expect((await statusView(sl.id)).snapshot).to.equal(null)
      expect((await statusView(se.id)).snapshot).to.equal(null)
      expect(await h.db.collection(SNAPSHOT_COLLECTION).countDocuments({})).to.equal(0)
    },
  )
})
