/**
 * A benchmark measures the platform and a baseline in the same run and reports figures.
 * Benchmarks never fail on a timing: they print, and the reader compares with `goal`.
 */
import type { Progress } from '../cli/progress.ts'
export interface Figure {
  /** e.g. "serde.encode" */
  name: string
  value: number
  /** e.g. "ops/s", "ms", "MB" */
  unit: string
  /** The same quantity for the baseline, measured in the same run (null when the goal is an absolute bound). */
  baseline: number | null
  /** value / baseline (null without a baseline). */
  ratio: number | null
  /** The goal the issue sets: a ratio (e.g. 0.9) when there is a baseline, else an absolute bound in `unit`. */
  goal: number | null
  /** True where smaller is better (latency, memory). */
  lower: boolean
}

export interface BenchContext {
  /** Bounded run time per measured phase, in ms (benchmarks also warm up first). */
  durationMs: number
  /** Progress for the reader (stderr), never part of the figures. */
  progress(msg: string): void
  /** A counted long step (a bar with rate and ETA on a terminal, plain lines otherwise), on stderr. */
  meter(label: string, options?: { total?: number; unit?: string }): Progress
}

/** What bench/<name>.bench.ts exports as `benchmark`; its name is its file's (bench/run.ts). */
export interface Benchmark {
  description: string
  /** Its measured phase's length when `--duration-ms` is not given (default 5000). */
  defaultDurationMs?: number
  run(ctx: BenchContext): Promise<Figure[]>
}

export function figure(
  name: string,
  value: number,
  unit: string,
  baseline: number | null,
  goal: number | null,
  lower = false,
): Figure {
  const ratio = baseline === null || baseline === 0 ? null : value / baseline
  return { name, value, unit, baseline, ratio, goal, lower }
}
