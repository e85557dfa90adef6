/**
 * The README is the contract with a new user: its two commands, CI running exactly the test one,
 * and a configuration table that lists every setting.
 */
import fs from 'node:fs'
import path from 'node:path'
import { expect } from 'chai'
import { configSchema } from '../../config/schema.ts'
import { PROJECT_ROOT } from '../../stack/settings.ts'

const readme = fs.readFileSync(path.join(PROJECT_ROOT, 'README.md'), 'utf8')

describe('README', () => {
  it('shows the run and test commands on its first screen', () => {
    const firstScreen = readme.split('\n').slice(0, 40).join('\n')
    expect(firstScreen).to.contain('npm ci && npm start')
    expect(firstScreen).to.contain('npm ci && npm test')
  })

  it('CI runs exactly the README test command', () => {
    const ci = fs.readFileSync(path.join(PROJECT_ROOT, '.ci', 'run'), 'utf8')
    const commands = ci
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('#') && !l.startsWith('set ') && !l.startsWith('cd '))
    expect(commands).to.deep.equal(['npm ci && npm test'])
  })

  it('documents every setting in the configuration table', () => {
    const missing: string[] = []
    const walk = (node: Record<string, unknown>) => {
      for (const v of Object.values(node)) {
        if (v && typeof v === 'object' && 'env' in v) {
          const env = (v as { env: string }).env
          if (!readme.includes(`| \`${env}\` |`)) missing.push(env)
        } else if (v && typeof v === 'object') walk(v as Record<string, unknown>)
      }
    }
    walk(configSchema)
    expect(missing, 'settings missing from the README table').to.deep.equal([])
  })
})
