/**
 * A management API on 127.0.0.1 (ephemeral port) over its own database on the shared MongoDB
 * server, with a captured log, a bootstrap admin key and a small JSON client.
 */
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import crypto from 'node:crypto'
import type { Db, MongoClient } from 'mongodb'
import { createApp } from '../../api/index.ts'
import { parseBody } from '../../common/json.ts'
import { createLogger } from '../../common/logger.ts'
import { generateKeyRingEntry } from '../../common/secret-box.ts'
import { loadConfig, partnerKafkaAccess, type AppConfig } from '../../config/index.ts'
import { createKafka, kafkaConfig } from '../../common/kafka/index.ts'
import { KafkaScramAdmin } from '../../common/kafka/scram.ts'
import { PartnerKafka } from '../../control-plane/partner-kafka.ts'
import { controlPlaneFromConfig, SourceRegistry, type ControlPlane } from '../../control-plane/index.ts'
import { sourcesDropRoot } from '../../stack/settings.ts'
import { testMongo, uniqueName, dropDatabaseLater } from './env.ts'

export interface ApiAnswer {
  status: number
  headers: Headers
  body: any
  text: string
}

export interface ManagementHarness {
  url: string
  db: Db
  dbName: string
  mongo: MongoClient
  cp: ControlPlane
  config: AppConfig
  adminKey: string
  logLines: string[]
  call(
    method: string,
    path: string,
    opts?: { key?: string | null; body?: unknown; rawBody?: string; headers?: Record<string, string> },
  ): Promise<ApiAnswer>
  /** Stops the HTTP server only (the database stays: a new harness can reopen it). */
  stop(): Promise<void>
  /** Stops and drops the database. */
  close(): Promise<void>
}

export interface HarnessOptions {
  dbName?: string
  encryptionKeys?: string
  currentKeyId?: string
  adminKey?: string
  overrides?: Record<string, unknown>
  /** Topic of the partner-profile events (a unique one per suite that reads them). */
  partnerProfileTopic?: string
  /** Serve the web console under /console too (no schema registry behind it). */
  console?: boolean
}

export const TEST_KEY_RING = generateKeyRingEntry('t1')

export async function startManagement(options: HarnessOptions = {}): Promise<ManagementHarness> {
  const adminKey = options.adminKey ?? `adm-${crypto.randomBytes(24).toString('base64url')}`
  const dbName = options.dbName ?? uniqueName('mgmt').slice(0, 60)
  const config = loadConfig({
    overrides: {
      log: { level: 'debug' },
      management: {
        adminApiKey: adminKey,
        rateLimit: { perSecond: 1000, burst: 1000 },
        keyAttempts: { perSecond: 1000, burst: 1000 },
        ...(options.overrides?.management as object),
      },
      secrets: { encryptionKeys: options.encryptionKeys ?? TEST_KEY_RING, currentKeyId: options.currentKeyId ?? '' },
      urlGuard: { allowlist: '' },
      ...Object.fromEntries(Object.entries(options.overrides ?? {}).filter(([k]) => k !== 'management')),
    },
  })
  const logLines: string[] = []
  // DEBUG_MANAGEMENT=1 prints the error lines (a 500's cause, e.g. an answer the OpenAPI document refuses)
  const logger = createLogger({
    level: 'debug',
    write: (line) => {
      logLines.push(line)
      if (process.env.DEBUG_MANAGEMENT && line.includes('"level":"error"')) process.stderr.write(line)
    },
  })
  const mongo = testMongo()
  await mongo.connect()
  const db = mongo.db(dbName)
  const cp = controlPlaneFromConfig(
    config,
    db,
    logger,
    undefined,
    options.partnerProfileTopic !== undefined ? { partnerProfileTopic: options.partnerProfileTopic } : {},
  )
  await cp.init()
  await cp.resealSecrets()
  // Partners' Kafka access, as the platform wires it, when there is a partner listener
  const access = partnerKafkaAccess(config)
  const kafkaAdmin =
    access.bootstrapServers.length > 0 ? createKafka(config, undefined, 'mgmt-test-partner-access').admin() : undefined
  const partnerKafka = kafkaAdmin
    ? new PartnerKafka({
        cols: cp.cols,
        access,
        admin: kafkaAdmin,
        scram: new KafkaScramAdmin(kafkaConfig(config, 'mgmt-test-scram')),
        logger,
        registryUrl: () => '',
      })
    : undefined
  if (partnerKafka) {
    cp.onPartnerAccessChange(async ({ partnerId, removedTopics }) => {
      for (const t of removedTopics) await partnerKafka.deleteTopic(t)
      await partnerKafka.reconcile(partnerId)
    })
  }
  const app = createApp({
    logger,
    readiness: {},
    management: {
      controlPlane: cp,
      logger,
      bodyLimit: config.management.bodyLimit,
      rateLimit: config.management.rateLimit,
      sourceDropRoot: sourcesDropRoot(config),
      validateResponses: true,
      ...(partnerKafka ? { partnerKafka } : {}),
    },
    ...(options.console
      ? {
          console: {
            cp,
            sources: new SourceRegistry(cp.cols, cp.box, { dropRoot: sourcesDropRoot(config) }),
            logger,
            db,
            sessionTtlSeconds: config.console.sessionTtlSeconds,
          },
        }
      : {}),
  })
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s))
    s.once('error', reject)
  })
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  let stopped = false
  const stop = async () => {
    if (stopped) return
    stopped = true
    await new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
  }
  return {
    url,
    db,
    dbName,
    mongo,
    cp,
    config,
    adminKey,
    logLines,
    async call(method, path, opts = {}) {
      const key = opts.key === undefined ? adminKey : opts.key
      const headers: Record<string, string> = { ...(opts.headers ?? {}) }
      if (key !== null) headers.authorization = `Bearer ${key}`
      let body: string | undefined
      if (opts.rawBody !== undefined) body = opts.rawBody
      else if (opts.body !== undefined) body = JSON.stringify(opts.body)
      if (body !== undefined && !headers['content-type']) headers['content-type'] = 'application/json'
      const res = await fetch(url + path, { method, headers, ...(body !== undefined ? { body } : {}) })
      const text = await res.text()
      return { status: res.status, headers: res.headers, body: parseBody(text, undefined), text }
    },
    stop,
    async close() {
      await stop()
      await cp.registry.close() // the inbound connectors' mapping sandbox, when one was started
      await kafkaAdmin?.disconnect()
      dropDatabaseLater(db.databaseName)
      await mongo.close()
    },
  }
}
