import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { StackError } from '../../common/errors.ts'
import { isAlive, isOurs, readPid, requireTool } from '../../stack/processes.ts'
import { newClusterId } from '../../stack/kafka.ts'
import { ferretdbEnv } from '../../stack/ferretdb.ts'

describe('stack process helpers', () => {
  it('a missing tool is a STACK_TOOL_MISSING error naming it and what to install', () => {
    let err: unknown
    try {
      requireTool('mvn', 'install Apache Maven 3.6+ (Debian: apt-get install maven)', '/nonexistent-dir')
    } catch (e) {
      err = e
    }
    expect(err).to.be.instanceOf(StackError)
    expect((err as StackError).code).to.equal('STACK_TOOL_MISSING')
    expect((err as Error).message).to.equal('mvn not found on PATH: install Apache Maven 3.6+ (Debian: apt-get install maven)')
  })

  it('finds a tool that is on PATH', () => {
    expect(requireTool('node', '', path.dirname(process.execPath))).to.equal(process.execPath)
  })

  it('a pid is ours only while alive and carrying our marker', () => {
    expect(isOurs({ pid: process.pid, marker: 'mocha', startedAt: '' })).to.equal(true)
    expect(isOurs({ pid: process.pid, marker: 'not-in-my-command-line-' + Math.random(), startedAt: '' })).to.equal(false)
    expect(isAlive(2 ** 22 + 12345)).to.equal(false)
  })

  it('an unreadable pid file reads as no pid', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pid-')), 'x.pid')
    expect(readPid(file)).to.equal(undefined)
    fs.writeFileSync(file, 'garbage')
    expect(readPid(file)).to.equal(undefined)
  })
})

describe('KRaft cluster id', () => {
  it('is 22 URL-safe base64 characters and never starts with "-" (the storage tool would read it as an option)', () => {
    // 0xf8 as first byte encodes to a leading '-' in base64url; the generator must draw again.
    const draws = ['f8000000-0000-4000-8000-000000000000', 'f8ffffff-0000-4000-8000-000000000000', '0123abcd-0000-4000-8000-000000000001']
    let calls = 0
    const id = newClusterId(() => draws[calls++]!)
    expect(calls).to.equal(3)
    expect(id).to.equal(Buffer.from(draws[2]!.replace(/-/g, ''), 'hex').toString('base64url'))
    for (let i = 0; i < 2000; i++) {
      const next = newClusterId()
      expect(next).to.match(/^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/)
    }
  })
})

describe('FerretDB environment', () => {
  it('runs with one Go processor unless GOMAXPROCS is set, and keeps the rest of the environment', () => {
    expect(ferretdbEnv({ PATH: '/bin' })).to.deep.equal({ PATH: '/bin', GOMAXPROCS: '1' })
    expect(ferretdbEnv({ PATH: '/bin', GOMAXPROCS: '' }).GOMAXPROCS).to.equal('1')
    expect(ferretdbEnv({ GOMAXPROCS: '4' }).GOMAXPROCS).to.equal('4')
  })
})
