/**
 * Other Node.js versions for tests and CI (issue 22: the platform supports Node 22 and 24 while it
 * runs on this machine's Node 20): the official binaries as the npm registry publishes them (the
 * `node-<platform>-<arch>` packages), so that no other download site is needed. Cached per user like
 * the stack's Kafka jars and FerretDB build: <cache>/node/<version>/bin/node, unpacked into a
 * temporary folder and renamed into place (two processes fetching at once both end up with one copy).
 */
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** The versions the project is tested on, besides the one running it. */
export const NODE_VERSIONS = { 24: '24.22.3', 22: '22.23.5' } as const

/** The path of `node` of this version in the cache, fetched from the npm registry when missing. */
export async function nodeRuntime(
  version: string,
  cacheDir: string,
  report: (msg: string) => void = () => undefined,
): Promise<string> {
  if (!/^\d+\.\d+\.\d+$/.test(version)) throw new Error(`a Node.js version is major.minor.patch, got "${version}"`)
  const home = path.join(cacheDir, 'node', version)
  const binary = path.join(home, 'bin', 'node')
  if (fs.existsSync(binary)) return binary
  const pkg = `node-${process.platform}-${process.arch}@${version}`
  report(`fetching Node.js ${version} (${pkg}) from the npm registry`)
  fs.mkdirSync(path.dirname(home), { recursive: true })
  const tmp = fs.mkdtempSync(`${home}.tmp-`)
  try {
    const { stdout } = await run('npm', ['pack', pkg, '--pack-destination', tmp, '--silent'], {
      cwd: tmp,
      timeout: 300_000,
      maxBuffer: 1 << 20,
    })
    const tarball = path.join(tmp, stdout.trim().split('\n').pop()!)
    await run('tar', ['xzf', tarball, '-C', tmp], { timeout: 120_000 })
    fs.rmSync(tarball)
    if (!fs.existsSync(path.join(tmp, 'package', 'bin', 'node'))) throw new Error(`${pkg} holds no bin/node`)
    try {
      fs.renameSync(path.join(tmp, 'package'), home)
    } catch (err) {
      if (!fs.existsSync(binary)) throw err // another process put it in place meanwhile: use theirs
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
  return binary
}
