/**
 * `npm run fuzz`: Schemathesis against the management API and HTTP ingestion, as an outside fuzzer sees them.
 *
 * Installs Schemathesis (pinned, scripts/fuzz/requirements.txt) into a venv in the user cache, starts the
 * platform (`distributary start`, the shipped bundle) on free ports against the running stack with a database
 * of its own, makes fixtures through the API, runs `schemathesis run --checks all` on /v1/openapi.json once
 * with the bootstrap admin key and once with a publisher's key, stops the platform by its pid, drops the
 * database and prints a summary. Exit status 0 only when neither pass found a failure. docs/fuzzing.md.
 *
 *   npm run fuzz [-- --max-examples N] [--seed N] [--keep] [-- any other schemathesis run option]
 */
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { createMongoClient } from '../../common/clients.ts'
import { generateKeyRingEntry } from '../../common/secret-box.ts'
import { loadConfig } from '../../config/index.ts'
import { PROJECT_ROOT } from '../../stack/index.ts'
import { cliArgs } from '../../test/helpers/cli.ts'
import { freePortRange } from '../../test/helpers/env.ts'
import { createFixture } from './fixtures.ts'
import { schemathesisBin } from './venv.ts'

const CONFIG = path.join(PROJECT_ROOT, 'scripts', 'fuzz', 'schemathesis.toml')
const STATEFUL_CONFIG = path.join(PROJECT_ROOT, 'scripts', 'fuzz', 'stateful.toml')
const HOOKS = path.join(PROJECT_ROOT, 'scripts', 'fuzz', 'hooks.py')
const OUT = path.join(PROJECT_ROOT, 'test-results', 'fuzz') // git-ignored: the platform's log and the reports

const { values: opts, positionals: extra } = parseArgs({
  allowPositionals: true,
  options: {
    'max-examples': { type: 'string', default: '10' },
    seed: { type: 'string' },
    keep: { type: 'boolean', default: false }, // keep the database (to look at what the fuzzer made)
  },
})

const say = (msg: string) => process.stdout.write(`fuzz: ${msg}\n`)

/** The schemathesis executable and the platform's address, once known. */
const run = { bin: '', base: '' }

/** What summarize reads of Schemathesis' JSON report (schemathesis/cli/json_report.py). */
interface Report {
  running_time: number
  operations: { total: number; tested: number } | null
  test_cases: { generated: number }
  failures: Array<{ title: string; count: number; operations: string[] }>
  errors: Array<{ title: string; count: number }>
}

interface PassResult {
  name: string
  exitCode: number
  report: Report | undefined
}

async function main(): Promise<number> {
  fs.mkdirSync(OUT, { recursive: true })
  run.bin = schemathesisBin(say)
  const first = await freePortRange(2)
  const httpPort = first
  const database = `fuzz-${randomBytes(4).toString('hex')}`
  const adminKey = randomBytes(32).toString('base64url')
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ADMIN_API_KEY: adminKey,
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: String(httpPort),
    SCHEMA_REGISTRY_HOST: '127.0.0.1',
    SCHEMA_REGISTRY_PORT: String(first + 1),
    MONGODB_DATABASE: database,
    // its own key ring, not the stack's: nothing it seals outlives the run
    SECRETS_ENCRYPTION_KEYS: generateKeyRingEntry('fuzz'),
    URL_GUARD_ALLOWLIST: '127.0.0.1', // the fixture's webhook (the discard port of this host)
    // The fuzzer sends thousands of requests with one key and many wrong ones: the limits would answer 429
    // (documented, so not a failure) to most of them and hide what the handlers do.
    MANAGEMENT_RATE_LIMIT_PER_SECOND: '100000',
    MANAGEMENT_RATE_LIMIT_BURST: '100000',
    MANAGEMENT_KEY_ATTEMPTS_PER_SECOND: '0',
    LOG_LEVEL: 'warn',
  }
  const base = `http://127.0.0.1:${httpPort}`
  run.base = base
  const log = path.join(OUT, 'platform.log')
  say(`starting the platform on ${base} (database ${database}, log ${path.relative(PROJECT_ROOT, log)})`)
  const out = fs.openSync(log, 'w')
  const platform = spawn(process.execPath, cliArgs('start'), { cwd: PROJECT_ROOT, env, stdio: ['ignore', out, out] })
  fs.closeSync(out)
  const exited = new Promise<void>((resolve) => platform.once('exit', () => resolve()))
  const passes: PassResult[] = []
  try {
    await waitReady(base, exited, log)
    const fixture = await createFixture(base, adminKey)
    say(`fixtures made: ${Object.entries(fixture.ids).length} ids`)
    const pinned = (pass: 'admin' | 'publisher') => ({ ...fixture.ids, ...fixture.perPass[pass] })
    const phases = ['--phases', 'examples,coverage,fuzzing']
    passes.push(runPass('admin', adminKey, CONFIG, pinned('admin'), [...phases, ...extra]))
    passes.push(runPass('publisher', fixture.keys.publisher, CONFIG, pinned('publisher'), [...phases, ...extra]))
    // Chains of calls (an object created, then read, changed, deleted, read again) through the links Schemathesis
    // infers; without pinned ids, which would replace the ids the chain carries.
    passes.push(runPass('stateful', adminKey, STATEFUL_CONFIG, {}, ['--phases', 'stateful', ...extra]))
  } finally {
    say(`stopping the platform (pid ${platform.pid})`)
    platform.kill('SIGTERM')
    const stopped = await Promise.race([exited.then(() => true), sleep(30_000).then(() => false)])
    if (!stopped) {
      platform.kill('SIGKILL')
      await exited
    }
    if (!opts.keep) await dropDatabase(database)
  }
  return summarize(passes)
}

async function waitReady(base: string, exited: Promise<void>, log: string): Promise<void> {
  let gone = false
  void exited.then(() => (gone = true))
  const deadline = Date.now() + 180_000
  while (Date.now() < deadline) {
    if (gone) throw new Error(`the platform exited while starting; its log:\n${tail(log)}`)
    const res = await fetch(`${base}/ready`).catch(() => undefined)
    if (res?.ok) return
    await sleep(500)
  }
  throw new Error(`the platform was not ready within 180 s; its log:\n${tail(log)}`)
}

/**
 * One `schemathesis run` with the given key and configuration, the path ids in FUZZ_* variables (organizationId:
 * FUZZ_ORGANIZATION_ID) for the configuration to read; its JSON report says what it found.
 */
function runPass(name: string, key: string, config: string, ids: Record<string, string>, args: string[]): PassResult {
  const reportPath = path.join(OUT, `${name}.json`)
  fs.rmSync(reportPath, { force: true })
  const vars = Object.fromEntries(
    Object.entries(ids).map(([k, v]) => [`FUZZ_${k.replace(/([A-Z])/g, '_$1').toUpperCase()}`, v]),
  )
  const argv = [
    '--config-file',
    config,
    'run',
    `${run.base}/v1/openapi.json`,
    '--checks',
    'all',
    // replaced by the hooks' positive_data_acceptance_or_stateful_refusal (hooks.py says which refusals it admits)
    '--exclude-checks',
    'positive_data_acceptance',
    '--max-examples',
    opts['max-examples']!,
    ...(opts.seed ? ['--seed', opts.seed] : []),
    '--report',
    'json,junit',
    '--report-dir',
    path.join(OUT, name),
    '--report-json-path',
    reportPath,
    '--no-color',
    ...args,
  ]
  say(`pass "${name}": schemathesis ${argv.join(' ')}`)
  // in OUT: Schemathesis keeps its example database in .schemathesis/ of its working folder
  const env = { ...process.env, ...vars, FUZZ_API_KEY: key, SCHEMATHESIS_HOOKS: HOOKS }
  const res = spawnSync(run.bin, argv, { cwd: OUT, stdio: 'inherit', env })
  const report = fs.existsSync(reportPath) ? (JSON.parse(fs.readFileSync(reportPath, 'utf8')) as Report) : undefined
  return { name, exitCode: res.status ?? 1, report }
}

function summarize(passes: PassResult[]): number {
  say('summary')
  let failed = false
  for (const p of passes) {
    const r = p.report
    if (!r) {
      failed = true
      say(`  ${p.name}: no report (schemathesis exited ${p.exitCode})`)
      continue
    }
    say(
      `  ${p.name}: ${r.operations?.tested ?? 0}/${r.operations?.total ?? 0} operations, ` +
        `${r.test_cases.generated} test cases, ${r.failures.length} kinds of failure, ${r.errors.length} errors, ` +
        `exit ${p.exitCode} (${Math.round(r.running_time)} s)`,
    )
    for (const f of r.failures) say(`    FAIL ${f.title} (${f.count}x): ${f.operations.join(', ')}`)
    for (const e of r.errors) say(`    ERROR ${e.title} (${e.count}x)`)
    if (p.exitCode !== 0) failed = true
  }
  say(failed ? 'FAILED' : 'passed')
  return failed ? 1 : 0
}

async function dropDatabase(name: string): Promise<void> {
  const client = createMongoClient(loadConfig())
  try {
    await client.connect()
    await client.db(name).dropDatabase()
  } catch (err) {
    say(`could not drop database ${name}: ${(err as Error).message}`)
  } finally {
    await client.close().catch(() => undefined)
  }
}

function tail(file: string): string {
  return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-20).join('\n')
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

process.exitCode = await main().catch((err: Error) => {
  process.stderr.write(`fuzz: ${err.message}\n`)
  return 1
})
