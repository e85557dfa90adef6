/**
 * Processes the stack starts: detached, output to a log file, remembered by a pid file. A pid is
 * only ever signalled after /proc confirms it is still the process we started (its command line
 * carries a marker), so a recycled pid is never killed.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { StackError } from '../common/errors.ts'
import { sleep } from '../common/timers.ts'

export interface PidRecord {
  pid: number
  marker: string
  startedAt: string
}

export function readPid(file: string): PidRecord | undefined {
  try {
    const rec = JSON.parse(fs.readFileSync(file, 'utf8')) as PidRecord
    return Number.isInteger(rec.pid) && rec.pid > 0 ? rec : undefined
  } catch {
    return undefined
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
  // A zombie (exited, not yet reaped) is not alive for our purposes.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
    return state !== 'Z' && state !== 'X'
  } catch {
    return true
  }
}

/** True when the pid is alive and its command line carries our marker. */
export function isOurs(rec: PidRecord): boolean {
  if (!isAlive(rec.pid)) return false
  try {
    return fs.readFileSync(`/proc/${rec.pid}/cmdline`, 'utf8').includes(rec.marker)
  } catch {
    return true // no /proc (not Linux): trust the pid file
  }
}

export interface SpawnSpec {
  command: string
  args: string[]
  cwd: string
  logFile: string
  pidFile: string
  marker: string
  env?: NodeJS.ProcessEnv
}

export function spawnDetached(spec: SpawnSpec): PidRecord {
  fs.mkdirSync(path.dirname(spec.logFile), { recursive: true })
  const out = fs.openSync(spec.logFile, 'a')
  try {
    const child = spawn(spec.command, spec.args, {
      cwd: spec.cwd,
      detached: true,
      stdio: ['ignore', out, out],
      env: spec.env ?? process.env,
    })
    if (child.pid === undefined)
      throw new StackError('STACK_PROVISION_FAILED', `could not start ${spec.command}`, { command: spec.command })
    child.unref()
    const rec: PidRecord = { pid: child.pid, marker: spec.marker, startedAt: new Date().toISOString() }
    fs.writeFileSync(spec.pidFile, JSON.stringify(rec) + '\n')
    return rec
  } finally {
    fs.closeSync(out)
  }
}

/** SIGTERM, then SIGKILL after `graceMs`. Only for a process `isOurs` confirmed. */
export async function stopProcess(rec: PidRecord, graceMs: number): Promise<'stopped' | 'killed'> {
  try {
    process.kill(rec.pid, 'SIGTERM')
  } catch {
    return 'stopped'
  }
  const deadline = Date.now() + graceMs
  while (Date.now() < deadline) {
    if (!isAlive(rec.pid)) return 'stopped'
    await sleep(100)
  }
  try {
    process.kill(rec.pid, 'SIGKILL')
  } catch {
    /* gone meanwhile */
  }
  while (isAlive(rec.pid)) await sleep(50)
  return 'killed'
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function portOpen(port: number, host = '127.0.0.1', timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host })
    const done = (open: boolean) => {
      socket.destroy()
      resolve(open)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

/** The tool's path on PATH, or a StackError telling the user what to install. */
export function requireTool(tool: string, hint: string, searchPath = process.env.PATH ?? ''): string {
  for (const dir of searchPath.split(path.delimiter)) {
    if (dir === '') continue
    const candidate = path.join(dir, tool)
    try {
      fs.accessSync(candidate, fs.constants.X_OK)
      if (fs.statSync(candidate).isFile()) return candidate
    } catch {
      /* not here */
    }
  }
  throw new StackError('STACK_TOOL_MISSING', `${tool} not found on PATH: ${hint}`, { tool })
}

/** Last lines of a log, to explain a server that died while starting. */
export function tail(file: string, lines = 15): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return '(no log)'
  }
}

/**
 * Runs a command to completion, output to a log; rejects with the log's tail on failure.
 * With `heartbeat`, says every 15 s that it is still at it, so a cold provisioning never looks hung.
 */
export function runLogged(
  command: string,
  args: string[],
  opts: { cwd: string; logFile: string; env?: NodeJS.ProcessEnv; heartbeat?: (elapsedSeconds: number) => void },
): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.mkdirSync(path.dirname(opts.logFile), { recursive: true })
    const out = fs.openSync(opts.logFile, 'a')
    const child = spawn(command, args, { cwd: opts.cwd, stdio: ['ignore', out, out], env: opts.env ?? process.env })
    const t0 = Date.now()
    const timer = opts.heartbeat
      ? setInterval(() => opts.heartbeat!(Math.round((Date.now() - t0) / 1000)), 15_000)
      : undefined
    child.once('exit', () => clearInterval(timer))
    child.once('error', (err) => {
      clearInterval(timer)
      fs.closeSync(out)
      reject(new StackError('STACK_PROVISION_FAILED', `${command} could not run: ${err.message}`, { command }))
    })
    child.once('exit', (code, signal) => {
      fs.closeSync(out)
      if (code === 0) resolve()
      else
        reject(
          new StackError(
            'STACK_PROVISION_FAILED',
            `${command} ${args.join(' ')} failed (${signal ?? 'exit ' + code}); see ` +
              `${opts.logFile}:\n${tail(opts.logFile)}`,
            { command, code },
          ),
        )
    })
  })
}
