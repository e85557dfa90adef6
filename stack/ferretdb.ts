/**
 * The MongoDB-compatible store: FerretDB v1 with its SQLite backend, built from the Go module proxy
 * (the small module in stack/ferretdb pins the version) into the user cache, on 127.0.0.1.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
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
  if (!m?.[1]) throw new StackError('STACK_PROVISION_FAILED', `${MODULE_DIR}/go.mod does not require github.com/FerretDB/FerretDB`)
  return m[1]
}

/** Builds the binary once per version of the module's sources; returns its path. */
async function install(s: StackSettings, report: (msg: string) => void): Promise<string> {
  const hash = createHash('sha256')
  for (const f of ['go.mod', 'go.sum', 'main.go']) hash.update(fs.readFileSync(path.join(MODULE_DIR, f)))
  const home = path.join(s.cacheDir, `ferretdb-${ferretdbVersion()}-${hash.digest('hex').slice(0, 12)}`)
  const bin = path.join(home, 'ferretdb')
  if (fs.existsSync(bin)) return bin
  const go = requireTool('go', 'install Go 1.24+ (Debian: apt-get install golang-go, or the official Go tarball)')
  report(`building FerretDB ${ferretdbVersion()} from the Go module proxy (first run only, a few minutes)`)
  fs.mkdirSync(home, { recursive: true })
  const tmp = `${bin}.tmp-${process.pid}`
  await runLogged(go, ['build', '-trimpath', '-o', tmp, '.'], {
    cwd: MODULE_DIR,
    logFile: path.join(home, 'build.log'),
    heartbeat: (sec) => report(`still building FerretDB (${sec} s; downloads modules on a cold machine)`),
  })
  fs.renameSync(tmp, bin)
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

export const ferretdbService: ServiceDefinition = {
  name: 'mongodb',
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
      args: ['--listen-addr', `127.0.0.1:${s.mongodb.port}`, '--data-dir', path.join(home, 'data'), '--log-level', 'warn'],
      cwd: home,
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
