/**
 * The local stack tooling, proven on real servers: idempotent `up`, truthful `status`, a crashed
 * server restarted, `down` stopping only what it started. The lifecycle runs on a second stack
 * (own folder, own ports, shared download cache) so the stack the other tests use is untouched.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { StackError } from '../../common/errors.ts'
import { loadConfig } from '../../config/index.ts'
import { PROJECT_ROOT, stackDown, stackSettings, stackStatus, stackUp, type StackSettings } from '../../stack/index.ts'
import { isAlive, readPid } from '../../stack/processes.ts'
import { cliArgs } from '../helpers/cli.ts'

function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const res = spawnSync(process.execPath, cliArgs(...args), {
    cwd: PROJECT_ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 120_000,
  })
  return { code: res.status, out: res.stdout + res.stderr }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port
      srv.close(() => resolve(port))
    })
  })
}

const byName = (st: Awaited<ReturnType<typeof stackStatus>>, name: string) => st.find((s) => s.name === name)!

describe('local stack tooling', function () {
  this.timeout(240_000)
  const config = loadConfig()
  const local = stackSettings(config)

  before(function () {
    if (local.services.length < 2) this.skip() // external servers configured: there is no local stack to test
  })

  it('`stack up` when everything runs is a no-op that says so, and changes no pid', () => {
    const pidsBefore = local.services.map((n) => readPid(path.join(local.dir, `${n}.pid`))?.pid)
    const res = cli(['stack', 'up'])
    expect(res.code, res.out).to.equal(0)
    expect(res.out).to.match(/kafka: already running/)
    expect(res.out).to.match(/mongodb: already running/)
    expect(res.out).to.match(/nothing to do/)
    expect(local.services.map((n) => readPid(path.join(local.dir, `${n}.pid`))?.pid)).to.deep.equal(pidsBefore)
    const status = cli(['stack', 'status', '--json'])
    expect(status.code).to.equal(0)
    expect((JSON.parse(status.out) as Array<{ state: string }>).map((s) => s.state)).to.deep.equal([
      'running',
      'running',
    ])
  })

  describe('lifecycle of a second stack', () => {
    let s: StackSettings
    let env: NodeJS.ProcessEnv

    before(async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'distributary-stack-test-'))
      const [kafkaPort, controllerPort, partnerPort, mongoPort] = [
        await freePort(),
        await freePort(),
        await freePort(),
        await freePort(),
      ]
      env = {
        STACK_DIR: dir,
        STACK_KAFKA_PORT: String(kafkaPort),
        STACK_KAFKA_CONTROLLER_PORT: String(controllerPort),
        STACK_KAFKA_PARTNER_PORT: String(partnerPort),
        STACK_MONGODB_PORT: String(mongoPort),
        STACK_KAFKA_HEAP: '256m',
      }
      s = stackSettings(loadConfig({ env: { ...process.env, ...env } }))
    })

    after(async () => {
      await stackDown(s).catch(() => undefined)
      fs.rmSync(s.dir, { recursive: true, force: true })
    })

    it('reports stopped before anything ran, and `stack status` exits 1', async () => {
      const st = await stackStatus(s)
      expect(st.map((x) => x.state)).to.deep.equal(['stopped', 'stopped'])
      const res = cli(['stack', 'status'], env)
      expect(res.code).to.equal(1)
      expect(res.out).to.match(/kafka\s+stopped/)
    })

    it('starts both servers, each answering a real request', async () => {
      const results = await stackUp(s)
      expect(results).to.deep.equal([
        { name: 'kafka', action: 'started' },
        { name: 'mongodb', action: 'started' },
      ])
      const st = await stackStatus(s)
      expect(st.map((x) => x.state)).to.deep.equal(['running', 'running'])
    })

    it('tells a crashed server apart, and `up` restarts only that one', async () => {
      const kafkaPid = readPid(path.join(s.dir, 'kafka.pid'))!.pid
      const mongoPid = readPid(path.join(s.dir, 'mongodb.pid'))!.pid
      process.kill(kafkaPid, 'SIGKILL')
      await new Promise((r) => setTimeout(r, 500))
      const st = await stackStatus(s)
      expect(byName(st, 'kafka').state).to.equal('crashed')
      expect(byName(st, 'mongodb').state).to.equal('running')
      const results = await stackUp(s)
      expect(results).to.deep.equal([
        { name: 'kafka', action: 'restarted' },
        { name: 'mongodb', action: 'already running' },
      ])
      expect(readPid(path.join(s.dir, 'kafka.pid'))!.pid).to.not.equal(kafkaPid)
      expect(readPid(path.join(s.dir, 'mongodb.pid'))!.pid).to.equal(mongoPid)
      expect((await stackStatus(s)).map((x) => x.state)).to.deep.equal(['running', 'running'])
    })

    it('`down` stops both by pid file, and status says stopped', async () => {
      const pids = ['kafka', 'mongodb'].map((n) => readPid(path.join(s.dir, `${n}.pid`))!.pid)
      await stackDown(s)
      for (const pid of pids) expect(isAlive(pid), `pid ${pid} alive`).to.equal(false)
      expect((await stackStatus(s)).map((x) => x.state)).to.deep.equal(['stopped', 'stopped'])
    })

    it('refuses to start on a port another process holds, naming the port', async () => {
      const squatter = net.createServer().listen(s.mongodb.port, '127.0.0.1')
      await new Promise((r) => squatter.once('listening', r))
      try {
        const st = await stackStatus({ ...s, services: ['mongodb'] })
        expect(st[0]!.state).to.equal('foreign')
        let err: unknown
        try {
          await stackUp({ ...s, services: ['mongodb'] })
        } catch (e) {
          err = e
        }
        expect(err).to.be.instanceOf(StackError)
        expect((err as StackError).code).to.equal('STACK_PORT_IN_USE')
        expect((err as Error).message).to.contain(String(s.mongodb.port))
      } finally {
        squatter.close()
      }
    })
  })
})
