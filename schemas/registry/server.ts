/**
 * Starts the built-in schema registry: the `_schemas` store (caught up before the first request),
 * the REST API, and an HTTP server on schemaRegistry.host:port (port 0 in tests).
 */
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { answerParseErrors } from '../../common/http-parse-errors.ts'
import { createKafka } from '../../common/kafka/index.ts'
import type { Logger } from '../../common/logger.ts'
import type { AppConfig } from '../../config/index.ts'
import { CONTENT_TYPE, createRegistryApp } from './app.ts'
import { SchemaRegistryService, type BeforeRegisterHook } from './registry.ts'
import type { RegistryAuth } from './auth.ts'
import { KafkaSchemaStore } from './store.ts'

export interface RegistryServer {
  url: string
  registry: SchemaRegistryService
  store: KafkaSchemaStore
  close(): Promise<void>
}

export interface RegistryServerOptions {
  port?: number
  host?: string
  /** The log topic (default: config schemaRegistry.topic, i.e. `_schemas`). */
  topic?: string
  /** Checks a new version before it is registered (e.g. against the subscriptions' pinned readers). */
  beforeRegister?: BeforeRegisterHook
  /**
   * Who may do what (schemas/registry/auth.ts). Required: 'none' serves without authentication, for
   * tests and benchmarks on loopback; the platform always passes its API-key access (cli/platform.ts).
   */
  auth: RegistryAuth | 'none'
}

export async function startSchemaRegistry(
  config: AppConfig,
  logger: Logger,
  options: RegistryServerOptions,
): Promise<RegistryServer> {
  const log = logger.child({ component: 'schema-registry' })
  const kafka = createKafka(config, log, `${config.kafka.clientId}-schema-registry`)
  const store = new KafkaSchemaStore(kafka, log, {
    topic: options.topic ?? config.schemaRegistry.topic,
    groupPrefix: `${config.kafka.clientId}-schema-registry`,
  })
  try {
    await store.start()
  } catch (err) {
    await store.stop()
    throw err
  }
  const registry = new SchemaRegistryService(
    store,
    options.beforeRegister ? { beforeRegister: options.beforeRegister } : {},
  )
  const app = createRegistryApp(registry, log, options.auth === 'none' ? undefined : options.auth)
  const host = options.host ?? config.schemaRegistry.host
  const port = options.port ?? config.schemaRegistry.port
  let server: Server
  try {
    server = await new Promise<Server>((resolve, reject) => {
      const s = app.listen(port, host, () => resolve(s))
      s.once('error', reject)
    })
  } catch (err) {
    await store.stop()
    throw err
  }
  // a request Node's HTTP parser refuses is answered as the registry answers errors (Confluent's error_code/message)
  answerParseErrors(server, ({ status, detail }) => ({
    contentType: CONTENT_TYPE,
    body: JSON.stringify({ error_code: status, message: detail }),
  }))
  const addr = server.address() as AddressInfo
  const url = `http://${addr.address}:${addr.port}`
  log.info('schema registry listening', { url, topic: store.topic })
  return {
    url,
    registry,
    store,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      await store.stop()
    },
  }
}
