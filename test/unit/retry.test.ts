import { expect } from 'chai'
import { DataError, PartnerRejectedError, RetriableError } from '../../common/errors.ts'
import {
  DEFAULT_DELIVERY_POLICY,
  STANDARD_WEBHOOKS_SCHEDULE_MS,
  maxAttempts,
  parseDuration,
  parseRetryAfter,
  parseSchedule,
  retryDelay,
  withRetry,
  type ExponentialPolicy,
  type SchedulePolicy,
} from '../../connectors/retry.ts'

const exp: ExponentialPolicy = { kind: 'exponential', maxAttempts: 4, initialDelayMs: 100, maxDelayMs: 300, multiplier: 2, jitter: 0, maxRetryAfterMs: 1000 }
const fast: ExponentialPolicy = { ...exp, initialDelayMs: 5, maxDelayMs: 20 }
const transient = () => new RetriableError('transient')

describe('retry policies', () => {
  it('follows the Standard Webhooks schedule by default: 8 attempts, 5 s ... 10 h', () => {
    expect(maxAttempts(DEFAULT_DELIVERY_POLICY)).to.equal(8)
    const noJitter: SchedulePolicy = { ...DEFAULT_DELIVERY_POLICY, jitter: 0 }
    const delays = [1, 2, 3, 4, 5, 6, 7].map((n) => retryDelay(noJitter, n, transient()))
    expect(delays).to.deep.equal([...STANDARD_WEBHOOKS_SCHEDULE_MS])
    expect(delays[0]).to.equal(5000)
    expect(delays[6]).to.equal(10 * 3600_000)
    expect(retryDelay(noJitter, 8, transient())).to.equal(undefined)
  })

  it('spreads schedule delays by the jitter fraction in both directions', () => {
    const p: SchedulePolicy = { kind: 'schedule', delaysMs: [1000], jitter: 0.2, maxRetryAfterMs: 0 }
    expect(retryDelay(p, 1, transient(), () => 0)).to.equal(800)
    expect(retryDelay(p, 1, transient(), () => 1)).to.equal(1200)
    expect(retryDelay(p, 1, transient(), () => 0.5)).to.equal(1000)
  })

  it('grows exponentially up to the cap, then stops after maxAttempts', () => {
    expect([1, 2, 3].map((n) => retryDelay(exp, n, transient()))).to.deep.equal([100, 200, 300])
    expect(retryDelay(exp, 4, transient())).to.equal(undefined)
    const jittered = { ...exp, jitter: 0.5 }
    expect(retryDelay(jittered, 3, transient(), () => 1)).to.equal(300) // capped even with jitter
  })

  it('honours Retry-After as a lower bound, capped by maxRetryAfterMs', () => {
    expect(retryDelay(exp, 1, new RetriableError('429', 700))).to.equal(700)
    expect(retryDelay(exp, 1, new RetriableError('429', 50))).to.equal(100)
    expect(retryDelay(exp, 1, new RetriableError('429', 86_400_000))).to.equal(1000)
  })

  it('never retries what isRetriable refuses', () => {
    expect(retryDelay(exp, 1, new DataError('bad'))).to.equal(undefined)
    expect(retryDelay(exp, 1, new PartnerRejectedError('no', 400))).to.equal(undefined)
    expect(retryDelay(exp, 1, new TypeError('bug'))).to.equal(undefined)
  })

  it('parses durations, schedules and Retry-After values', () => {
    expect(parseDuration('250ms')).to.equal(250)
    expect(parseDuration('5s')).to.equal(5000)
    expect(parseDuration('2h')).to.equal(7_200_000)
    expect(parseDuration('1d')).to.equal(86_400_000)
    expect(parseSchedule('5s, 5m,30m,2h,5h,10h,10h')).to.deep.equal([...STANDARD_WEBHOOKS_SCHEDULE_MS])
    expect(() => parseSchedule('5s,soon', 'subscription.retrySchedule')).to.throw(/subscription.retrySchedule\[1\]/)
    const now = Date.parse('2025-01-01T00:00:00Z')
    expect(parseRetryAfter('120', now)).to.equal(120_000)
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:30 GMT', now)).to.equal(30_000)
    expect(parseRetryAfter('Tue, 31 Dec 2024 00:00:00 GMT', now)).to.equal(0)
    expect(parseRetryAfter('soon', now)).to.equal(undefined)
    expect(parseRetryAfter(undefined, now)).to.equal(undefined)
  })
})

describe('withRetry', () => {
  it('retries retriable errors and returns the first success', async () => {
    let calls = 0
    const retries: number[] = []
    const out = await withRetry(
      async (attempt) => {
        calls++
        if (attempt < 3) throw transient()
        return 'ok'
      },
      fast,
      { onRetry: (i) => retries.push(i.attempt) },
    )
    expect(out).to.equal('ok')
    expect(calls).to.equal(3)
    expect(retries).to.deep.equal([1, 2])
  })

  it('throws the last error once exhausted', async () => {
    let calls = 0
    const err = await withRetry(async () => {
      calls++
      throw new RetriableError(`fail ${calls}`)
    }, fast).catch((e: unknown) => e)
    expect(calls).to.equal(4)
    expect((err as Error).message).to.equal('fail 4')
  })

  it('does not retry a non-retriable error', async () => {
    let calls = 0
    const err = await withRetry(async () => {
      calls++
      throw new TypeError('bug')
    }, fast).catch((e: unknown) => e)
    expect(calls).to.equal(1)
    expect(err).to.be.instanceOf(TypeError)
  })

  it('waits at least the Retry-After the peer asked for', async () => {
    const t0 = Date.now()
    let calls = 0
    await withRetry(async () => {
      if (++calls === 1) throw new RetriableError('429', 150)
    }, fast)
    expect(Date.now() - t0).to.be.at.least(140)
  })

  it('stops at once when the signal aborts during a wait', async () => {
    const ac = new AbortController()
    const slow: ExponentialPolicy = { ...exp, initialDelayMs: 10_000, maxDelayMs: 10_000 }
    const t0 = Date.now()
    setTimeout(() => ac.abort(new Error('stopping')), 50)
    const err = await withRetry(async () => {
      throw transient()
    }, slow, { signal: ac.signal }).catch((e: unknown) => e)
    expect((err as Error).message).to.equal('stopping')
    expect(Date.now() - t0).to.be.below(1000)
  })
})
