import fs from 'node:fs'
import path from 'node:path'
import { expect } from 'chai'
import { PROJECT_ROOT } from '../../common/paths.ts'
import { DataError, PartnerRejectedError, RetriableError } from '../../common/errors.ts'
import {
  backoffDelay,
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

const exp: ExponentialPolicy = {
  kind: 'exponential',
  maxAttempts: 4,
  initialDelayMs: 100,
  maxDelayMs: 300,
  multiplier: 2,
  jitter: 0,
  maxRetryAfterMs: 1000,
}
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

describe('backoffDelay: the one exponential backoff', () => {
  it('doubles from the first delay up to the cap, for any number of failures', () => {
    const b = { initialDelayMs: 500, maxDelayMs: 10_000 }
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelay(b, n))).to.deep.equal([
      500, 1000, 2000, 4000, 8000, 10_000, 10_000,
    ])
    // a loop that retries for days: the power overflows to Infinity, the delay stays the cap
    expect(backoffDelay(b, 5000)).to.equal(10_000)
    expect(backoffDelay({ initialDelayMs: 0, maxDelayMs: 100 }, 5000)).to.equal(0)
    expect(backoffDelay({ initialDelayMs: 100, maxDelayMs: 1000, multiplier: 3 }, 3)).to.equal(900)
    expect(backoffDelay({ initialDelayMs: 100, maxDelayMs: 1000, multiplier: 1 }, 9)).to.equal(100)
  })

  it('spreads each delay by the jitter fraction, never above the cap', () => {
    const b = { initialDelayMs: 100, maxDelayMs: 1000, jitter: 0.5 }
    expect(backoffDelay(b, 2, () => 0)).to.equal(100)
    expect(backoffDelay(b, 2, () => 0.5)).to.equal(200)
    expect(backoffDelay(b, 2, () => 1)).to.equal(300)
    expect(backoffDelay(b, 10, () => 1)).to.equal(1000)
    expect(backoffDelay({ ...b, jitter: 1 }, 1, () => 0)).to.equal(0)
  })

  it('is what the exponential retry policy waits (Retry-After aside)', () => {
    for (let n = 1; n < exp.maxAttempts; n++) expect(retryDelay(exp, n, transient())).to.equal(backoffDelay(exp, n))
  })

  it('refuses a backoff that cannot be waited, naming the field', () => {
    expect(() => backoffDelay({ initialDelayMs: -1, maxDelayMs: 10 }, 1)).to.throw(/initialDelayMs/)
    expect(() => backoffDelay({ initialDelayMs: 100, maxDelayMs: 10 }, 1)).to.throw(/maxDelayMs/)
    expect(() => backoffDelay({ initialDelayMs: 1, maxDelayMs: 10, multiplier: 0.5 }, 1)).to.throw(/multiplier/)
    expect(() => backoffDelay({ initialDelayMs: 1, maxDelayMs: 10, jitter: 2 }, 1)).to.throw(/jitter/)
    expect(() => backoffDelay({ initialDelayMs: 1, maxDelayMs: 10 }, 0)).to.throw(/failedAttempts/)
    expect(() => backoffDelay({ initialDelayMs: Number.NaN, maxDelayMs: 10 }, 1)).to.throw(/initialDelayMs/)
  })

  it('is the only doubling of a delay in the runtime code', () => {
    // Retry loops take their delays from backoffDelay (issue 22: the sources and the runtime each
    // rolled their own doubling). A delay doubled by hand, or a power of two times a delay, fails here.
    const offenders: string[] = []
    const roots = ['api', 'cli', 'common', 'connectors', 'consumers', 'control-plane', 'producers', 'schemas', 'stack']
    const walk = (dir: string): string[] =>
      fs
        .readdirSync(dir, { withFileTypes: true })
        .flatMap((e) =>
          e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
        )
    for (const file of roots.flatMap((r) => walk(path.join(PROJECT_ROOT, r)))) {
      if (file.endsWith(path.join('connectors', 'retry.ts'))) continue
      fs.readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (/(delay|backoff|wait)\w*\s*\*=?\s*2\b|\b2\s*\*\*\s*[A-Za-z_(]/i.test(line)) {
            offenders.push(`${path.relative(PROJECT_ROOT, file)}:${i + 1}: ${line.trim()}`)
          }
        })
    }
    expect(offenders).to.deep.equal([])
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
    const err = await withRetry(
      async () => {
        throw transient()
      },
      slow,
      { signal: ac.signal },
    ).catch((e: unknown) => e)
    expect((err as Error).message).to.equal('stopping')
    expect(Date.now() - t0).to.be.below(1000)
  })
})
