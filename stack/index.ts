/**
 * The local stack: `up` (idempotent: installs what is missing, restarts what crashed, waits until
 * every server answers a real request), `down` (stops only what it started, by pid file) and
 * `status` (what is really there). One lock per checkout serialises concurrent callers.
 */
import fs from 'node:fs'
import path from 'node:path'
import { StackError } from '../common/errors.ts'
import { ferretdbService } from './ferretdb.ts'
import { kafkaServices } from './kafka.ts'
import { isAlive, isOurs, portOpen, readPid, spawnDetached, stopProcess, tail, type PidRecord } from './processes.ts'
import type { ServerName, ServiceDefinition, ServiceName, ServiceStatus } from './service.ts'
import type { StackSettings } from './settings.ts'
import { sleep } from '../common/timers.ts'

export { stackSettings, sourcesDropRoot, defaultCacheDir, PROJECT_ROOT } from './settings.ts'
export type { StackSettings } from './settings.ts'
export type { ServerName, ServiceName, ServiceState, ServiceStatus } from './service.ts'
export { ferretdbVersion } from './ferretdb.ts'
export { kafkaNodes, type KafkaNode } from './kafka.ts'

/** The servers of a service: Kafka's nodes (one, or a cluster), FerretDB. */
function serversOf(s: StackSettings, name: ServiceName): ServiceDefinition[] {
  return name === 'kafka' ? kafkaServices(s) : [ferretdbService]
}

export type Reporter = (msg: string) => void

const files = (s: StackSettings, name: ServerName) => ({
  pid: path.join(s.dir, `${name}.pid`),
  log: path.join(s.dir, name, 'server.log'),
})

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

/** Every server of the stack: with a Kafka cluster, one line per node (kafka-1, kafka-2, ...). */
export async function stackStatus(s: StackSettings): Promise<ServiceStatus[]> {
  return Promise.all(s.services.flatMap((n) => serversOf(s, n)).map((def) => statusOf(s, def)))
}

async function waitReady(s: StackSettings, def: ServiceDefinition, pid: number): Promise<void> {
  const f = files(s, def.name)
  const deadline = Date.now() + s.readyTimeoutMs
  while (Date.now() < deadline) {
    if (!isAlive(pid)) {
      throw new StackError(
        'STACK_NOT_READY',
        `${def.name} exited while starting; last lines of ${f.log}:\n${tail(f.log)}`,
        { service: def.name },
      )
    }
    if (await def.probe(s, 1000)) return
    await sleep(250)
  }
  throw new StackError(
    'STACK_NOT_READY',
    `${def.name} did not answer on ${def.address(s)} within ${s.readyTimeoutMs} ms; see ${f.log}`,
    { service: def.name },
  )
}

type Action = 'started' | 'restarted' | 'already running'

/**
 * Starts the server unless it runs; resolves once it is launched, with the wait until it serves
 * (separate, so that the nodes of a cluster start together: each waits for a quorum of its peers).
 */
async function launch(s: StackSettings, def: ServiceDefinition, report: Reporter): Promise<() => Promise<Action>> {
  const f = files(s, def.name)
  const st = await statusOf(s, def)
  if (st.state === 'running') {
    report(`${def.name}: already running on ${st.address} (pid ${st.pid})`)
    return async () => 'already running'
  }
  if (st.state === 'foreign') {
    throw new StackError(
      'STACK_PORT_IN_USE',
      `${def.name}: port ${def.port(s)} is in use by a process this stack did not ` +
        `start. Stop it, choose another port (see STACK_* settings), or point the ` +
        `platform at it (${def.service === 'kafka' ? 'KAFKA_BROKERS' : 'MONGODB_URI'}).`,
      { service: def.name, port: def.port(s) },
    )
  }
  const start = async (action: Action): Promise<() => Promise<Action>> => {
    const cmd = await def.prepare(s, report)
    report(`${def.name}: starting on ${def.address(s)}`)
    const rec = spawnDetached({ ...cmd, logFile: f.log, pidFile: f.pid, marker: def.marker(s) })
    const t0 = Date.now()
    return async () => {
      await waitReady(s, def, rec.pid)
      report(`${def.name}: ready on ${def.address(s)} (pid ${rec.pid}, ${Date.now() - t0} ms)`)
      return action
    }
  }
  if (st.state === 'starting' && st.pid !== undefined) {
    const pid = st.pid
    report(`${def.name}: pid ${pid} is up but not answering yet; waiting`)
    return async () => {
      try {
        await waitReady(s, def, pid)
        report(`${def.name}: ready on ${st.address} (pid ${pid})`)
        return 'already running'
      } catch {
        report(`${def.name}: pid ${pid} never answered; restarting it`)
        await stopProcess({ pid, marker: def.marker(s), startedAt: '' }, def.stopGraceMs)
        return (await start('restarted'))()
      }
    }
  }
  if (st.state === 'crashed')
    report(`${def.name}: the server this stack started is gone (crashed or killed); restarting it. Its log: ${f.log}`)
  return start(st.state === 'crashed' ? 'restarted' : 'started')
}

/** Brings up the servers of one service: launched one after the other, then waited for together. */
async function upService(s: StackSettings, name: ServiceName, report: Reporter): Promise<UpResult[]> {
  const defs = serversOf(s, name)
  const waits: Array<() => Promise<Action>> = []
  for (const def of defs) waits.push(await launch(s, def, report))
  const settled = await Promise.allSettled(waits.map((w) => w()))
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed) throw failed.reason
  return settled.map((r, i) => ({ name: defs[i]!.name, action: (r as PromiseFulfilledResult<Action>).value }))
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
      if (Date.now() > deadline)
        throw new StackError('STACK_NOT_READY', `another stack command (pid ${holder}) holds ${lock}`)
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
  name: ServerName
  action: Action
}

export async function stackUp(s: StackSettings, report: Reporter = () => undefined): Promise<UpResult[]> {
  return withLock(s, async () => {
    const results: UpResult[] = []
    for (const name of s.services) results.push(...(await upService(s, name, report)))
    return results
  })
}

/**
 * The pid files of Kafka servers of another layout than the configured one (a stack started with
 * another STACK_KAFKA_BROKERS): stopped by `down` too, so that changing the setting never strands a node.
 */
function otherKafkaLayout(s: StackSettings): Array<{ name: ServerName; file: string }> {
  const current = new Set<string>(kafkaServices(s).map((d) => d.name))
  let entries: string[]
  try {
    entries = fs.readdirSync(s.dir)
  } catch {
    return []
  }
  return entries
    .map((f) => /^(kafka(?:-\d+)?)\.pid$/.exec(f)?.[1])
    .filter((n): n is ServerName => n !== undefined && !current.has(n))
    .map((name) => ({ name, file: path.join(s.dir, `${name}.pid`) }))
}

async function stopServer(name: ServerName, pidFile: string, graceMs: number, report: Reporter): Promise<void> {
  const rec: PidRecord | undefined = readPid(pidFile)
  if (rec && isOurs(rec)) {
    const how = await stopProcess(rec, graceMs)
    report(`${name}: ${how} (pid ${rec.pid})`)
  } else {
    report(`${name}: not running`)
  }
  fs.rmSync(pidFile, { force: true })
}

/** Stops what the stack started, service by service in reverse order; a cluster's nodes together. */
export async function stackDown(s: StackSettings, report: Reporter = () => undefined): Promise<void> {
  await withLock(s, async () => {
    for (const name of [...s.services].reverse()) {
      const servers = serversOf(s, name).map((def) => ({
        name: def.name,
        file: files(s, def.name).pid,
        graceMs: def.stopGraceMs,
      }))
      if (name === 'kafka') servers.push(...otherKafkaLayout(s).map((x) => ({ ...x, graceMs: servers[0]!.graceMs })))
      await Promise.all(servers.map((x) => stopServer(x.name, x.file, x.graceMs, report)))
    }
  })
}
