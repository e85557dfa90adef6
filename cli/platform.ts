/**
 * The composition root: configuration → local stack (when nothing external is configured) →
 * clients → HTTP server → event contracts (schema registry, topics, topic schemas).
 *
 * The HTTP server comes up first, so /health and /ready answer from the start; the contracts are
 * bootstrapped in the background and retried until Kafka is reachable, and /ready says which part
 * is not ready yet. `startPlatform` returns a handle whose `close()` undoes all of it.
 */
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import type { RequestHandler } from 'express'
import { answerParseErrorsAsProblems, createApp, publisherAuthentication, sendProblem } from '../api/index.ts'
import { createMongoClient } from '../common/clients.ts'
import { createAdmin, createKafka, kafkaConfig, KafkaScramAdmin } from '../common/kafka/index.ts'
import { PartnerKafka } from '../control-plane/partner-kafka.ts'
import type { Admin } from '../common/kafka/index.ts'
import type { Logger } from '../common/logger.ts'
import { Metrics } from '../common/metrics.ts'
import { tracingFromConfig } from '../common/tracing.ts'
import { ConfigError } from '../common/errors.ts'
import { partnerKafkaAccess, type AppConfig } from '../config/index.ts'
import {
  controlPlaneFromConfig,
  loadSourceDeclarations,
  pinnedReaderCheck,
  registryAccess,
  SourceRegistry,
} from '../control-plane/index.ts'
import { SourceWorker } from '../connectors/source/worker.ts'
import { createHttpIngest, type HttpIngest } from '../producers/http-ingest/index.ts'
import { createOutboxRelay, type OutboxRelay } from '../producers/outbox/index.ts'
import { startDealRelays, type DealRelays } from '../producers/outbox/deals.ts'
import {
  AvroSerde,
  RegistryClient,
  ensureTopics,
  registerTopicSchemas,
  startSchemaRegistry,
  type RegistryServer,
} from '../schemas/index.ts'
import { internalPassword } from '../schemas/registry/auth.ts'
import { sourcesDropRoot, stackDown, stackSettings, stackUp } from '../stack/index.ts'
import { ALL_TOPICS } from '../schemas/topics.ts'
import { encryptionKeys } from './key-ring.ts'
import { SinkWorker } from '../connectors/sink/worker.ts'
import { deliveryDefaults } from '../connectors/sink/settings.ts'
import { sinkFactory } from '../consumers/plugins.ts'
import { openSinkRuntime, type OpenedSinkRuntime } from '../consumers/runtime.ts'
import { sleep } from '../common/timers.ts'
import { backoffDelay, type Backoff } from '../connectors/retry.ts'

/** The startup's retries (contracts, sink worker, source worker): 1 s, doubling up to 10 s. */
const STARTUP_BACKOFF: Backoff = { initialDelayMs: 1000, maxDelayMs: 10_000 }

export type PlatformRole = 'api' | 'worker' | 'all'

export interface Platform {
  /** The HTTP server's URL ('' for the worker role, which serves no HTTP). */
  url: string
  /** The sink worker once it runs (roles worker and all). */
  worker: Promise<SinkWorker> | null
  /** The source worker (declared source connectors) once it runs (roles worker and all). */
  sources: Promise<SourceWorker> | null
  /** Resolves once the registry runs and the topics and their schemas exist. */
  contracts: Promise<Contracts>
  /** Prometheus metrics of this process (GET /metrics). */
  metrics: Metrics
  close(): Promise<void>
}

export interface Contracts {
  /** The schema registry the platform uses (built-in, or the external schemaRegistry.url). */
  schemaRegistryUrl: string
  serde: AvroSerde
}

export interface StartOptions {
  /** Stop the stack servers on close() when this call started them (the default). */
  stopStackOnClose?: boolean
  /**
   * What this process runs: the HTTP API (management, ingestion, the built-in registry), the sink
   * worker (Kafka to the subscriptions' sinks), or both (the default). Several worker processes share
   * the subscriptions through leases.
   */
  roles?: PlatformRole
}

/** How often every partner's Kafka ACLs are compared with the store (heals a change made while Kafka was down). */
const PARTNER_RECONCILE_MS = 60_000

export async function startPlatform(config: AppConfig, logger: Logger, options: StartOptions = {}): Promise<Platform> {
  const roles = options.roles ?? 'all'
  const runApi = roles !== 'worker'
  const runWorker = roles !== 'api'
  if (!runApi && config.schemaRegistry.url === '' && config.schemaRegistry.port === 0) {
    // A worker finds the API process's built-in registry at schemaRegistry.host:port; port 0 names no address.
    throw new ConfigError(
      'the worker role uses the built-in schema registry of the api process: set ' +
        'SCHEMA_REGISTRY_URL to it, or SCHEMA_REGISTRY_PORT to the port the api ' +
        'process serves it on (not 0)',
      {
        field: 'schemaRegistry.port',
      },
    )
  }
  // Declared sources are checked before anything starts: a bad file is a ConfigError at boot.
  const declarations = runWorker ? loadSourceDeclarations(config.sources.file) : []
  const settings = stackSettings(config)
  let startedStack = false
  if (settings.services.length > 0) {
    logger.info('bringing up the local stack', { services: settings.services, dir: settings.dir })
    const results = await stackUp(settings, (msg) => logger.info(msg, { component: 'stack' }))
    startedStack = results.some((r) => r.action !== 'already running')
  } else {
    logger.info('using external Kafka and MongoDB; nothing to provision')
  }
  // The secrets key ring: sealing secrets at rest, and the internal credentials of the built-in registry.
  const keyRing = encryptionKeys(config, settings.dir, logger)

  // Tracing (docs/tracing.md) before anything that makes spans; off unless an exporter is configured.
  const tracing = await tracingFromConfig(config, logger)

  // Readiness asks each dependency afresh: one attempt, short timeouts, never a cached answer.
  const kafka = createKafka(config, logger, `${config.kafka.clientId}-health`, {
    connectionTimeout: 1000,
    retry: { retries: 0 },
  })
  const admin = createAdmin(kafka, { retry: { retries: 0 } })
  const mongo = createMongoClient(config)

  // Aborted by close(): the parts still starting give up.
  const closing = new AbortController()
  const closed = () => closing.signal.aborted
  /**
   * Starts a part of the platform once what it needs answers (Kafka, the store, the contracts):
   * `start` is tried until it succeeds, STARTUP_BACKOFF apart, and given up when the platform closes
   * (a part `stop` is given for, started just then, is stopped again).
   */
  const startWithRetry = async <T>(
    name: string,
    start: () => Promise<T>,
    o: { stop?: (part: T) => Promise<void>; failed?: (err: unknown) => void } = {},
  ): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        const part = await start()
        if (closed() && o.stop) {
          await o.stop(part)
          throw new Error(`platform closed while the ${name} started`)
        }
        return part
      } catch (err) {
        if (closed()) throw err
        o.failed?.(err)
        logger.warn(`${name} not ready; retrying`, { attempt, err })
        await sleep(backoffDelay(STARTUP_BACKOFF, attempt), closing.signal).catch(() => {
          throw new Error(`platform closed before it could start the ${name}`)
        })
      }
    }
  }

  // Event contracts: the built-in registry (unless an external one is configured), the topics, and
  // the key/value schemas of each topic registered under TopicNameStrategy subjects.
  let registry: RegistryServer | undefined
  // set below, in the API role, when partners have Kafka access (the registry accepts their credentials)
  let partnerKafka: PartnerKafka | undefined
  let contractsState: { ready: true; value: Contracts } | { ready: false; error: string } = {
    ready: false,
    error: 'starting',
  }
  // who may read and write what on the registry (also what the console's schema pages show a key)
  const registryAuth = registryAccess({
    controlPlane: () => controlPlane,
    internalPassword: internalPassword(keyRing),
    anonymousLoopbackReads: config.schemaRegistry.anonymousLoopbackReads,
    partnerKafka: () => partnerKafka,
  })
  const bootstrap = async (): Promise<Contracts> => {
    // the worker role uses the API process's built-in registry (or the external one)
    if (runApi && config.schemaRegistry.url === '' && !registry) {
      registry = await startSchemaRegistry(config, logger, {
        // API keys (admin, publisher, partner) and the platform's own processes (see docs/schema-registry.md)
        auth: registryAuth,
        // lazy: the control plane is created below, after the bootstrap started
        beforeRegister: (candidate) =>
          pinnedReaderCheck({
            cols: controlPlane.cols,
            topics: ALL_TOPICS,
            policy: config.schemaRegistry.pinnedReaderPolicy,
            logger,
          })(candidate),
      })
    }
    const serde = new AvroSerde(RegistryClient.fromConfig(config, keyRing, registry?.url))
    const created = await ensureTopics(admin)
    if (created.length > 0) logger.info('created topics', { topics: created })
    await registerTopicSchemas(serde)
    const value = { schemaRegistryUrl: serde.client.url, serde }
    contractsState = { ready: true, value }
    return value
  }
  const contracts = startWithRetry('event contracts', bootstrap, {
    failed: (err) => (contractsState = { ready: false, error: err instanceof Error ? err.message : String(err) }),
  })
  contracts.catch(() => undefined) // observed through /ready and the handle

  // Management API: the control plane's indexes first (idempotent), then secrets moved to the current key.
  const controlPlane = controlPlaneFromConfig(config, mongo.db(config.mongodb.database), logger, keyRing)
  // MongoDB may be down at start (/ready says so): retry until the indexes exist.
  let controlPlaneReady: Promise<void> | null = null
  const prepareControlPlane = (): Promise<void> =>
    (controlPlaneReady ??= controlPlane
      .init()
      .then(() => controlPlane.resealSecrets())
      .then(
        () => undefined,
        (err: unknown) => {
          controlPlaneReady = null
          throw err
        },
      ))
  await prepareControlPlane().catch((err: unknown) =>
    logger.error('control plane not ready (indexes); retrying', { err }),
  )
  const sweep = setInterval(() => {
    prepareControlPlane()
      .then(() => controlPlane.sweep())
      .catch((err: unknown) => logger.warn('control-plane sweep failed', { err }))
  }, config.management.sweepIntervalMs)
  sweep.unref()

  const metrics = new Metrics()

  // Sink worker: once the contracts and the control plane are ready (retried until they are).
  let sinkWorker: SinkWorker | undefined
  let sinks: OpenedSinkRuntime | undefined
  const startWorker = async (): Promise<SinkWorker> => {
    const { serde } = await contracts
    // the clients every sink of this worker shares (consumers/runtime.ts), each sink built by its type's plug-in
    sinks = openSinkRuntime(config, {
      guard: controlPlane.guard,
      secrets: controlPlane,
      serde,
      topics: ALL_TOPICS,
      logger,
    })
    const createSink = sinkFactory(sinks.runtime)
    const start = async () => {
      await prepareControlPlane()
      const w = new SinkWorker({
        kafka: createKafka(config, logger, `${config.kafka.clientId}-sinks`),
        controlPlane,
        db: mongo.db(config.mongodb.database),
        serde,
        topics: ALL_TOPICS,
        createSink,
        defaults: deliveryDefaults(config),
        logger,
        settings: { ...config.worker, workerId: config.worker.id },
        metrics,
      })
      await w.start()
      return w
    }
    return (sinkWorker = await startWithRetry('sink worker', start, { stop: (w) => w.stop() }))
  }
  const worker = runWorker ? startWorker() : null
  worker?.catch(() => undefined)

  // Source worker: runs the declared source connectors (csv-drop, mongodb), one instance each across workers.
  let sourceWorker: SourceWorker | undefined
  const dropRoot = sourcesDropRoot(config)
  const sourceRegistry = new SourceRegistry(controlPlane.cols, controlPlane.box, { dropRoot })
  const startSources = async (): Promise<SourceWorker> => {
    const { serde } = await contracts
    const start = async () => {
      await prepareControlPlane()
      await sourceRegistry.resealSecrets()
      const w = new SourceWorker({
        registry: sourceRegistry,
        db: mongo.db(config.mongodb.database),
        kafka: createKafka(config, logger, `${config.kafka.clientId}-sources`),
        serde,
        logger,
        urlGuard: controlPlane.guard,
        workerId: config.worker.id,
        declarations,
        leaseTtlMs: config.worker.leaseTtlMs,
        passMs: config.worker.pollMs,
        statusIntervalMs: config.worker.statusIntervalMs,
      })
      await w.start()
      return w
    }
    return (sourceWorker = await startWithRetry('source worker', start, { stop: (w) => w.stop() }))
  }
  const sources = runWorker ? startSources() : null
  sources?.catch(() => undefined)

  if (!runApi) {
    logger.info('platform running the sink worker only')
    return {
      url: '',
      contracts,
      worker,
      sources,
      metrics,
      async close() {
        closing.abort()
        clearInterval(sweep)
        await sourceWorker?.stop()
        await sinkWorker?.stop()
        await sinks?.close()
        await Promise.allSettled([admin.disconnect(), mongo.close()])
        await tracing?.shutdown() // the spans still buffered are exported first
        if (startedStack && options.stopStackOnClose !== false)
          await stackDown(settings, (msg) => logger.info(msg, { component: 'stack' }))
        logger.info('platform stopped')
      },
    }
  }

  // Event ingestion (POST /v1/events/{eventType}) needs the serde: it is mounted now and answers
  // 503 until the contracts are ready. Only publisher keys may publish, each at most ingest.rateLimit events/s.
  let ingest: HttpIngest | undefined
  const ingestRoute: RequestHandler = (req, res, next) => {
    if (ingest) return ingest.router(req, res, next)
    if (!req.path.startsWith('/v1/events/')) return next()
    res.setHeader('Retry-After', '5')
    sendProblem(res, {
      title: 'Service Unavailable',
      status: 503,
      detail: 'event ingestion is starting: the event contracts are not ready yet',
    })
  }
  void contracts
    .then(async ({ serde }) => {
      const candidate = createHttpIngest({
        kafka: createKafka(config, logger, `${config.kafka.clientId}-ingest`),
        serde,
        logger,
        authenticate: publisherAuthentication(controlPlane.keys),
        rateLimit: { perSecond: config.ingest.rateLimit.eventsPerSecond, burst: config.ingest.rateLimit.burst },
        idempotency: {
          collection: mongo.db(config.mongodb.database).collection('ingest_idempotency'),
          windowMs: config.ingest.idempotencyWindowMs,
        },
        maxEvents: config.ingest.maxEvents,
        bodyLimitBytes: config.ingest.bodyLimitBytes,
        bufferCapacity: config.ingest.bufferCapacity,
        retryAfterSeconds: config.ingest.retryAfterSeconds,
        metrics,
      })
      await candidate.start()
      if (closed()) return candidate.stop()
      ingest = candidate
      logger.info('event ingestion ready', { path: '/v1/events/{eventType}' })
    })
    .catch((err: unknown) => logger.error('event ingestion did not start', { err }))

  // The outbox relay runs in the API role: the API writes the outbox entries (a partner's profile
  // event with the change), so a write in this process wakes its relay at once; with several API
  // processes a lease lets one relay send, and the others scan for nothing until it lapses.
  let relay: OutboxRelay | undefined
  let stopOutboxNudge: (() => void) | undefined
  if (config.outbox.relayEnabled) {
    void contracts
      .then(async ({ serde }) => {
        const candidate = createOutboxRelay({
          kafka: createKafka(config, logger, `${config.kafka.clientId}-outbox`),
          serde,
          db: mongo.db(config.mongodb.database),
          logger,
          pollMs: config.outbox.pollMs,
          leaseTtlMs: config.outbox.leaseTtlMs,
        })
        await candidate.start()
        if (closed()) return candidate.stop()
        relay = candidate
        stopOutboxNudge = controlPlane.onOutboxWrite(() => candidate.nudge())
        logger.info('outbox relay running')
      })
      .catch((err: unknown) => logger.error('outbox relay did not start', { err }))
  }

  // Deals and leads (docs/deals.md): their relay beside the outbox relay, and the expiry job (safe in
  // every API process at once).
  let dealRelays: DealRelays | undefined
  if (config.outbox.relayEnabled) {
    void contracts
      .then(async ({ serde }) => {
        const started = await startDealRelays({
          kafka: createKafka(config, logger, `${config.kafka.clientId}-deals`),
          serde,
          db: mongo.db(config.mongodb.database),
          logger,
          registry: controlPlane.registry,
          pollMs: config.outbox.pollMs,
          leaseTtlMs: config.outbox.leaseTtlMs,
        })
        if (closed()) return started.stop()
        dealRelays = started
      })
      .catch((err: unknown) => logger.error('deal relays did not start', { err }))
  }
  const dealExpiry =
    config.deals.expiryIntervalMs > 0
      ? setInterval(() => {
          prepareControlPlane()
            .then(() => controlPlane.registry.expiry.runOnce())
            .catch((err: unknown) => logger.warn('deal expiry failed; the next pass retries', { err }))
        }, config.deals.expiryIntervalMs)
      : undefined
  dealExpiry?.unref()

  // Partners' own Kafka topics: their SCRAM users and ACLs, reconciled after each change and every minute.
  const partnerAccess = partnerKafkaAccess(config)
  let partnerKafkaAdmin: Admin | undefined
  let partnerReconcile: NodeJS.Timeout | undefined
  if (partnerAccess.bootstrapServers.length > 0) {
    partnerKafkaAdmin = createAdmin(createKafka(config, logger, `${config.kafka.clientId}-partner-access`))
    const pk = new PartnerKafka({
      cols: controlPlane.cols,
      access: partnerAccess,
      admin: partnerKafkaAdmin,
      scram: new KafkaScramAdmin(kafkaConfig(config, `${config.kafka.clientId}-partner-access`)),
      logger: logger.child({ component: 'partner-kafka' }),
      registryUrl: () => (contractsState.ready ? contractsState.value.schemaRegistryUrl : config.schemaRegistry.url),
    })
    partnerKafka = pk
    controlPlane.onPartnerAccessChange(async ({ partnerId, removedTopics }) => {
      for (const t of removedTopics) await pk.deleteTopic(t)
      await pk.reconcile(partnerId)
    })
    partnerReconcile = setInterval(() => {
      pk.reconcileAll().catch((err: unknown) =>
        logger.warn('partner Kafka access reconcile failed; retrying in a minute', { err }),
      )
    }, PARTNER_RECONCILE_MS)
    partnerReconcile.unref()
  }

  const app = createApp({
    logger,
    metrics,
    routers: [ingestRoute],
    management: {
      controlPlane,
      logger,
      bodyLimit: config.management.bodyLimit,
      rateLimit: config.management.rateLimit,
      sourceDropRoot: dropRoot,
      ...(partnerKafka ? { partnerKafka } : {}),
    },
    ...(config.console.enabled
      ? {
          console: {
            cp: controlPlane,
            sources: sourceRegistry,
            logger,
            db: mongo.db(config.mongodb.database),
            sessionTtlSeconds: config.console.sessionTtlSeconds,
            secureCookies: config.console.secureCookies,
            registry: {
              reader: () => {
                const state = contractsState
                return state.ready
                  ? { get: <T>(path: string) => state.value.serde.client.request<T>('GET', path) }
                  : null
              },
              principalOf: (p) => registryAuth.principalOf(p),
            },
          },
        }
      : {}),
    readiness: {
      kafka: async () => {
        await admin.connect() // a no-op when connected; reconnects after an outage
        const cluster = await admin.describeCluster()
        if (cluster.brokers.length === 0) throw new Error('no broker in the cluster metadata')
      },
      mongodb: async () => {
        await mongo.db(config.mongodb.database).command({ ping: 1 })
        await prepareControlPlane()
      },
      schemaRegistry: async () => {
        if (!contractsState.ready) throw new Error(`event contracts not ready: ${contractsState.error}`)
        // With the platform's own credentials: the built-in registry answers nobody without them.
        await contractsState.value.serde.client.request('GET', '/subjects?limit=1', undefined, 2000)
      },
    },
  })

  let server: Server | undefined
  const close = async (): Promise<void> => {
    closing.abort()
    clearInterval(sweep)
    await ingest?.stop()
    stopOutboxNudge?.()
    await relay?.stop()
    clearInterval(dealExpiry)
    await dealRelays?.stop()
    await controlPlane.registry.close()
    await sourceWorker?.stop()
    await sinkWorker?.stop()
    await sinks?.close()
    if (server) {
      const s = server
      await new Promise<void>((resolve) => {
        s.close(() => resolve())
        s.closeIdleConnections()
      })
    }
    await registry?.close()
    clearInterval(partnerReconcile)
    await Promise.allSettled([
      admin.disconnect(),
      mongo.close(),
      ...(partnerKafkaAdmin ? [partnerKafkaAdmin.disconnect()] : []),
    ])
    await tracing?.shutdown() // the spans still buffered are exported first
    if (startedStack && options.stopStackOnClose !== false) {
      await stackDown(settings, (msg) => logger.info(msg, { component: 'stack' }))
    }
    logger.info('platform stopped')
  }

  try {
    server = await new Promise<Server>((resolve, reject) => {
      // Express 5 calls back on a failed listen too (e.g. EADDRINUSE), with the error
      const s = app.listen(config.http.port, config.http.host, (err?: Error) => (err ? reject(err) : resolve(s)))
    })
  } catch (err) {
    // nothing started here may outlive the failed start (workers, clients, the registry)
    await close().catch(() => undefined)
    throw new ConfigError(
      `the platform cannot listen on ${config.http.host}:${config.http.port} ` +
        `(HTTP_HOST, HTTP_PORT): ${(err as Error).message}`,
      { field: 'http.port' },
      { cause: err },
    )
  }
  server.keepAliveTimeout = 65_000
  answerParseErrorsAsProblems(server)
  const addr = server.address() as AddressInfo
  const url = `http://${addr.address}:${addr.port}`
  logger.info('platform listening', { url })

  return {
    url,
    contracts,
    metrics,
    worker,
    sources,
    close,
  }
}
