/**
 * The local stack: `up` (idempotent: installs what is missing, restarts what crashed, waits until
 * every server answers a real request), `down` (stops only what it started, by pid file) and
 * `status` (what is really there). One lock per checkout serialises concurrent callers.
 */
import fs from 'node:fs'
import path from 'node:path'
import { StackError } from '../common/errors.ts'
import { ferretdbService } from './ferretdb.ts'
import { kafkaService } from './kafka.ts'
import { isAlive, isOurs, portOpen, readPid, spawnDetached, stopProcess, tail } from './processes.ts'
import type { ServiceDefinition, ServiceName, ServiceStatus } from './service.ts'
import type { StackSettings } from './settings.ts'

export { stackSettings, sourcesDropRoot, defaultCacheDir, PROJECT_ROOT } from './settings.ts'
export type { StackSettings } from './settings.ts'
export type { ServiceName, ServiceState, ServiceStatus } from './service.ts'
export { ferretdbVersion } from './ferretdb.ts'

const SERVICES: Record<ServiceName, ServiceDefinition> = { kafka: kafkaService, mongodb: ferretdbService }

export type Reporter = (msg: string) => void

const files = (s: StackSettings, name: ServiceName) => ({
  pid: path.join(s.dir, `${name}.pid`),
  log: path.join(s.dir, name, 'server.log'),
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function statusOf(s: StackSettings, def: ServiceDefinition): Promise<ServiceStatus> {
  const f = files(s, def.name)
  const base = { name: def.name, address: def.address(s), log: f.log }
  const rec = readPid(f.pid)
  if (rec && isOurs(rec)) {
    return { ...base, pid: rec.pid, state: (await def.probe(s, 2000)) ? 'running' : 'starting' }
  }
  if (await portOpen(def.port(s))) return { ...base, state: 'foreign' }
  return { ...base, state: rec ? 'crashed' : 'stopped' }
}

export async function stackStatus(s: StackSettings): Promise<ServiceStatus[]> {
  return Promise.all(s.services.map((n) => statusOf(s, SERVICES[n])))
}

async function waitReady(s: StackSettings, def: ServiceDefinition, pid: number): Promise<void> {
  const f = files(s, def.name)
  const deadline = Date.now() + s.readyTimeoutMs
  while (Date.now() < deadline) {
    if (!isAlive(pid)) {
      throw new StackError('STACK_NOT_READY', `${def.name} exited while starting; last lines of ${f.log}:\n${tail(f.log)}`, { service: def.name })
    }
    if (await def.probe(s, 1000)) return
    await sleep(250)
  }
  throw new StackError('STACK_NOT_READY', `${def.name} did not answer on ${def.address(s)} within ${s.readyTimeoutMs} ms; see ${f.log}`, { service: def.name })
}

async function upOne(s: StackSettings, def: ServiceDefinition, report: Reporter): Promise<'started' | 'restarted' | 'already running'> {
  const f = files(s, def.name)
  const st = await statusOf(s, def)
  if (st.state === 'running') {
    report(`${def.name}: already running on ${st.address} (pid ${st.pid})`)
    return 'already running'
  }
  if (st.state === 'starting' && st.pid !== undefined) {
    report(`${def.name}: pid ${st.pid} is up but not answering yet; waiting`)
    try {
      await waitReady(s, def, st.pid)
      report(`${def.name}: ready on ${st.address} (pid ${st.pid})`)
      return 'already running'
    } catch {
      report(`${def.name}: pid ${st.pid} never answered; restarting it`)
      await stopProcess({ pid: st.pid, marker: def.marker(s), startedAt: '' }, def.stopGraceMs)
    }
  }
  if (st.state === 'foreign') {
    throw new StackError(
      'STACK_PORT_IN_USE',
      `${def.name}: port ${def.port(s)} is in use by a process this stack did not start. Stop it, choose another port (see STACK_* settings), or point the platform at it (${def.name === 'kafka' ? 'KAFKA_BROKERS' : 'MONGODB_URI'}).`,
      { service: def.name, port: def.port(s) },
    )
  }
  const restarted = st.state === 'crashed' || st.state === 'starting'
  if (st.state === 'crashed') report(`${def.name}: the server this stack started is gone (crashed or killed); restarting it. Its log: ${f.log}`)
  const cmd = await def.prepare(s, report)
  report(`${def.name}: starting on ${def.address(s)}`)
  const rec = spawnDetached({ ...cmd, logFile: f.log, pidFile: f.pid, marker: def.marker(s) })
  const t0 = Date.now()
  await waitReady(s, def, rec.pid)
  report(`${def.name}: ready on ${def.address(s)} (pid ${rec.pid}, ${Date.now() - t0} ms)`)
  return restarted ? 'restarted' : 'started'
}

/** Serialises stack operations of one checkout (a test run and a CLI call may overlap). */
async function withLock<T>(s: StackSettings, fn: () => Promise<T>): Promise<T> {
  fs.mkdirSync(s.dir, { recursive: true })
  const lock = path.join(s.dir, 'stack.lock')
  const deadline = Date.now() + s.readyTimeoutMs * 2 + 600_000
  for (;;) {
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: 'wx' })
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      const holder = Number(fs.readFileSync(lock, 'utf8'))
      if (!Number.isInteger(holder) || holder <= 0 || !isAlive(holder)) {
        fs.rmSync(lock, { force: true }) // left by a process that died
        continue
      }
      if (Date.now() > deadline) throw new StackError('STACK_NOT_READY', `another stack command (pid ${holder}) holds ${lock}`)
      await sleep(200)
    }
  }
  try {
    return await fn()
  } finally {
    fs.rmSync(lock, { force: true })
  }
}

export interface UpResult {
  name: ServiceName
  action: 'started' | 'restarted' | 'already running'
}

export async function stackUp(s: StackSettings, report: Reporter = () => undefined): Promise<UpResult[]> {
  return withLock(s, async () => {
    const results: UpResult[] = []
    for (const name of s.services) results.push({ name, action: await upOne(s, SERVICES[name], report) })
    return results
  })
}

export async function stackDown(s: StackSettings, report: Reporter = () => undefined): Promise<void> {
  await withLock(s, async () => {
    for (const name of [...s.services].reverse()) {
      const def = SERVICES[name]
      const f = files(s, name)
      const rec = readPid(f.pid)
      if (rec && isOurs(rec)) {
        const how = await stopProcess(rec, def.stopGraceMs)
        report(`${name}: ${how} (pid ${rec.pid})`)
      } else {
        report(`${name}: not running`)
      }
      fs.rmSync(f.pid, { force: true })
    }
  })
}
