/**
 * Runs the `distributary` command as an operator would: a separate process running what `npm start`
 * and `npx distributary` run (cli/bin.js: the bundle built from the sources, plain node, no tsx), its
 * own environment on top of this one, stdout and stderr kept apart; killed after `timeoutMs`. `input`:
 * what it reads on stdin (e.g. `--from-file -`); without it stdin stays open and unread.
 */
import { spawn } from 'node:child_process'
import path from 'node:path'
import { PROJECT_ROOT } from '../../stack/index.ts'

export interface CliResult {
  code: number | null
  out: string
  err: string
}

/** The node arguments that run `distributary <args>` the way it ships. */
export function cliArgs(...args: string[]): string[] {
  return [path.join(PROJECT_ROOT, 'cli', 'bin.js'), ...args]
}

export function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 120_000,
  input?: string,
): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, cliArgs(...args), { cwd: PROJECT_ROOT, env: { ...process.env, ...env } })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    if (input !== undefined) child.stdin.end(input)
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs)
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, out, err })
    })
  })
}
