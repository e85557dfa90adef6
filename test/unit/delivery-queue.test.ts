import v8 from 'node:v8'
import vm from 'node:vm'
import { expect } from 'chai'
import { EndpointDisabledError, PartnerRejectedError, RetriableError } from '../../common/errors.ts'
import { createLogger } from '../../common/logger.ts'
import { DeliveryQueue, type DeadLetterInfo, type DeliveryQueueEvents } from '../../connectors/sink/delivery-queue.ts'
import type { SinkRecord } from '../../connectors/sink/types.ts'
import type { SchedulePolicy } from '../../connectors/retry.ts'
import { waitFor } from '../helpers/env.ts'

const silent = createLogger({ write: () => {} })
const quick: SchedulePolicy = { kind: 'schedule', delaysMs: [20, 20, 20], jitter: 0, maxRetryAfterMs: 1000 }

function rec(offset: number, key: string | null, partition = 0, topic = 't'): SinkRecord {
  return {
    topic,
    partition,
    offset: String(offset),
    key,
    value: { n: offset },
    headers: {},
    eventId: `evt-${topic}-${partition}-${offset}`,
    eventType: 'test.event',
    timestamp: 0,
  }
}

function recorder() {
  const delivered: Array<{ sub: string; offset: string; key: string | null }> = []
  const dead: Array<{ sub: string; offset: string; info: DeadLetterInfo }> = []
  const events: string[] = []
  const handlers: DeliveryQueueEvents = {
    onDelivered: (sub, r) => delivered.push({ sub, offset: r.offset, key: r.key }),
    onDeadLetter: (sub, r, info) => {
      dead.push({ sub, offset: r.offset, info })
    },
    onParked: (sub) => events.push(`parked:${sub}`),
    onUnparked: (sub) => events.push(`unparked:${sub}`),
    onDisabled: (sub, i) => events.push(`disabled:${sub}:${i.reason}`),
  }
  return { delivered, dead, events, handlers }
}

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('DeliveryQueue', () => {
  let q: DeliveryQueue
  afterEach(() => q?.close())

  it('keeps per-key order across retries while other keys flow past the retrying one', async () => {
    const r = recorder()
    q = new DeliveryQueue(r.handlers, { logger: silent })
    let failsLeft = 2
    const seen: string[] = []
    q.addSubscription({
      id: 's',
      policy: quick,
      concurrency: 4,
      parkAfterFailures: 100,
      deliver: async (record) => {
        seen.push(record.offset)
        if (record.offset === '0' && failsLeft-- > 0) throw new RetriableError('flaky')
      },
    })
    q.enqueue('s', rec(0, 'A'))
    q.enqueue('s', rec(1, 'A'))
    q.enqueue('s', rec(2, 'B'))
    q.enqueue('s', rec(3, 'A'))
    q.enqueue('s', rec(4, 'B'))
    await waitFor(() => r.delivered.length === 5, { timeoutMs: 3000 })
    const a = r.delivered.filter((d) => d.key === 'A').map((d) => d.offset)
    const b = r.delivered.filter((d) => d.key === 'B').map((d) => d.offset)
    expect(a).to.deep.equal(['0', '1', '3'])
    expect(b).to.deep.equal(['2', '4'])
    // B finished while A's head was still retrying
    expect(r.delivered.findIndex((d) => d.offset === '4')).to.be.below(r.delivered.findIndex((d) => d.offset === '0'))
    // offset 1 was never attempted before 0 succeeded
    expect(seen.indexOf('1')).to.be.above(seen.lastIndexOf('0'))
    expect(q.safeOffset('s', 't', 0)).to.equal('5')
  })

  it('bounds concurrency per subscription and runs keys in parallel', async () => {
    const r = recorder()
    q = new DeliveryQueue(r.handlers, { logger: silent })
    let active = 0
    let peak = 0
    q.addSubscription({
      id: 's',
      concurrency: 3,
      deliver: async () => {
        active++
        peak = Math.max(peak, active)
        await tick(10)
        active--
      },
    })
    for (let i = 0; i < 30; i++) q.enqueue('s', rec(i, `k${i % 10}`))
    await waitFor(() => r.delivered.length === 30, { timeoutMs: 3000 })
    expect(peak).to.equal(3)
  })

  it(
    'reports the safe commit offset: the lowest offset not yet delivered or ' + 'dead-lettered, per partition',
    async () => {
      const r = recorder()
      q = new DeliveryQueue(r.handlers, { logger: silent })
      const gates = new Map<string, () => void>()
      q.addSubscription({
        id: 's',
        concurrency: 10,
        deliver: (record) => new Promise<void>((resolve) => gates.set(`${record.partition}:${record.offset}`, resolve)),
      })
      expect(q.safeOffset('s', 't', 0)).to.equal(undefined)
      for (const o of [10, 11, 12]) q.enqueue('s', rec(o, `k${o}`, 0))
      q.enqueue('s', rec(7, 'x', 1))
      q.skip('s', 't', 0, 13) // filtered out for this subscription
      await waitFor(() => gates.size === 4)
      expect(q.safeOffset('s', 't', 0)).to.equal('10')
      expect(
        q.safeOffset('s', 't', 0, 40),
        'a reader that left records out (seen 40): still 10 while 10 is pending',
      ).to.equal('10')
      expect(q.safeOffset('s', 't', 5, 40), 'a partition never offered anything: what the reader has seen').to.equal(
        '40',
      )
      gates.get('0:11')!()
      gates.get('0:12')!()
      await waitFor(() => r.delivered.length === 2)
      expect(q.safeOffset('s', 't', 0)).to.equal('10') // 10 still in flight: nothing above it may be committed
      gates.get('0:10')!()
      await waitFor(() => q.safeOffset('s', 't', 0) === '14')
      expect(
        q.safeOffset('s', 't', 0, 40),
        'nothing pending: the reader has offered everything below 40 that the subscription wants',
      ).to.equal('40')
      expect(q.safeOffset('s', 't', 0, 12), 'never below what was enqueued or skipped').to.equal('14')
      expect(q.safeOffset('s', 't', 1)).to.equal('7')
      gates.get('1:7')!()
      await waitFor(() => q.safeOffset('s', 't', 1) === '8')
      expect(q.positions('s')).to.deep.include.members([
        { topic: 't', partition: 0, offset: '14' },
        { topic: 't', partition: 1, offset: '8' },
      ])
      // an offset below what was seen is a redelivery: ignored
      expect(q.enqueue('s', rec(11, 'k11', 0))).to.equal(false)
    },
  )

  it('dead-letters a record after its schedule is exhausted, then its key moves on', async () => {
    const r = recorder()
    q = new DeliveryQueue(r.handlers, { logger: silent })
    const attempts = new Map<string, number>()
    q.addSubscription({
      id: 's',
      policy: quick,
      parkAfterFailures: 100,
      deliver: async (record) => {
        attempts.set(record.offset, (attempts.get(record.offset) ?? 0) + 1)
        if (record.offset === '0') throw new RetriableError('503')
      },
    })
    q.enqueue('s', rec(0, 'A'))
    q.enqueue('s', rec(1, 'A'))
    await waitFor(() => r.delivered.length === 1, { timeoutMs: 3000 })
    expect(r.dead).to.have.length(1)
    expect(r.dead[0]!.offset).to.equal('0')
    expect(r.dead[0]!.info.reason).to.equal('exhausted')
    expect(r.dead[0]!.info.attempts).to.equal(4)
    expect(attempts.get('0')).to.equal(4)
    expect(r.delivered[0]!.offset).to.equal('1')
    expect(q.safeOffset('s', 't', 0)).to.equal('2')
  })

  it('dead-letters a rejected record at once and does not commit past it until the dead letter is stored', async () => {
    let release!: () => void
    const stored = new Promise<void>((res) => (release = res))
    const dead: string[] = []
    q = new DeliveryQueue(
      {
        onDeadLetter: async (_s, record) => {
          await stored
          dead.push(record.offset)
        },
      },
      { logger: silent },
    )
    let calls = 0
    q.addSubscription({
      id: 's',
      deliver: async () => {
        calls++
        throw new PartnerRejectedError('400', 400)
      },
    })
    q.enqueue('s', rec(5, 'A'))
    await tick(50)
    expect(calls).to.equal(1)
    expect(q.safeOffset('s', 't', 0)).to.equal('5')
    release()
    await waitFor(() => dead.length === 1)
    expect(q.safeOffset('s', 't', 0)).to.equal('6')
  })

  it('retries storing a dead letter that failed', async () => {
    let tries = 0
    q = new DeliveryQueue(
      {
        onDeadLetter: async () => {
          if (++tries < 3) throw new Error('dlq down')
        },
      },
      { logger: silent },
    )
    q.addSubscription({ id: 's', deliver: async () => Promise.reject(new PartnerRejectedError('422', 422)) })
    q.enqueue('s', rec(0, 'A'))
    await waitFor(() => q.safeOffset('s', 't', 0) === '1', { timeoutMs: 5000 })
    expect(tries).to.equal(3)
  })

  it(
    'parks a subscription whose endpoint keeps failing: one probe at a time, no ' + 'fresh records, then resumes',
    async () => {
      const r = recorder()
      q = new DeliveryQueue(r.handlers, { logger: silent })
      let down = true
      let active = 0
      let peakWhileParked = 0
      const tried = new Set<string>()
      q.addSubscription({
        id: 's',
        policy: { kind: 'schedule', delaysMs: [30, 30, 30, 30, 30, 30, 30, 30, 30, 30], jitter: 0, maxRetryAfterMs: 0 },
        concurrency: 4,
        parkAfterFailures: 4,
        deliver: async (record) => {
          tried.add(record.offset)
          active++
          if (q.stats('s').status === 'parked') peakWhileParked = Math.max(peakWhileParked, active)
          await tick(2)
          active--
          if (down) throw new RetriableError('down')
        },
      })
      for (let i = 0; i < 40; i++) q.enqueue('s', rec(i, `k${i}`))
      await waitFor(() => r.events.includes('parked:s'))
      await tick(200)
      expect(tried.size).to.be.at.most(8) // the 40 keys were not all hammered
      expect(peakWhileParked).to.be.at.most(1)
      down = false
      await waitFor(() => r.delivered.length === 40, { timeoutMs: 5000 })
      expect(r.events).to.include('unparked:s')
      expect(q.stats('s').status).to.equal('active')
      expect(q.safeOffset('s', 't', 0)).to.equal('40')
    },
  )

  it('disables on EndpointDisabledError and holds the records (no retry, no dead letter) until enabled', async () => {
    const r = recorder()
    q = new DeliveryQueue(r.handlers, { logger: silent })
    let gone = true
    let calls = 0
    q.addSubscription({
      id: 's',
      concurrency: 1,
      deliver: async () => {
        calls++
        if (gone) throw new EndpointDisabledError('gone', '410')
      },
    })
    q.enqueue('s', rec(0, 'A'))
    q.enqueue('s', rec(1, 'B'))
    await waitFor(() => r.events.includes('disabled:s:gone'))
    await tick(100)
    expect(calls).to.equal(1)
    expect(r.dead).to.have.length(0)
    expect(q.stats('s')).to.include({ status: 'disabled', buffered: 2 })
    expect(q.safeOffset('s', 't', 0)).to.equal('0')
    gone = false
    q.enable('s')
    await waitFor(() => r.delivered.length === 2)
    expect(r.delivered.map((d) => d.offset)).to.deep.equal(['0', '1'])
  })

  it('disables a subscription failing for longer than disableAfterMs', async () => {
    const r = recorder()
    q = new DeliveryQueue(r.handlers, { logger: silent })
    q.addSubscription({
      id: 's',
      policy: quick,
      disableAfterMs: 50,
      parkAfterFailures: 100,
      deliver: async () => Promise.reject(new RetriableError('503')),
    })
    q.enqueue('s', rec(0, 'A'))
    await waitFor(() => r.events.includes('disabled:s:failing'), { timeoutMs: 3000 })
    expect(r.dead).to.have.length(0)
  })

  it('isolates subscriptions: one hanging does not delay another', async () => {
    const r = recorder()
    q = new DeliveryQueue(r.handlers, { logger: silent })
    q.addSubscription({ id: 'stuck', concurrency: 2, deliver: () => new Promise<void>(() => {}) })
    q.addSubscription({ id: 'ok', concurrency: 2, deliver: async () => {} })
    for (let i = 0; i < 100; i++) {
      q.enqueue('stuck', rec(i, `k${i}`))
      q.enqueue('ok', rec(i, `k${i}`))
    }
    await waitFor(() => r.delivered.filter((d) => d.sub === 'ok').length === 100, { timeoutMs: 2000 })
    expect(q.stats('stuck')).to.include({ inFlight: 2, buffered: 100 })
    expect(q.safeOffset('stuck', 't', 0)).to.equal('0')
    expect(q.safeOffset('ok', 't', 0)).to.equal('100')
  })

  it('pause holds deliveries; resume continues; removal aborts in-flight calls', async () => {
    const r = recorder()
    q = new DeliveryQueue(r.handlers, { logger: silent })
    let aborted = false
    q.addSubscription({ id: 's', deliver: async () => {} })
    q.pause('s')
    q.enqueue('s', rec(0, 'A'))
    await tick(30)
    expect(r.delivered).to.have.length(0)
    q.resume('s')
    await waitFor(() => r.delivered.length === 1)
    q.addSubscription({
      id: 'h',
      deliver: (_r, { signal }) =>
        new Promise<void>((_res, rej) =>
          signal.addEventListener('abort', () => {
            aborted = true
            rej(signal.reason)
          }),
        ),
    })
    q.enqueue('h', rec(0, 'A'))
    await tick(10)
    q.removeSubscription('h')
    expect(aborted).to.equal(true)
    expect(q.has('h')).to.equal(false)
  })

  it('holds 1,000 subscriptions cheaply', async () => {
    const r = recorder()
    q = new DeliveryQueue(r.handlers, { logger: silent })
    // what stays reachable, not the garbage of 10,000 deliveries a GC has not collected yet (Node 24's
    // collector left more of it behind than Node 20's: 23 KB per subscription measured before collection)
    v8.setFlagsFromString('--expose-gc')
    const gc = vm.runInNewContext('gc') as () => void
    gc()
    const before = process.memoryUsage().heapUsed
    for (let s = 0; s < 1000; s++) q.addSubscription({ id: `sub-${s}`, deliver: async () => {} })
    for (let i = 0; i < 10; i++) for (let s = 0; s < 1000; s++) q.enqueue(`sub-${s}`, rec(i, `k${i % 3}`))
    await waitFor(() => r.delivered.length === 10_000, { timeoutMs: 5000 })
    r.delivered.length = 0 // the recorder's own copies are not the queue's
    gc()
    const perSub = (process.memoryUsage().heapUsed - before) / 1000
    expect(perSub).to.be.below(20_000) // bytes of bookkeeping per subscription, generous
  })

  it(
    "inject: a record outside the positions runs in its key's lane (after what it " +
      'holds, before what comes later, never beside), resolves or rejects without a ' +
      'dead letter',
    async () => {
      const r = recorder()
      q = new DeliveryQueue(r.handlers, { logger: silent })
      const seen: string[] = []
      let inFlightA = 0
      let peakA = 0
      let release: () => void = () => {}
      q.addSubscription({
        id: 's',
        policy: quick,
        concurrency: 8,
        deliver: async (record) => {
          if (record.key === 'A') peakA = Math.max(peakA, ++inFlightA)
          if (record.offset === '5') await new Promise<void>((res) => (release = res))
          seen.push(`${record.key}:${record.offset}`)
          if (record.key === 'A') inFlightA--
        },
      })
      q.enqueue('s', rec(5, 'A')) // held in flight until released
      await tick(10)
      expect(q.inject('s', rec(1, 'A'), { ifLatest: true }), 'refused: its lane holds a newer record').to.equal(null)
      const watch = q.watch('s', rec(1, 'B'))
      const old = q.inject('s', rec(1, 'A'))! // queued behind offset 5
      q.enqueue('s', rec(6, 'A')) // and offset 6 behind it
      expect(watch.enqueuedSince()).to.equal(false)
      q.enqueue('s', rec(7, 'B'))
      expect(watch.enqueuedSince()).to.equal(true)
      watch.close()
      release()
      await old
      await waitFor(() => seen.length === 4)
      expect(seen.filter((x) => x.startsWith('A:'))).to.deep.equal(['A:5', 'A:1', 'A:6'])
      expect(peakA, 'one record of a key at a time').to.equal(1)
      expect(q.safeOffset('s', 't', 0), 'an injected record is no position').to.equal('8')
      // a failure rejects (after its own policy) and goes to no dead letter
      q.addSubscription({
        id: 'f',
        policy: quick,
        deliver: async () => Promise.reject(new PartnerRejectedError('no', 400)),
      })
      let err: unknown
      await q.inject('f', rec(1, 'A'), { policy: { ...quick, delaysMs: [] } })!.catch((e: unknown) => (err = e))
      expect(err).to.be.instanceOf(PartnerRejectedError)
      expect(r.dead).to.have.length(0)
      expect(q.buffered('f')).to.equal(0)
      // removal rejects what is still queued
      q.pause('f')
      const queued = q.inject('f', rec(2, 'A'))!
      q.removeSubscription('f')
      let removed: unknown
      await queued.catch((e: unknown) => (removed = e))
      expect(String(removed)).to.match(/removed from the delivery queue/)
    },
  )

  it(
    'starts at most rateLimitPerSecond deliveries per second (a burst of one ' +
      'second, then one every 1/rate s); unlimited without it',
    async () => {
      const run = async (rateLimitPerSecond: number | undefined) => {
        const r = recorder()
        q = new DeliveryQueue(r.handlers, { logger: silent })
        const starts: number[] = []
        const t0 = Date.now()
        q.addSubscription({
          id: 's',
          concurrency: 64,
          ...(rateLimitPerSecond !== undefined ? { rateLimitPerSecond } : {}),
          deliver: async () => void starts.push(Date.now() - t0),
        })
        for (let i = 0; i < 40; i++) q.enqueue('s', rec(i, `K${i}`))
        await tick(500)
        const early = starts.length
        await waitFor(() => r.delivered.length === 40, { timeoutMs: 10_000, what: 'every record delivered' })
        q.close()
        return { early, starts }
      }
      const unlimited = await run(undefined)
      expect(unlimited.early, 'without a limit every key starts at once').to.equal(40)
      const limited = await run(20)
      // a slow machine starts fewer, never more: upper bounds only
      expect(limited.early, 'within 0.5 s: the burst of 20 and about 10 more').to.be.at.most(31)
      expect(limited.starts.at(-1)!, 'the 40th start comes after about 1 s').to.be.at.least(900)
    },
  )
})
