/**
 * The one retry helper of the code base. Retry policies shared by every connector: exponential backoff
 * with jitter and a cap for short in-process retries, and an explicit schedule for long partner outages
 * (Standard Webhooks suggests now, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h). Only what `isRetriable`
 * accepts is retried, and a peer's Retry-After (carried by RetriableError.retryAfterMs) is honoured as a
 * lower bound.
 *
 * Loops that retry until they succeed or stop (a source's restart, a produce or commit the broker or the
 * store refused, a delivery-log write, a dead letter, the platform's startup) take their delays from
 * `backoffDelay`: nothing else in the code base doubles a delay of its own (issue 22).
 */
import { ConfigError, RetriableError, isRetriable } from '../common/errors.ts'
import { sleep } from '../common/timers.ts'

/** Delays that grow by `multiplier` from `initialDelayMs` up to `maxDelayMs`, with no limit on attempts. */
export interface Backoff {
  initialDelayMs: number
  maxDelayMs: number
  /** Default 2 (each delay doubles). */
  multiplier?: number
  /** 0..1, default 0: each delay is spread uniformly over ±jitter of itself (never above maxDelayMs). */
  jitter?: number
}

/** Delays between attempts grow by `multiplier` from `initialDelayMs` up to `maxDelayMs`. */
export interface ExponentialPolicy extends Backoff {
  kind: 'exponential'
  /** Attempts in all, the first included. */
  maxAttempts: number
  multiplier: number
  jitter: number
  /** Upper bound on a peer's Retry-After (a peer asking for a day waits this long instead). */
  maxRetryAfterMs: number
}

/** An explicit list of delays: delaysMs[i] is waited before attempt i + 2; attempts = length + 1. */
export interface SchedulePolicy {
  kind: 'schedule'
  delaysMs: readonly number[]
  jitter: number
  maxRetryAfterMs: number
}

export type RetryPolicy = ExponentialPolicy | SchedulePolicy

const SECOND = 1000
const MINUTE = 60 * SECOND
const HOUR = 60 * MINUTE

/** Standard Webhooks' suggested schedule after the immediate first attempt. */
export const STANDARD_WEBHOOKS_SCHEDULE_MS: readonly number[] = [
  5 * SECOND,
  5 * MINUTE,
  30 * MINUTE,
  2 * HOUR,
  5 * HOUR,
  10 * HOUR,
  10 * HOUR,
]

export const DEFAULT_DELIVERY_POLICY: SchedulePolicy = {
  kind: 'schedule',
  delaysMs: STANDARD_WEBHOOKS_SCHEDULE_MS,
  jitter: 0.1,
  maxRetryAfterMs: 2 * HOUR,
}

export const DEFAULT_SHORT_POLICY: ExponentialPolicy = {
  kind: 'exponential',
  maxAttempts: 5,
  initialDelayMs: 100,
  maxDelayMs: 5 * SECOND,
  multiplier: 2,
  jitter: 0.2,
  maxRetryAfterMs: 30 * SECOND,
}

/** `base` spread uniformly over ±jitter of itself. */
function spread(base: number, jitter: number, random: () => number): number {
  return base * (1 + jitter * (2 * random() - 1))
}

/**
 * How long to wait after `failedAttempts` failures in a row (1, 2, 3, ...): `initialDelayMs`, then
 * `multiplier` times the previous delay, never more than `maxDelayMs` (jitter included), in whole ms.
 * Throws on a backoff that cannot be waited (a field named): these are constants of the code, so a bad
 * one is a bug to see at once, not a loop that spins.
 */
export function backoffDelay(b: Backoff, failedAttempts: number, random: () => number = Math.random): number {
  const multiplier = b.multiplier ?? 2
  const jitter = b.jitter ?? 0
  if (!(b.initialDelayMs >= 0))
    throw new RangeError(`backoff.initialDelayMs: ${b.initialDelayMs} is not a delay (0 or more ms)`)
  if (!(b.maxDelayMs >= b.initialDelayMs))
    throw new RangeError(`backoff.maxDelayMs: ${b.maxDelayMs} is below initialDelayMs (${b.initialDelayMs})`)
  if (!(multiplier >= 1)) throw new RangeError(`backoff.multiplier: ${multiplier} would shrink the delays (1 or more)`)
  if (!(jitter >= 0 && jitter <= 1)) throw new RangeError(`backoff.jitter: ${jitter} is not a fraction (0..1)`)
  if (!Number.isInteger(failedAttempts) || failedAttempts < 1)
    throw new RangeError(`failedAttempts: ${failedAttempts} is not a count of failures (1 or more)`)
  // initialDelayMs 0 stays 0 (0 × Infinity would be NaN once the power overflows)
  const base =
    b.initialDelayMs === 0 ? 0 : Math.min(b.maxDelayMs, b.initialDelayMs * multiplier ** (failedAttempts - 1))
  return Math.max(0, Math.round(Math.min(b.maxDelayMs, spread(base, jitter, random))))
}

export function maxAttempts(policy: RetryPolicy): number {
  return policy.kind === 'schedule' ? policy.delaysMs.length + 1 : policy.maxAttempts
}

/**
 * How long to wait after `failedAttempts` attempts failed with `err`, or undefined when the policy
 * is exhausted or the error is not worth another try.
 */
export function retryDelay(
  policy: RetryPolicy,
  failedAttempts: number,
  err: unknown,
  random: () => number = Math.random,
): number | undefined {
  if (!isRetriable(err)) return undefined
  if (failedAttempts >= maxAttempts(policy)) return undefined
  let delay =
    policy.kind === 'schedule'
      ? spread(policy.delaysMs[failedAttempts - 1] ?? 0, policy.jitter, random)
      : backoffDelay(policy, failedAttempts, random)
  const after = err instanceof RetriableError ? err.retryAfterMs : undefined
  if (after !== undefined && after > delay) delay = Math.min(after, policy.maxRetryAfterMs)
  return Math.max(0, Math.round(delay))
}

export interface RetryOptions {
  signal?: AbortSignal
  /** Called before each wait, e.g. to log the failure. */
  onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void
  random?: () => number
}

/**
 * Runs `op` until it resolves, it throws something not retriable, the policy is exhausted (the last
 * error is thrown) or `signal` aborts (its reason is thrown, also in the middle of a wait).
 */
export async function withRetry<T>(
  op: (attempt: number, signal: AbortSignal | undefined) => Promise<T>,
  policy: RetryPolicy,
  options: RetryOptions = {},
): Promise<T> {
  const { signal } = options
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted()
    try {
      return await op(attempt, signal)
    } catch (err) {
      signal?.throwIfAborted()
      const delayMs = retryDelay(policy, attempt, err, options.random)
      if (delayMs === undefined) throw err
      options.onRetry?.({ attempt, delayMs, error: err })
      await sleep(delayMs, signal)
    }
  }
}

const UNIT_MS: Record<string, number> = { ms: 1, s: SECOND, m: MINUTE, h: HOUR, d: 24 * HOUR }

/** Parses a duration such as "250ms", "5s", "30m", "2h", "5d" (a bare number is milliseconds). */
export function parseDuration(text: string, field = 'duration'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text)
  if (!m) throw new ConfigError(`${field}: "${text}" is not a duration (e.g. 500ms, 5s, 30m, 2h, 1d)`, { field })
  return Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 'ms']!)
}

/** Parses a schedule such as "5s,5m,30m,2h,5h,10h,10h" into delays in milliseconds. */
export function parseSchedule(text: string, field = 'schedule'): number[] {
  const parts = text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '')
  if (parts.length === 0)
    throw new ConfigError(`${field}: a schedule needs at least one delay (e.g. 5s,5m,30m)`, { field })
  return parts.map((p, i) => parseDuration(p, `${field}[${i}]`))
}

/**
 * Parses an HTTP Retry-After value (delta-seconds or an HTTP date) into milliseconds from `now`;
 * undefined when absent or unreadable. A date in the past means "now" (0).
 */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value
  if (v === undefined) return undefined
  const t = v.trim()
  if (/^\d+$/.test(t)) return Number(t) * SECOND
  if (t === '') return undefined
  const at = Date.parse(t)
  if (Number.isNaN(at)) return undefined
  return Math.max(0, at - now)
}
