/**
 * The chaos run's own stack, provisioned through the stack API (stack/index.ts) in the run's folder on
 * free 127.0.0.1 ports: three Kafka nodes (STACK_KAFKA_BROKERS=3) and a FerretDB of its own, so that
 * brokers and the store can be killed and stopped without touching the shared stack on 9092/27017.
 * The Kafka jars and the FerretDB binary come from the user cache; a new folder only formats data.
 */
import path from 'node:path'
import { createAdmin, KafkaClient, logLevel } from '../common/kafka/index.ts'
import { loadConfig } from '../config/index.ts'
import {
  kafkaNodes,
  stackDown,
  stackSettings,
  stackStatus,
  stackUp,
  type KafkaNode,
  type StackSettings,
} from '../stack/index.ts'
import { isOurs, readPid, stopProcess } from '../stack/processes.ts'
import { freePortRange } from '../test/helpers/env.ts'

export interface ChaosStack {
  settings: StackSettings
  brokers: string[]
  mongoUri: string
  /** The node leading the most partitions of `topic`, and how many of how many it leads. */
  busiestLeader(topic: string): Promise<{ node: KafkaNode; led: number; partitions: number }>
  /** kill -9 of a node this stack started (by its pid file; refused for a pid that is not ours). */
  killBroker(node: KafkaNode): number
  /** SIGTERM (controlled shutdown), waiting until the node has exited. */
  stopBroker(node: KafkaNode): Promise<number>
  /** `stack up`: restarts whatever of this stack is down (a killed or stopped node). */
  up(): Promise<void>
  /** Stops only the store (`stack down` of the mongodb service), and `stack up` of it. */
  stopStore(): Promise<void>
  startStore(): Promise<void>
  down(): Promise<void>
}

export async function startChaosStack(dir: string, say: (msg: string) => void): Promise<ChaosStack> {
  // three broker ports, three controller ports (STACK_KAFKA_CONTROLLER_PORT=0: after the brokers), three
  // partner listener ports (STACK_KAFKA_PARTNER_PORT=0: after the controllers), the store's
  const first = await freePortRange(10)
  const env: NodeJS.ProcessEnv = {
    STACK_DIR: dir,
    STACK_KAFKA_BROKERS: '3',
    STACK_KAFKA_PORT: String(first),
    STACK_KAFKA_CONTROLLER_PORT: '0',
    STACK_KAFKA_HEAP: process.env.STACK_KAFKA_HEAP || '384m',
    STACK_KAFKA_PARTNER_PORT: '0',
    STACK_MONGODB_PORT: String(first + 9),
    KAFKA_BROKERS: '', // both services are this stack's
    MONGODB_URI: '',
    ...(process.env.STACK_CACHE_DIR ? { STACK_CACHE_DIR: process.env.STACK_CACHE_DIR } : {}),
    ...(process.env.XDG_CACHE_HOME ? { XDG_CACHE_HOME: process.env.XDG_CACHE_HOME } : {}),
  }
  const settings = stackSettings(loadConfig({ env }))
  const report = (msg: string) => say(`stack: ${msg}`)
  const only = (service: 'kafka' | 'mongodb'): StackSettings => ({ ...settings, services: [service] })
  const nodes = kafkaNodes(settings)
  const brokers = nodes.map((n) => `127.0.0.1:${n.port}`)
  const pidOf = (node: KafkaNode) => {
    const rec = readPid(path.join(settings.dir, `${node.name}.pid`))
    if (!rec || !isOurs(rec))
      throw new Error(
        `${node.name} is not running as this stack's process (no live pid in ${settings.dir}/${node.name}.pid)`,
      )
    return rec
  }
  await stackUp(settings, report)
  return {
    settings,
    brokers,
    mongoUri: `mongodb://127.0.0.1:${settings.mongodb.port}/`,
    async busiestLeader(topic) {
      const kafka = new KafkaClient({
        clientId: 'distributary-chaos',
        brokers,
        logLevel: logLevel.NOTHING,
        retry: { retries: 5 },
      })
      const admin = createAdmin(kafka)
      await admin.connect()
      try {
        const parts = (await admin.fetchTopicMetadata({ topics: [topic] })).topics[0]!.partitions
        const led = new Map<number, number>()
        for (const p of parts) led.set(p.leader, (led.get(p.leader) ?? 0) + 1)
        const [id, count] = [...led].sort((a, b) => b[1] - a[1])[0]!
        return { node: nodes.find((n) => n.id === id)!, led: count, partitions: parts.length }
      } finally {
        await admin.disconnect().catch(() => undefined)
      }
    },
    killBroker(node) {
      const rec = pidOf(node)
      process.kill(rec.pid, 'SIGKILL')
      return rec.pid
    },
    async stopBroker(node) {
      const rec = pidOf(node)
      await stopProcess(rec, 60_000)
      return rec.pid
    },
    up: async () => void (await stackUp(settings, report)),
    stopStore: () => stackDown(only('mongodb'), report),
    startStore: async () => void (await stackUp(only('mongodb'), report)),
    async down() {
      await stackDown(settings, report)
      const left = (await stackStatus(settings)).filter((s) => s.state === 'running' || s.state === 'starting')
      if (left.length > 0)
        say(`stack: still running after stack down: ${left.map((s) => `${s.name} pid ${s.pid}`).join(', ')}`)
    },
  }
}
