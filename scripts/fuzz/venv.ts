/**
 * Schemathesis from PyPI in a virtualenv in the user cache (beside the stack's downloads), made once per
 * version of requirements.txt: its hash names the folder, so changing a pin makes a new venv.
 */
import { createHash } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadConfig } from '../../config/index.ts'
import { stackSettings } from '../../stack/index.ts'

const REQUIREMENTS = fileURLToPath(new URL('./requirements.txt', import.meta.url))

/** The schemathesis executable, installing it first when needed; throws saying why it cannot be had. */
export function schemathesisBin(report: (msg: string) => void): string {
  const pins = fs.readFileSync(REQUIREMENTS, 'utf8')
  const version = /^schemathesis==(\S+)$/m.exec(pins)?.[1] ?? 'unknown'
  const hash = createHash('sha256').update(pins).digest('hex').slice(0, 8)
  const venv = path.join(stackSettings(loadConfig()).cacheDir, `python-schemathesis-${version}-${hash}`)
  const bin = path.join(venv, 'bin', 'schemathesis')
  if (fs.existsSync(path.join(venv, '.complete'))) return bin
  report(`installing schemathesis ${version} from PyPI into ${venv}`)
  fs.rmSync(venv, { recursive: true, force: true }) // a half-made venv from an interrupted install
  const python = path.join(venv, 'bin', 'python')
  const steps: string[][] = [
    ['python3', '-m', 'venv', venv],
    [python, '-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '-r', REQUIREMENTS],
  ]
  for (const [cmd, ...args] of steps) {
    const res = spawnSync(cmd!, args, { encoding: 'utf8', timeout: 600_000 })
    if (res.error || res.status !== 0) {
      const why = res.error?.message ?? (res.stderr || res.stdout).trim().split('\n').slice(-3).join('\n')
      throw new Error(`${cmd} ${args.join(' ')} failed (Python 3 with venv and access to PyPI are needed):\n${why}`)
    }
  }
  fs.writeFileSync(path.join(venv, '.complete'), new Date().toISOString())
  return bin
}
