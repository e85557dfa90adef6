/**
 * Crash safety of the sink worker with workers in child processes: kill -9 mid-stream and a restart
 * lose nothing (every event reaches every subscription, per-key order intact, duplicates only with
 * the same webhook-id), and when two workers share the subscriptions and one is killed, the other
 * takes its subscriptions over within seconds, from their cursors.
 *
 * Not covered here: a broker restart mid-stream (it needs the lead's stack tooling; the shared
 * broker must not be stopped by a test).
 */
import { expect } from 'chai'
import { ADMIN, startSinkHarness, type SinkHarness } from '../helpers/sink-runtime.ts'
import { startReceiver, type Receiver } from '../helpers/receiver.ts'
import { waitFor } from '../helpers/env.ts'
import { expectPerKeyOrder, levels, verified } from '../helpers/sink-assertions.ts'

describe('sink worker: crash safety with worker processes', function () {
  this.timeout(240_000)
  let h: SinkHarness
  const receivers: Receiver[] = []

  beforeEach(async () => {
    h = await startSinkHarness()
  })
  afterEach(async () => {
    await h.close()
    await Promise.all(receivers.splice(0).map((r) => r.close()))
  })

  const produceSteadily = async (total: number, keys: number, perBatch: number, gapMs: number, onBatch?: (sent: number) => Promise<void> | void, from = 0) => {
    const ids: string[] = []
    for (let i = 0; i < total; i += perBatch) {
      ids.push(...(await h.produce(levels(Math.min(perBatch, total - i), keys, from + i))))
      await onBatch?.(i + perBatch)
      await new Promise((r) => setTimeout(r, gapMs))
    }
    return ids
  }

  const checkAll = (secret: string, rx: Receiver, ids: string[]) => {
    const got = verified(secret, rx)
    const byId = new Map<string, string>()
    for (const r of rx.received) {
      const id = String(r.headers['webhook-id'])
      const body = JSON.stringify(JSON.parse(r.body).data)
      if (byId.has(id)) expect(byId.get(id), `duplicate ${id} carries the same event`).to.equal(body)
      byId.set(id, body)
    }
    for (const id of ids) expect(byId.has(id), `event ${id} delivered`).to.equal(true)
    expectPerKeyOrder(got)
    return got.length - byId.size
  }

  it('kill -9 of the worker mid-stream, then a restart: every event reaches every subscription, in order per key', async () => {
    const subs: Array<{ id: string; secret: string; rx: Receiver }> = []
    for (const name of ['a', 'b']) {
      const rx = await startReceiver((_r, res) => setTimeout(() => res.writeHead(204).end(), 2))
      receivers.push(rx)
      subs.push({ ...(await h.subscribe({ name, url: rx.url })), rx })
    }
    let child = await h.childWorker('crash-1')
    await waitFor(async () => (await h.cp.getConnector(ADMIN, subs[0]!.id)).status?.state === 'running')
    let killed = false
    let restartedAt = 0
    const ids = await produceSteadily(300, 12, 20, 40, async (sent) => {
      if (!killed && sent >= 120) {
        killed = true
        child.kill('SIGKILL')
        await new Promise((r) => child.once('exit', r))
        child = await h.childWorker('crash-2')
        restartedAt = Date.now()
      }
    })
    for (const s of subs) await waitFor(() => new Set(s.rx.received.map((r) => String(r.headers['webhook-id']))).size >= 300, { what: `all events at ${s.id}`, timeoutMs: 90_000 })
    const caughtUpMs = Date.now() - restartedAt
    let dups = 0
    for (const s of subs) dups += checkAll(s.secret, s.rx, ids)
    // the killed worker's lease expired and the restarted one continued from the cursor
    expect((await h.cp.getConnector(ADMIN, subs[0]!.id)).status?.workerId).to.equal('crash-2')
    console.log(`      (duplicates after kill -9: ${dups}; everything delivered ${caughtUpMs} ms after the restarted worker was up)`)
    // Recovery means seconds (lease TTL 3 s here, then the claim and a catch-up reader); a generous
    // bound for a loaded 2-core machine (measured 3 to 6 s).
    expect(caughtUpMs, 'recovery after the restart').to.be.below(30_000)
  })

  it('two workers share the subscriptions; when one is killed, the other takes over its subscriptions within seconds', async () => {
    const subs: Array<{ id: string; secret: string; rx: Receiver }> = []
    for (let i = 0; i < 4; i++) {
      const rx = await startReceiver()
      receivers.push(rx)
      subs.push({ ...(await h.subscribe({ name: `s${i}`, url: rx.url })), rx })
    }
    const w1 = await h.childWorker('share-1')
    await h.childWorker('share-2')
    // both hold a share
    const owners = async () => Promise.all(subs.map(async (s) => (await h.cp.getConnector(ADMIN, s.id)).status?.workerId ?? null))
    await waitFor(async () => {
      const o = await owners()
      return o.filter((w) => w === 'share-1').length === 2 && o.filter((w) => w === 'share-2').length === 2
    }, { what: 'two subscriptions per worker', timeoutMs: 20_000 })
    const first = await h.produce(levels(40, 8))
    for (const s of subs) await waitFor(() => s.rx.received.length >= 40, { what: 'first events' })
    const killedAt = Date.now()
    w1.kill('SIGKILL')
    const second = await produceSteadily(60, 8, 10, 50, undefined, 40)
    await waitFor(async () => (await owners()).every((w) => w === 'share-2'), { what: 'take-over', timeoutMs: 30_000 })
    const tookOverMs = Date.now() - killedAt
    for (const s of subs) await waitFor(() => new Set(s.rx.received.map((r) => String(r.headers['webhook-id']))).size >= 100, { what: `all events at ${s.id}`, timeoutMs: 90_000 })
    const resumedMs = Date.now() - killedAt
    for (const s of subs) checkAll(s.secret, s.rx, [...first, ...second])
    // A generous bound (lease TTL 3 s here; measured 4.8 to 11.6 s on a loaded 2-core machine): the point is "seconds", not a figure.
    expect(tookOverMs, 'take-over time').to.be.below(25_000)
    // Every event, including those produced after the kill, delivered by the survivor: seconds too.
    expect(resumedMs, 'all delivered after the kill').to.be.below(30_000)
    console.log(`      (take-over after kill -9 in ${tookOverMs} ms; everything delivered after ${resumedMs} ms)`)
  })
})
