/**
 * The platform as an operator runs it: `distributary start --role api` and `--role worker`
 * processes (the shipped bundle, plain node, as test/helpers/cli.ts runs it), each with its output in
 * a log file of the run. Only these children are ever signalled, by their pid.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { cliArgs } from '../test/helpers/cli.ts'
import { PROJECT_ROOT } from '../stack/index.ts'

export interface PlatformProcess {
  name: string
  child: ChildProcess
  log: string
  exited: Promise<void>
  alive(): boolean
  /** Killed by the runner (a fault), as opposed to exiting by itself. */
  killed: boolean
}

export class PlatformProcesses {
  readonly all: PlatformProcess[] = []

  constructor(
    private readonly logDir: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    fs.mkdirSync(logDir, { recursive: true })
  }

  /** Starts `distributary start --role <role>` with the shared environment plus `extra`. */
  start(name: string, role: 'api' | 'worker', extra: NodeJS.ProcessEnv = {}): PlatformProcess {
    // one log per process name; a restart under the same name appends to it
    const log = path.join(this.logDir, `${name}.log`)
    const out = fs.openSync(log, 'a')
    fs.writeSync(out, `--- ${new Date().toISOString()} chaos: starting ${name} (--role ${role})\n`)
    const child = spawn(process.execPath, cliArgs('start', '--role', role), {
      cwd: PROJECT_ROOT,
      env: { ...this.env, ...extra },
      stdio: ['ignore', out, out],
    })
    fs.closeSync(out)
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    const p: PlatformProcess = {
      name,
      child,
      log,
      exited,
      alive: () => child.exitCode === null && child.signalCode === null,
      killed: false,
    }
    this.all.push(p)
    return p
  }

  /** kill -9 of a process this runner started; resolves once it is gone. Returns its pid. */
  async kill9(p: PlatformProcess): Promise<number> {
    const pid = p.child.pid!
    p.killed = true
    if (p.alive()) p.child.kill('SIGKILL')
    await p.exited
    return pid
  }

  /** SIGTERM to every live child, SIGKILL to those still alive after `graceMs`. */
  async stopAll(graceMs = 20_000): Promise<void> {
    const live = this.all.filter((p) => p.alive())
    for (const p of live) p.child.kill('SIGTERM')
    await Promise.race([Promise.all(live.map((p) => p.exited)), new Promise((r) => setTimeout(r, graceMs))])
    for (const p of live) if (p.alive()) p.child.kill('SIGKILL')
    await Promise.all(live.map((p) => p.exited))
  }
}
