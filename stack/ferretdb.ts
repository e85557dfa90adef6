/**
 * The MongoDB-compatible store: FerretDB v1 with its SQLite backend, built from the Go module proxy
 * (the small module in stack/ferretdb pins the version) into the user cache, on 127.0.0.1.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { MongoClient } from 'mongodb'
import { StackError } from '../common/errors.ts'
import { requireTool, runLogged } from './processes.ts'
import type { ServiceDefinition } from './service.ts'
import { PROJECT_ROOT, type StackSettings } from './settings.ts'

const MODULE_DIR = path.join(PROJECT_ROOT, 'stack', 'ferretdb')

/** The pinned FerretDB version, read from the module that builds it. */
export function ferretdbVersion(): string {
  const mod = fs.readFileSync(path.join(MODULE_DIR, 'go.mod'), 'utf8')
  const m = /github\.com\/FerretDB\/FerretDB (v[\w.-]+)/.exec(mod)
  if (!m?.[1])
    throw new StackError('STACK_PROVISION_FAILED', `${MODULE_DIR}/go.mod does not require github.com/FerretDB/FerretDB`)
  return m[1]
}

/**
 * Fixes to FerretDB's own sources, applied when it is built: the module is copied from the Go module
 * cache into the build directory, patched there, and built through a copy of our go.mod that replaces
 * it with the copy (`go build -modfile`; go.mod itself and the module cache stay as they are). Each
 * patch names the file in the module, the exact text (found once, or the build stops: a new version
 * needs the patch reviewed) and its replacement.
 */
export const FERRETDB_PATCHES = [
  {
    file: 'internal/backends/sqlite/metadata/metadata.go',
    find: `IDColumn = DefaultColumn + "->'$._id'"`,
    replace: `IDColumn = DefaultColumn + "->'_id'"`,
    // The unique _id index of every collection is created on `_ferretdb_sjson->"_id"`, and SQLite uses an
    // expression index only for the same expression: lookups, updates and upserts by _id, written with
    // the path '$._id', scanned the whole table and parsed the JSON of every row (EXPLAIN: SCAN), so each
    // cost O(collection size): 11 ms of server CPU per update in a collection of 1,000 documents. The
    // label '_id' is the same JSON path (SQLite: a label X means '$.X') and matches the index.
    why: 'queries by _id use the _id index instead of scanning the collection',
  },
]

/** A patched copy of the FerretDB module in `home` and a go.mod that builds with it; returns the go.mod's path. */
async function patchedModule(go: string, home: string): Promise<string> {
  const module = `github.com/FerretDB/FerretDB@${ferretdbVersion()}`
  let dir: string
  try {
    const { stdout } = await promisify(execFile)(go, ['mod', 'download', '-json', module], {
      cwd: MODULE_DIR,
      maxBuffer: 4 << 20,
    })
    dir = (JSON.parse(stdout) as { Dir?: string }).Dir ?? ''
  } catch (err) {
    throw new StackError(
      'STACK_PROVISION_FAILED',
      `go mod download ${module} failed: ${(err as { stderr?: string }).stderr || (err as Error).message}`,
    )
  }
  if (!dir) throw new StackError('STACK_PROVISION_FAILED', `go mod download ${module} did not say where the module is`)
  const copy = path.join(home, 'FerretDB')
  fs.rmSync(copy, { recursive: true, force: true }) // left by a build that failed
  fs.cpSync(dir, copy, { recursive: true })
  // The module cache's files and folders are read-only, and so are their copies: writable, so that the
  // patch can be written and the copy removed (also by a user who is not root).
  for (const entry of [
    copy,
    ...(fs.readdirSync(copy, { recursive: true }) as string[]).map((f) => path.join(copy, f)),
  ]) {
    fs.chmodSync(entry, fs.statSync(entry).isDirectory() ? 0o755 : 0o644)
  }
  for (const p of FERRETDB_PATCHES) {
    const file = path.join(copy, p.file)
    const text = fs.readFileSync(file, 'utf8')
    if (text.split(p.find).length !== 2)
      throw new StackError(
        'STACK_PROVISION_FAILED',
        `FerretDB patch (${p.why}): ${p.file} of ${module} does not contain ` +
          `${p.find} exactly once; review FERRETDB_PATCHES in stack/ferretdb.ts for ` +
          `this version`,
      )
    fs.writeFileSync(file, text.replace(p.find, p.replace))
  }
  const modfile = path.join(home, 'go.mod')
  fs.writeFileSync(
    modfile,
    `${fs.readFileSync(path.join(MODULE_DIR, 'go.mod'), 'utf8')}\nreplace github.com/FerretDB/FerretDB => ${copy}\n`,
  )
  fs.copyFileSync(path.join(MODULE_DIR, 'go.sum'), path.join(home, 'go.sum'))
  return modfile
}

/** Builds the binary once per version of the module's sources and patches; returns its path. */
async function install(s: StackSettings, report: (msg: string) => void): Promise<string> {
  const hash = createHash('sha256')
  for (const f of ['go.mod', 'go.sum', 'main.go']) hash.update(fs.readFileSync(path.join(MODULE_DIR, f)))
  hash.update(JSON.stringify(FERRETDB_PATCHES))
  const home = path.join(s.cacheDir, `ferretdb-${ferretdbVersion()}-${hash.digest('hex').slice(0, 12)}`)
  const bin = path.join(home, 'ferretdb')
  if (fs.existsSync(bin)) return bin
  const go = requireTool('go', 'install Go 1.24+ (Debian: apt-get install golang-go, or the official Go tarball)')
  report(`building FerretDB ${ferretdbVersion()} from the Go module proxy (first run only, a few minutes)`)
  fs.mkdirSync(home, { recursive: true })
  const tmp = `${bin}.tmp-${process.pid}`
  const modfile = await patchedModule(go, home)
  await runLogged(go, ['build', '-trimpath', '-modfile', modfile, '-o', tmp, '.'], {
    cwd: MODULE_DIR,
    logFile: path.join(home, 'build.log'),
    heartbeat: (sec) => report(`still building FerretDB (${sec} s; downloads modules on a cold machine)`),
  })
  fs.renameSync(tmp, bin)
  fs.rmSync(path.join(home, 'FerretDB'), { recursive: true, force: true }) // the binary is what is kept
  return bin
}

/**
 * A database file of one SQLite page has no tables, so FerretDB v1 refuses to start on it ("no such
 * table: _ferretdb_collections"). Such a file is what a crash leaves when it hits a database being
 * created or dropped. It holds no data: move it (and its -wal/-shm) aside so the server starts.
 */
function quarantineEmptyDatabases(dataDir: string, report: (msg: string) => void): void {
  for (const f of fs.readdirSync(dataDir)) {
    if (!f.endsWith('.sqlite')) continue
    const file = path.join(dataDir, f)
    if (fs.statSync(file).size > 4096) continue
    // Committed data may still be in the write-ahead log only: small is empty only without one.
    if (fs.existsSync(`${file}-wal`) && fs.statSync(`${file}-wal`).size > 0) continue
    const aside = path.join(path.dirname(dataDir), 'quarantine')
    fs.mkdirSync(aside, { recursive: true })
    for (const suffix of ['', '-wal', '-shm']) {
      if (fs.existsSync(file + suffix)) fs.renameSync(file + suffix, path.join(aside, `${Date.now()}-${f}${suffix}`))
    }
    report(`moved the empty database file ${f} (left by a crash) to ${aside}`)
  }
}

/**
 * FerretDB runs with one Go processor unless GOMAXPROCS says otherwise. Its SQLite backend writes one
 * statement at a time, and on the small machines the local stack is for (2 cores shared with the broker
 * and the platform) the Go scheduler's idle processors mostly spin looking for work: in 8 s of the
 * latency benchmark it made 15,225 nanosleep and 4,375 futex calls. With GOMAXPROCS=1 it spent 20-25 %
 * less CPU on the same delivery-log writes (latency benchmark, 15-s runs: 370-375 vs 469-577 ticks;
 * 2026-12-06).
 */
export function ferretdbEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...env, GOMAXPROCS: env.GOMAXPROCS || '1' }
}

export const ferretdbService: ServiceDefinition = {
  name: 'mongodb',
  service: 'mongodb',
  port: (s) => s.mongodb.port,
  address: (s) => `mongodb://127.0.0.1:${s.mongodb.port}/`,
  marker: (s) => path.join(s.dir, 'mongodb', 'data'),
  async prepare(s, report) {
    const bin = await install(s, report)
    const home = path.join(s.dir, 'mongodb')
    fs.mkdirSync(path.join(home, 'data'), { recursive: true })
    quarantineEmptyDatabases(path.join(home, 'data'), report)
    return {
      command: bin,
      args: [
        '--listen-addr',
        `127.0.0.1:${s.mongodb.port}`,
        '--data-dir',
        path.join(home, 'data'),
        '--log-level',
        'warn',
      ],
      cwd: home,
      env: ferretdbEnv(process.env),
    }
  },
  async probe(s, timeoutMs) {
    const client = new MongoClient(`mongodb://127.0.0.1:${s.mongodb.port}/`, {
      serverSelectionTimeoutMS: timeoutMs,
      connectTimeoutMS: timeoutMs,
      directConnection: true,
    })
    try {
      await client.connect()
      const res = await client.db('admin').command({ ping: 1 })
      return res.ok === 1
    } catch {
      return false
    } finally {
      await client.close().catch(() => undefined)
    }
  },
  stopGraceMs: 10_000,
}
