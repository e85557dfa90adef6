/**
 * `npm run bench` runs every benchmark in bench/ (files named *.bench.ts, each exporting
 * `benchmark`), each in a process of its own; `npm run bench -- <name> [--json] [--duration-ms N]`
 * runs one (several names: each in its own process, in turn).
 */
import { createProgress } from '../cli/progress.ts'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import type { Benchmark, Figure } from './types.ts'

const here = path.dirname(fileURLToPath(import.meta.url))

/** Every benchmark's name: its file name without .bench.ts. */
export function benchmarkNames(): string[] {
  return fs
    .readdirSync(here)
    .filter((f) => f.endsWith('.bench.ts'))
    .map((f) => f.slice(0, -'.bench.ts'.length))
    .sort()
}

/**
 * Loads the named benchmarks (default: all). Only their files are imported, so that a benchmark's
 * process (whose peak RSS some benchmarks report) holds no other benchmark's modules.
 */
export async function loadBenchmarks(names: string[] = benchmarkNames()): Promise<Array<{ name: string } & Benchmark>> {
  const out: Array<{ name: string } & Benchmark> = []
  for (const name of names) {
    const mod = (await import(pathToFileURL(path.join(here, `${name}.bench.ts`)).href)) as { benchmark?: Benchmark }
    if (mod.benchmark) out.push({ name, ...mod.benchmark })
  }
  return out
}

function fmt(n: number | null): string {
  if (n === null) return '-'
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US')
  return Number(n.toPrecision(3)).toString()
}

export function formatFigure(f: Figure): string {
  const meets =
    f.goal === null
      ? ''
      : f.ratio !== null
        ? f.lower
          ? f.ratio <= f.goal
          : f.ratio >= f.goal
        : f.lower
          ? f.value <= f.goal
          : f.value >= f.goal
  const goal =
    f.goal === null
      ? ''
      : `  goal ${f.lower ? '<=' : '>='} ` +
        `${fmt(f.goal)}${f.ratio !== null ? 'x' : ' ' + f.unit} ` +
        `${meets ? 'met' : 'NOT MET'}`
  return (
    `${f.name.padEnd(28)} ${fmt(f.value).padStart(12)} ${f.unit.padEnd(8)} ` +
    `baseline ${fmt(f.baseline).padStart(12)}  ratio ` +
    `${fmt(f.ratio).padStart(6)}${goal}`
  )
}

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    args: process.argv.slice(2),
    allowPositionals: true,
    options: { json: { type: 'boolean', default: false }, 'duration-ms': { type: 'string' } },
  })
  const known = benchmarkNames()
  const missing = positionals.filter((p) => !known.includes(p))
  if (missing.length > 0) {
    process.stderr.write(`unknown benchmark ${missing.join(', ')}; known: ${known.join(', ') || '(none)'}\n`)
    process.exit(2)
  }
  const names = positionals.length === 0 ? known : positionals
  if (names.length > 1) {
    // One process per benchmark, one after the other: a benchmark that reports its process's RSS (partners:
    // 242 MB alone) reported 443 MB after ingest and fanout had run in the same process, and JIT state and
    // heap growth of one benchmark must not tilt the next.
    let failed = 0
    for (const name of names) {
      const args = [
        ...process.execArgv,
        fileURLToPath(import.meta.url),
        name,
        ...process.argv.slice(2).filter((a) => !positionals.includes(a)),
      ]
      const code = await new Promise<number | null>((resolve) =>
        spawn(process.execPath, args, { stdio: 'inherit' }).once('exit', resolve),
      )
      if (code !== 0) failed++
    }
    process.exit(failed > 0 ? 1 : 0)
  }
  const chosen = await loadBenchmarks(names)
  const given = values['duration-ms'] === undefined ? undefined : Number(values['duration-ms'])
  if (given !== undefined && !(Number.isInteger(given) && given > 0)) {
    process.stderr.write(
      `--duration-ms must be a positive whole number of milliseconds, got ${values['duration-ms']}\n`,
    )
    process.exit(2)
  }
  for (const b of chosen) {
    const durationMs = given ?? b.defaultDurationMs ?? 5000
    process.stderr.write(`# ${b.name}: ${b.description}\n`)
    const figures = await b.run({
      durationMs,
      progress: (m) => process.stderr.write(`  ${m}\n`),
      meter: (label, o) => createProgress(`  ${label}`, o ?? {}),
    })
    for (const f of figures) process.stdout.write((values.json ? JSON.stringify(f) : formatFigure(f)) + '\n')
  }
  // the databases the benchmarks' sink harnesses made (a latency run leaves ~35 MB otherwise)
  const { dropPendingDatabases } = await import('../test/helpers/env.ts')
  await dropPendingDatabases()
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
      process.exit(1)
    },
  )
}
