/**
 * Confluent's own Python client (confluent-kafka from PyPI, with librdkafka), in a virtualenv in the
 * user cache: what the contract and partner-topic tests check the platform against.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { stackSettings } from '../../stack/index.ts'
import { testConfig } from './env.ts'

const CONFLUENT_KAFKA = '2.16.1'
/** The Avro, JSON Schema and Protobuf serdes and the registry client. */
const EXTRAS = 'avro,json,protobuf,schemaregistry'

/**
 * A virtualenv with confluent-kafka, made once per user. A string: why it cannot be had here
 * (no python3, or PyPI unreachable), and the test is skipped saying so.
 */
export function confluentPython(): { python: string } | { missing: string } {
  const venv = path.join(
    stackSettings(testConfig()).cacheDir,
    `python-confluent-kafka-${CONFLUENT_KAFKA}-${EXTRAS.replace(/,/g, '-')}`,
  )
  const python = path.join(venv, 'bin', 'python')
  if (fs.existsSync(path.join(venv, '.complete'))) return { python }
  const probe = spawnSync('python3', ['--version'], { encoding: 'utf8' })
  if (probe.status !== 0) return { missing: 'python3 is not installed' }
  const steps: string[][] = [
    ['python3', '-m', 'venv', venv],
    [
      python,
      '-m',
      'pip',
      'install',
      '--quiet',
      '--disable-pip-version-check',
      `confluent-kafka[${EXTRAS}]==${CONFLUENT_KAFKA}`,
    ],
  ]
  for (const [cmd, ...args] of steps) {
    const res = spawnSync(cmd!, args, { encoding: 'utf8', timeout: 300_000 })
    if (res.status !== 0)
      return { missing: `${cmd} ${args.join(' ')} failed: ${(res.stderr || res.stdout).trim().split('\n').pop()}` }
  }
  fs.writeFileSync(path.join(venv, '.complete'), new Date().toISOString())
  return { python }
}
