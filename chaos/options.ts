/**
 * The chaos runner's options: the mode (full by default, --short for CI), how many events at what
 * rate, and where its data goes. Flags win over CHAOS_* environment variables; every value is
 * validated with an error naming the flag and the variable.
 */
import path from 'node:path'
import { parseArgs } from 'node:util'
import { PROJECT_ROOT } from '../stack/index.ts'

export type Mode = 'full' | 'short'

/** How long each part of the scenario lasts in a mode, in milliseconds. */
export interface Timings {
  /**
   * Publishing before the baseline, not measured: the subscriptions' readers join the shared stream, the JIT warms up.
   */
  warmupMs: number
  /** The quiet phase at the start whose latencies are the baseline. */
  baselineMs: number
  /** After each fault: no fault, time for the platform to recover before the next one. */
  quietMs: number
  /** A worker killed with -9 stays dead this long before its replacement starts. */
  workerDownMs: number
  /** A broker killed with -9 (or stopped gracefully) stays down this long before `stack up`. */
  brokerDownMs: number
  /** The control-plane store is stopped this long. */
  storeDownMs: number
  /** Partner C answers 500, partner D hangs, partner E's name does not resolve, each this long. */
  partnerFaultMs: number
  /** After publishing ends: how long the runner waits for every accepted event to arrive. */
  drainMs: number
}

export const TIMINGS: Record<Mode, Timings> = {
  // ≥ 100,000 events, every fault once, about 30 minutes with provisioning and the drain
  full: {
    warmupMs: 30_000,
    baselineMs: 60_000,
    quietMs: 120_000,
    workerDownMs: 10_000,
    brokerDownMs: 30_000,
    storeDownMs: 60_000,
    partnerFaultMs: 60_000,
    drainMs: 300_000,
  },
  // CI: a few thousand events, every fault once, about 5 minutes
  short: {
    warmupMs: 10_000,
    baselineMs: 15_000,
    quietMs: 10_000,
    workerDownMs: 4_000,
    brokerDownMs: 5_000,
    storeDownMs: 15_000,
    partnerFaultMs: 15_000,
    drainMs: 120_000,
  },
}

export const DEFAULT_EVENTS: Record<Mode, number> = { full: 100_000, short: 4_000 }

/** Publishing may outlast the faults (a quiet tail), within this bound. */
export const MAX_PUBLISH_MS: Record<Mode, number> = { full: 40 * 60_000, short: 6 * 60_000 }

export interface ChaosOptions {
  mode: Mode
  /** Events to publish (accepted, i.e. answered 202), over both publishers. */
  events: number
  /** Events per second, over both publishers. */
  rate: number
  timings: Timings
  /** Folder of this run (stack, logs, report): <dir>/<run id>. */
  dir: string
  /** Keep the run's Kafka and FerretDB data after a passing run (a failing run always keeps it). */
  keepData: boolean
  /** Progress lines (default: stderr). */
  say: (msg: string) => void
  /** Aborts the run (Ctrl-C); it then stops what it started and rejects. */
  signal?: AbortSignal
}

export class ChaosOptionError extends Error {}

/** How long the faults and quiet phases of a mode take, in milliseconds (the publisher must cover it). */
export function scenarioMs(t: Timings): number {
  const faults = 2 * t.workerDownMs + 2 * t.brokerDownMs + t.storeDownMs + 3 * t.partnerFaultMs
  return t.warmupMs + t.baselineMs + faults + 8 * t.quietMs
}

function positiveInt(raw: string | undefined, what: string): number | undefined {
  if (raw === undefined || raw === '') return undefined
  if (!/^\d+$/.test(raw.trim()) || Number(raw) <= 0)
    throw new ChaosOptionError(`${what} must be a positive whole number, got "${raw}"`)
  return Number(raw)
}

export const USAGE = `usage: npm run chaos -- [--short] [--events N] [--rate R] [--dir DIR] [--keep-data]

  --short        the CI scenario: a few thousand events, every fault once, about 5 minutes
                 (default: the full run, ${DEFAULT_EVENTS.full.toLocaleString('en-US')} events, about 30 minutes)
  --events N     events to publish (CHAOS_EVENTS; default ${DEFAULT_EVENTS.full} full, ${DEFAULT_EVENTS.short} short)
  --rate R       events per second (CHAOS_RATE; default: N spread over the scenario's faults)
  --dir DIR      where runs keep their stack, logs and report (CHAOS_DIR; default .stack/chaos)
  --keep-data    keep the run's Kafka and FerretDB data after a passing run
`

export function parseOptions(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  say: (msg: string) => void = (m) => process.stderr.write(m + '\n'),
): ChaosOptions {
  let values: Record<string, string | boolean | undefined>
  try {
    values = parseArgs({
      args: argv,
      options: {
        short: { type: 'boolean', default: false },
        events: { type: 'string' },
        rate: { type: 'string' },
        dir: { type: 'string' },
        'keep-data': { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    }).values
  } catch (err) {
    throw new ChaosOptionError((err as Error).message)
  }
  if (values.help) throw new ChaosOptionError('')
  const mode: Mode = values.short || env.CHAOS_SHORT === '1' ? 'short' : 'full'
  const timings = TIMINGS[mode]
  const events =
    positiveInt(values.events as string | undefined, '--events') ??
    positiveInt(env.CHAOS_EVENTS, 'CHAOS_EVENTS') ??
    DEFAULT_EVENTS[mode]
  const scenario = scenarioMs(timings)
  // by default the events are spread over the scenario, so that every phase publishes
  const rate =
    positiveInt(values.rate as string | undefined, '--rate') ??
    positiveInt(env.CHAOS_RATE, 'CHAOS_RATE') ??
    Math.max(1, Math.floor(events / (scenario / 1000)))
  if (rate > 2000)
    throw new ChaosOptionError(`--rate (CHAOS_RATE) is ${rate} events/s; at most 2000 on a shared machine`)
  const publishMs = (events / rate) * 1000
  if (publishMs < scenario) {
    throw new ChaosOptionError(
      `${events} events at ${rate}/s last ${Math.round(publishMs / 1000)} s, ` +
        `shorter than the ${mode} scenario's ${Math.round(scenario / 1000)} s of ` +
        `faults: raise --events (CHAOS_EVENTS) or lower --rate (CHAOS_RATE)`,
    )
  }
  if (publishMs > MAX_PUBLISH_MS[mode]) {
    throw new ChaosOptionError(
      `${events} events at ${rate}/s last ${Math.round(publishMs / 60_000)} min; ` +
        `the ${mode} run publishes for ${MAX_PUBLISH_MS[mode] / 60_000} min at most: ` +
        `raise --rate (CHAOS_RATE) or lower --events (CHAOS_EVENTS)`,
    )
  }
  const dirRaw = (values.dir as string | undefined) ?? (env.CHAOS_DIR || undefined)
  if (dirRaw !== undefined && dirRaw.trim() === '') throw new ChaosOptionError('--dir (CHAOS_DIR) must not be empty')
  return {
    mode,
    events,
    rate,
    timings,
    dir: path.resolve(dirRaw ?? path.join(PROJECT_ROOT, '.stack', 'chaos')),
    keepData: values['keep-data'] === true,
    say,
  }
}
