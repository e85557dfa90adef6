/**
 * Rows/s from a stock file into Kafka through the CSV drop source (streaming parse, header mapping,
 * Avro, acks=all, resume point after each batch) with the peak RSS of its process, beside raw kafkajs
 * producing the same messages pre-encoded (Avro key and value, the nine envelope headers and the
 * position header the source puts on every row, each batch built before its send is timed) in the
 * same batch size, one request at a time, with the same producer settings (idempotent, acks=all, no
 * compression), in the same run, the arms alternating over two runs of the file after a warm-up.
 * Each arm runs in a child process of its own (bench/helpers/csv-arm-child.ts): both start alike, and
 * the RSS is the source's process, not this one (which writes the file and serves the registry). The
 * raw figure without headers is printed for reference. Rows: config bench.csvRows (BENCH_CSV_ROWS;
 * 100000 by default, the full run is 1000000).
 */
import { loadConfig } from '../config/index.ts'
import { fork, type ChildProcess } from 'node:child_process'
import { buildBundle, ROOT } from '../cli/build.mjs'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { benchEnv } from './sources-common.ts'
import { figure, type Benchmark, type Figure } from './types.ts'

/** Rows per poll and per produce request, in both arms (the csv-drop default and the runner's maxBatch). */
const BATCH = 2000
const WARM_UP_ROWS = 20_000
const here = path.dirname(fileURLToPath(import.meta.url))

interface Reply {
  rssMb?: number
  sec?: number
  peakMb?: number
  error?: string
}

/** A child running one arm; `ask` sends a message and resolves with its answer. */
async function startArm(
  arm: 'platform' | 'raw',
  args: string[],
): Promise<{ child: ChildProcess; rssMb: number; ask(msg: object): Promise<Reply> }> {
  // config bench.csvCpuProf (BENCH_CSV_CPU_PROF=<dir>): a V8 CPU profile of the platform arm's process is written there
  const profDir = loadConfig().bench.csvCpuProf
  const profile = arm === 'platform' && profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []
  // bundled like the platform (cli/build.mjs) and run by plain node, as `npm start` runs the platform
  const bundle = await buildBundle(
    path.join(here, 'helpers', 'csv-arm-child.ts'),
    path.join(ROOT, 'dist', 'bench', 'csv-arm-child.mjs'),
  )
  const child = fork(bundle, [arm, ...args], {
    execArgv: ['--enable-source-maps', ...profile],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const waiting: Array<{ resolve: (m: Reply) => void; reject: (e: Error) => void }> = []
  child.on('message', (m: Reply) => waiting.shift()?.resolve(m))
  child.on('exit', (code) =>
    waiting.splice(0).forEach((w) => w.reject(new Error(`csv ${arm} child exited with ${code}`))),
  )
  const next = () => new Promise<Reply>((resolve, reject) => waiting.push({ resolve, reject }))
  const ready = await next()
  return {
    rssMb: ready.rssMb ?? 0,
    child,
    async ask(msg) {
      const answer = next()
      child.send(msg)
      const r = await answer
      if (r.error !== undefined || r.sec === undefined) throw new Error(`csv ${arm} child: ${r.error ?? 'no answer'}`)
      return r
    },
  }
}

export const benchmark: Benchmark = {
  description:
    'CSV stock file → Kafka through the csv-drop source vs raw kafkajs with the ' +
    'same messages pre-encoded (headers included, same batch size), rows/s and ' +
    'peak RSS, each arm in its own process',
  async run(ctx): Promise<Figure[]> {
    const env = await benchEnv('csv')
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-csv-'))
    const arms: ChildProcess[] = []
    try {
      const rows = env.config.bench.csvRows
      const warmRows = Math.min(WARM_UP_ROWS, rows)
      const drop = path.join(dir, 'drop')
      fs.mkdirSync(drop)
      const template = path.join(dir, 'stock.template.csv')
      const warmFile = path.join(dir, 'stock.warm-up.csv')
      ctx.progress(`writing ${rows} rows`)
      const out = fs.createWriteStream(template)
      const header = 'Item,Warehouse,OnHand,Reserved,Available,Seq\r\n'
      const warm: string[] = [header]
      out.write(header)
      for (let i = 1; i <= rows; i++) {
        const line = `SKU-${i % 5000},DC-${i % 7},${i % 1000},${i % 10},${(i % 1000) - (i % 10)},${i}\r\n`
        if (i <= warmRows) warm.push(line)
        if (!out.write(line)) await new Promise<void>((r) => out.once('drain', () => r()))
      }
      await new Promise<void>((r) => out.end(() => r()))
      fs.writeFileSync(warmFile, warm.join(''))
      ctx.progress(`file: ${(fs.statSync(template).size / 1024 / 1024).toFixed(1)} MB`)

      const settings = {
        dir: drop,
        topic: env.topic.name,
        settleMs: 0,
        scanIntervalMs: 10,
        batchRows: BATCH,
        columns: {
          sku: 'Item',
          locationId: 'Warehouse',
          onHand: 'OnHand',
          reserved: 'Reserved',
          available: 'Available',
          sequence: 'Seq',
        },
        constants: { manufacturerId: 'acme', unitOfMeasure: 'EA' },
      }
      const args = [env.registryUrl, env.topic.name, drop, JSON.stringify(settings)]
      const platform = await startArm('platform', args)
      ctx.progress(`platform process: ${Math.round(platform.rssMb)} MB RSS once its modules are loaded`)
      const raw = await startArm('raw', args)
      arms.push(platform.child, raw.child)
      /** One platform run: the file dropped whole (renamed in), a fresh source and runner, until the file is done. */
      const platformRun = async (round: number | string, from = template) => {
        const file = path.join(dir, `stock-${round}.csv`)
        fs.copyFileSync(from, file)
        return platform.ask({ file, name: `stock-${round}.csv` })
      }

      // Warm-up, not measured: a first pass through each arm compiles its code paths.
      ctx.progress(`warm-up: ${warmRows} rows through each arm`)
      await platformRun('warm-up', warmFile)
      await raw.ask({ rows: warmRows, headers: true })
      // The arms alternate (platform, raw, platform, raw) so that load drift on a shared machine hits both.
      let platformSec = 0
      let rawSec = 0
      let peakMb = 0
      for (let round = 1; round <= 2; round++) {
        const p = await platformRun(round)
        ctx.progress(
          `round ${round}: platform ${Math.round(rows / p.sec!)} rows/s, peak RSS ${Math.round(p.peakMb!)} MB`,
        )
        platformSec += p.sec!
        peakMb = Math.max(peakMb, p.peakMb!)
        const r = await raw.ask({ rows, headers: true })
        ctx.progress(`round ${round}: raw kafkajs ${Math.round(rows / r.sec!)} rows/s`)
        rawSec += r.sec!
      }
      ctx.progress('raw kafkajs: pre-encoded rows without headers (reference)')
      const plain = await raw.ask({ rows, headers: false })
      return [
        figure('csv.rows', (2 * rows) / platformSec, 'rows/s', (2 * rows) / rawSec, 0.8),
        figure('csv.vs-raw-no-headers', (2 * rows) / platformSec, 'rows/s', rows / plain.sec!, null),
        figure('csv.peak-rss', peakMb, 'MB', null, 300, true),
      ]
    } finally {
      // each child stops its source when disconnected; the folder it watches goes only after it exited
      await Promise.all(
        arms.map((c) => {
          if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve()
          const exited = new Promise<void>((resolve) => {
            const kill = setTimeout(() => c.kill('SIGKILL'), 10_000)
            c.once('exit', () => {
              clearTimeout(kill)
              resolve()
            })
          })
          if (c.connected) c.disconnect()
          return exited
        }),
      )
      fs.rmSync(dir, { recursive: true, force: true })
      await env.close()
    }
  },
}
