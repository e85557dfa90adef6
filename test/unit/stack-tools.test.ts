import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { StackError } from '../../common/errors.ts'
import { isAlive, isOurs, readPid, requireTool } from '../../stack/processes.ts'
import { replicationFor } from '../../common/kafka/admin.ts'
import { loadConfig } from '../../config/index.ts'
import { kafkaNodes, newClusterId, serverProperties } from '../../stack/kafka.ts'
import { stackSettings } from '../../stack/settings.ts'
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
    expect((err as Error).message).to.equal(
      'mvn not found on PATH: install Apache Maven 3.6+ (Debian: apt-get install maven)',
    )
  })

  it('finds a tool that is on PATH', () => {
    expect(requireTool('node', '', path.dirname(process.execPath))).to.equal(process.execPath)
  })

  it('a pid is ours only while alive and carrying our marker', () => {
    expect(isOurs({ pid: process.pid, marker: 'mocha', startedAt: '' })).to.equal(true)
    expect(isOurs({ pid: process.pid, marker: 'not-in-my-command-line-' + Math.random(), startedAt: '' })).to.equal(
      false,
    )
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
    const draws = [
      'f8000000-0000-4000-8000-000000000000',
      'f8ffffff-0000-4000-8000-000000000000',
      '0123abcd-0000-4000-8000-000000000001',
    ]
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

describe("replication of the platform's topics", () => {
  it('three copies and two acknowledging replicas from three brokers on, fewer copies and one below', () => {
    expect([0, 1, 2, 3, 5].map(replicationFor)).to.deep.equal([
      { replicationFactor: 1, minInsyncReplicas: 1 },
      { replicationFactor: 1, minInsyncReplicas: 1 },
      { replicationFactor: 2, minInsyncReplicas: 1 },
      { replicationFactor: 3, minInsyncReplicas: 2 },
      { replicationFactor: 3, minInsyncReplicas: 2 },
    ])
  })
})

describe('local Kafka nodes', () => {
  const props = (text: string) =>
    Object.fromEntries(
      text
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('#'))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    )

  it('one node: kafka in .stack/kafka, broker 9092, controller 9093, one copy of everything', () => {
    const s = stackSettings(loadConfig({ env: { STACK_DIR: '/tmp/st' } }))
    const nodes = kafkaNodes(s)
    expect(nodes).to.deep.equal([
      { id: 1, name: 'kafka', home: '/tmp/st/kafka', port: 9092, controllerPort: 9093, partnerPort: 9094 },
    ])
    const p = props(serverProperties(s, nodes[0]!, '/tmp/st/kafka/data'))
    expect(p).to.include({
      'node.id': '1',
      'controller.quorum.voters': '1@127.0.0.1:9093',
      listeners: 'PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093,PARTNER://127.0.0.1:9094',
      'default.replication.factor': '1',
      'min.insync.replicas': '1',
      'offsets.topic.replication.factor': '1',
    })
    expect(p).to.not.have.property('broker.session.timeout.ms')
    // partners: SCRAM on their own listener, ACLs enforced, the platform's own listener the super user
    expect(p).to.include({
      'listener.security.protocol.map': 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PARTNER:SASL_PLAINTEXT',
      'listener.name.partner.sasl.enabled.mechanisms': 'SCRAM-SHA-512',
      'authorizer.class.name': 'org.apache.kafka.metadata.authorizer.StandardAuthorizer',
      'super.users': 'User:ANONYMOUS',
      'allow.everyone.if.no.acl.found': 'false',
    })
  })

  it(
    'three nodes: kafka-1..3 in folders of their own, one quorum of three ' + 'controllers, internal topics on three',
    () => {
      const s = stackSettings(loadConfig({ env: { STACK_DIR: '/tmp/st', STACK_KAFKA_BROKERS: '3' } }))
      const nodes = kafkaNodes(s)
      expect(nodes.map((n) => [n.name, n.home, n.port, n.controllerPort])).to.deep.equal([
        ['kafka-1', '/tmp/st/kafka-1', 9092, 9095],
        ['kafka-2', '/tmp/st/kafka-2', 9093, 9096],
        ['kafka-3', '/tmp/st/kafka-3', 9094, 9097],
      ])
      const p = props(serverProperties(s, nodes[1]!, '/tmp/st/kafka-2/data'))
      expect(p).to.include({
        'node.id': '2',
        'process.roles': 'broker,controller',
        'controller.quorum.voters': '1@127.0.0.1:9095,2@127.0.0.1:9096,3@127.0.0.1:9097',
        listeners: 'PLAINTEXT://127.0.0.1:9093,CONTROLLER://127.0.0.1:9096,PARTNER://127.0.0.1:9099',
        'advertised.listeners': 'PLAINTEXT://127.0.0.1:9093,PARTNER://127.0.0.1:9099',
        'log.dirs': '/tmp/st/kafka-2/data',
        'default.replication.factor': '3',
        'min.insync.replicas': '2',
        'offsets.topic.replication.factor': '3',
        'transaction.state.log.replication.factor': '3',
        'transaction.state.log.min.isr': '2',
      })
    },
  )
})
