/**
 * The one configuration schema of Distributary. Every setting has a doc string, an environment
 * variable and a default; `loadConfig` validates it strictly at boot. Secrets are `sensitive`, so
 * convict masks them in `toString()` and in validation messages.
 */
export const SASL_MECHANISMS = ['none', 'plain', 'scram-sha-256', 'scram-sha-512'] as const
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const
export const TRACES_EXPORTERS = ['', 'none', 'otlp'] as const
export const TRACES_SAMPLERS = [
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
  'always_on',
  'always_off',
  'traceidratio',
] as const

const port = (doc: string, def: number, env: string) => ({ doc, format: 'port', default: def, env })

export const configSchema = {
  log: {
    level: {
      doc: 'Minimum level of the JSON log lines written to stdout.',
      format: [...LOG_LEVELS],
      default: 'info',
      env: 'LOG_LEVEL',
    },
  },
  // OpenTelemetry's own variable names (docs/tracing.md), so that an environment set up for an
  // OpenTelemetry SDK configures this one too.
  tracing: {
    exporter: {
      doc:
        'Where spans go: otlp (OTLP over HTTP, JSON encoding) or none. Empty: otlp ' +
        'when an OTLP endpoint is set, else none, so tracing is off by default (an ' +
        "event's traceparent still travels to partners, see docs/tracing.md).",
      format: [...TRACES_EXPORTERS],
      default: '',
      env: 'OTEL_TRACES_EXPORTER',
    },
    endpoint: {
      doc: 'Base URL of an OTLP/HTTP collector, e.g. http://otel-collector:4318 (Jaeger, Tempo and the OpenTelemetry Collector listen there); spans go to <endpoint>/v1/traces.',
      format: 'url-or-empty',
      default: '',
      env: 'OTEL_EXPORTER_OTLP_ENDPOINT',
    },
    tracesEndpoint: {
      doc: 'Full URL spans are posted to (wins over OTEL_EXPORTER_OTLP_ENDPOINT), e.g. http://otel-collector:4318/v1/traces.',
      format: 'url-or-empty',
      default: '',
      env: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
    },
    headers: {
      doc:
        'Headers of every OTLP export request, as comma-separated key=value pairs ' +
        'with percent-encoded values, e.g. authorization=Bearer%20<token> for a ' +
        'hosted collector.',
      format: 'key-value-list',
      default: '',
      env: 'OTEL_EXPORTER_OTLP_HEADERS',
      sensitive: true,
    },
    serviceName: {
      doc: 'service.name of every span this process exports.',
      format: String,
      default: 'distributary',
      env: 'OTEL_SERVICE_NAME',
    },
    resourceAttributes: {
      doc:
        'More resource attributes of every span, as comma-separated key=value pairs ' +
        'with percent-encoded values, e.g. deployment.environment.name=production.',
      format: 'key-value-list',
      default: '',
      env: 'OTEL_RESOURCE_ATTRIBUTES',
    },
    sampler: {
      doc:
        'Which traces are recorded. parentbased_*: a request or event whose ' +
        'traceparent says sampled (or not) is recorded (or not) as its caller ' +
        'decided; new traces follow the rest of the name: always_on, always_off, or ' +
        'traceidratio (OTEL_TRACES_SAMPLER_ARG of them).',
      format: [...TRACES_SAMPLERS],
      default: 'parentbased_always_on',
      env: 'OTEL_TRACES_SAMPLER',
    },
    samplerArg: {
      doc: 'The fraction of new traces the traceidratio samplers record, from 0 to 1.',
      format: 'fraction',
      default: 1,
      env: 'OTEL_TRACES_SAMPLER_ARG',
    },
  },
  http: {
    host: {
      doc: 'Address the API and ingestion server listens on.',
      format: String,
      default: '127.0.0.1',
      env: 'HTTP_HOST',
    },
    port: port('Port of the API and ingestion server.', 8080, 'HTTP_PORT'),
  },
  kafka: {
    brokers: {
      doc:
        'Comma-separated host:port list of an external Kafka cluster. Empty: use the ' +
        'local stack (provisioned by `distributary stack up`): its broker, or its ' +
        'three with STACK_KAFKA_BROKERS=3.',
      format: 'broker-list',
      default: '',
      env: 'KAFKA_BROKERS',
    },
    clientId: {
      doc: 'Kafka client id prefix of every producer, consumer and admin client.',
      format: String,
      default: 'distributary',
      env: 'KAFKA_CLIENT_ID',
    },
    ssl: {
      enabled: { doc: 'Connect to Kafka over TLS.', format: 'boolean', default: false, env: 'KAFKA_SSL' },
      caFile: {
        doc: "PEM file of the CA that signed the brokers' certificates (empty: the system CAs).",
        format: String,
        default: '',
        env: 'KAFKA_SSL_CA_FILE',
      },
      rejectUnauthorized: {
        doc: "Verify the brokers' certificates. Only for tests against self-signed brokers.",
        format: 'boolean',
        default: true,
        env: 'KAFKA_SSL_REJECT_UNAUTHORIZED',
      },
    },
    sasl: {
      mechanism: {
        doc: 'SASL mechanism for Kafka authentication.',
        format: [...SASL_MECHANISMS],
        default: 'none',
        env: 'KAFKA_SASL_MECHANISM',
      },
      username: { doc: 'SASL user name.', format: String, default: '', env: 'KAFKA_SASL_USERNAME' },
      password: { doc: 'SASL password.', format: String, default: '', env: 'KAFKA_SASL_PASSWORD', sensitive: true },
    },
    partners: {
      bootstrapServers: {
        doc:
          'Comma-separated host:port list partners connect to for their kafka-topic ' +
          "subscriptions (the brokers' SASL listener, as partners reach it). Empty: the " +
          "local stack's partner listener when the local stack is used; otherwise " +
          'partners get no Kafka access (kafka-topic subscriptions are refused).',
        format: 'broker-list',
        default: '',
        env: 'KAFKA_PARTNER_BOOTSTRAP_SERVERS',
      },
      securityProtocol: {
        doc:
          "Security protocol of that listener as partners' clients name it " +
          '(security.protocol). Production clusters: SASL_SSL. Empty: SASL_PLAINTEXT ' +
          'for the local stack (loopback only), SASL_SSL otherwise.',
        format: ['', 'SASL_SSL', 'SASL_PLAINTEXT'],
        default: '',
        env: 'KAFKA_PARTNER_SECURITY_PROTOCOL',
      },
      topicPrefix: {
        doc:
          'Prefix of every partner topic, consumer group and Kafka user: ' +
          '<prefix><partner-slug>.<event-type>. Partners are granted ACLs on their own ' +
          'names under it only.',
        format: 'kafka-name-prefix',
        default: 'partner.',
        env: 'KAFKA_PARTNER_TOPIC_PREFIX',
      },
    },
    connectionTimeoutMs: {
      doc: 'Timeout of one connection attempt to a broker, in milliseconds.',
      format: 'nat',
      default: 3000,
      env: 'KAFKA_CONNECTION_TIMEOUT_MS',
    },
    requestTimeoutMs: {
      doc: 'Timeout of one Kafka request, in milliseconds.',
      format: 'nat',
      default: 30000,
      env: 'KAFKA_REQUEST_TIMEOUT_MS',
    },
  },
  mongodb: {
    uri: {
      doc: 'MongoDB connection string (credentials and tls=true go in it). Empty: use the local stack.',
      format: 'mongodb-uri',
      default: '',
      env: 'MONGODB_URI',
      sensitive: true,
    },
    database: {
      doc: 'Database holding the control plane (partners, keys, grants, subscriptions, delivery log).',
      format: String,
      default: 'distributary',
      env: 'MONGODB_DATABASE',
    },
    maxPoolSize: {
      doc:
        'Connections to MongoDB per process at most. Kept well under 50 by default: ' +
        'FerretDB v1 (the local stack) serves each database from 100 SQLite ' +
        'connections and an update can hold two of them, so about 50 concurrent ' +
        'updates from one process could take them all and wait for ever.',
      format: 'nat',
      default: 24,
      env: 'MONGODB_MAX_POOL_SIZE',
    },
    serverSelectionTimeoutMs: {
      doc: 'How long the driver waits for a reachable server, in milliseconds.',
      format: 'nat',
      default: 5000,
      env: 'MONGODB_SERVER_SELECTION_TIMEOUT_MS',
    },
  },
  schemaRegistry: {
    url: {
      doc: 'URL of an external Confluent-compatible Schema Registry. Empty: the built-in registry is started.',
      format: 'url-or-empty',
      default: '',
      env: 'SCHEMA_REGISTRY_URL',
    },
    username: {
      doc: 'Basic-auth user of the external registry.',
      format: String,
      default: '',
      env: 'SCHEMA_REGISTRY_USERNAME',
    },
    password: {
      doc: 'Basic-auth password of the external registry.',
      format: String,
      default: '',
      env: 'SCHEMA_REGISTRY_PASSWORD',
      sensitive: true,
    },
    host: {
      doc: 'Address the built-in registry listens on.',
      format: String,
      default: '127.0.0.1',
      env: 'SCHEMA_REGISTRY_HOST',
    },
    port: port('Port of the built-in registry.', 8081, 'SCHEMA_REGISTRY_PORT'),
    anonymousLoopbackReads: {
      doc:
        'Let requests without credentials from a loopback address (127.0.0.0/8, ::1) ' +
        'read the built-in registry (subjects, schemas, config), for development. ' +
        'Writes always need credentials (see docs/schema-registry.md).',
      format: 'boolean',
      default: false,
      env: 'SCHEMA_REGISTRY_ANONYMOUS_LOOPBACK_READS',
    },
    topic: {
      doc:
        "Compacted single-partition topic holding the built-in registry's schemas " +
        "(Confluent's kafkastore.topic); created when missing.",
      format: String,
      default: '_schemas',
      env: 'SCHEMA_REGISTRY_TOPIC',
    },
    pinnedReaderPolicy: {
      doc:
        'What the built-in registry does with a new version of a value subject that a ' +
        "subscription's pinned reader schema cannot read: refuse (409 naming the " +
        'subscriptions and fields) or flag (register it and mark the affected ' +
        'subscriptions with schemaIssues).',
      format: ['refuse', 'flag'],
      default: 'refuse',
      env: 'SCHEMA_REGISTRY_PINNED_READER_POLICY',
    },
  },
  management: {
    adminApiKey: {
      doc:
        'Bootstrap admin API key (at least 32 characters), accepted on every ' +
        'management route so that a fresh install can create organizations and keys ' +
        'without a database edit. Empty: no bootstrap key.',
      format: String,
      default: '',
      env: 'ADMIN_API_KEY',
      sensitive: true,
    },
    bodyLimit: {
      doc: 'Largest accepted JSON request body of the management API (e.g. 256kb).',
      format: String,
      default: '256kb',
      env: 'MANAGEMENT_BODY_LIMIT',
    },
    rateLimit: {
      perSecond: {
        doc: 'Sustained requests per second allowed per API key (token bucket refill rate).',
        format: 'nat',
        default: 20,
        env: 'MANAGEMENT_RATE_LIMIT_PER_SECOND',
      },
      burst: {
        doc: 'Requests an API key may send at once before the rate limit applies (token bucket size).',
        format: 'nat',
        default: 60,
        env: 'MANAGEMENT_RATE_LIMIT_BURST',
      },
    },
    idempotencyTtlSeconds: {
      doc: 'How long an Idempotency-Key of a create is remembered, in seconds.',
      format: 'nat',
      default: 86400,
      env: 'MANAGEMENT_IDEMPOTENCY_TTL_SECONDS',
    },
    sweepIntervalMs: {
      doc: 'Interval of the sweep that deletes expired idempotency records and webhook secrets, in milliseconds.',
      format: 'nat',
      default: 600000,
      env: 'MANAGEMENT_SWEEP_INTERVAL_MS',
    },
    apiKeyCacheMs: {
      doc:
        'How long a verified API key is trusted without reading its record again, in ' +
        'milliseconds (bounds how long a revocation takes to reach other processes). ' +
        'Afterwards one read confirms it; a key is hashed once per process.',
      format: 'nat',
      default: 30000,
      env: 'MANAGEMENT_API_KEY_CACHE_MS',
    },
    keyAttempts: {
      perSecond: {
        doc:
          'Failed API key attempts per second allowed per client address (IPv6: per ' +
          '/64) and per key prefix, on the management API and ingestion alike (token ' +
          'bucket refill rate; 0: unlimited). Checked before the key is looked up or ' +
          'hashed: an empty bucket answers 429 without that work. A valid key gives its ' +
          'attempt back.',
        format: 'nat',
        default: 1,
        env: 'MANAGEMENT_KEY_ATTEMPTS_PER_SECOND',
      },
      burst: {
        doc:
          'Failed API key attempts a client address or a key prefix may make at once ' +
          'before the attempt limit applies (token bucket size).',
        format: 'nat',
        default: 20,
        env: 'MANAGEMENT_KEY_ATTEMPTS_BURST',
      },
    },
    keyVerifyConcurrency: {
      doc:
        "API key verifications (scrypt, in libuv's thread pool of 4 threads shared " +
        'with DNS lookups and file I/O) running at once per process.',
      format: 'positive-int',
      default: 2,
      env: 'MANAGEMENT_KEY_VERIFY_CONCURRENCY',
    },
    keyVerifyQueue: {
      doc:
        'API key verifications waiting for a slot at most; beyond, a request with a ' +
        'key this process has not verified yet answers 503 with Retry-After.',
      format: 'nat',
      default: 32,
      env: 'MANAGEMENT_KEY_VERIFY_QUEUE',
    },
  },
  console: {
    enabled: {
      doc: 'Serve the web console under /console in API processes (sign-in with an API key; docs/console.md).',
      format: 'boolean',
      default: true,
      env: 'CONSOLE_ENABLED',
    },
    sessionTtlSeconds: {
      doc:
        'How long a console session lasts after sign-in, in seconds (absolute: then sign in again). ' +
        'Signing out, or revoking the key, ends it at once.',
      format: 'positive-int',
      default: 28800,
      env: 'CONSOLE_SESSION_TTL_SECONDS',
    },
    secureCookies: {
      doc:
        "Mark the console's cookies Secure on every answer, for a platform behind a TLS-terminating proxy " +
        '(it sees plain HTTP). Off: Secure when the request itself came over TLS.',
      format: 'boolean',
      default: false,
      env: 'CONSOLE_SECURE_COOKIES',
    },
  },
  secrets: {
    encryptionKeys: {
      doc:
        'Key ring for secrets at rest (webhook secrets, sink credentials): ' +
        'comma-separated id:base64 pairs of 32-byte AES-256-GCM keys, e.g. ' +
        'k2:<base64>,k1:<base64>. Older keys stay to decrypt until re-encryption. ' +
        'Empty with the local stack: a key file in the stack folder is created and ' +
        'used.',
      format: String,
      default: '',
      env: 'SECRETS_ENCRYPTION_KEYS',
      sensitive: true,
    },
    currentKeyId: {
      doc: 'Id of the key in secrets.encryptionKeys that encrypts new secrets. Empty: the first key listed.',
      format: String,
      default: '',
      env: 'SECRETS_CURRENT_KEY_ID',
    },
  },
  urlGuard: {
    allowlist: {
      doc:
        'Comma-separated host names (*.suffix for a domain), IP addresses or CIDRs ' +
        'that outbound connections (webhook and REST sinks, OAuth token URLs, MongoDB ' +
        'sinks and sources) may reach although they are not public: loopback, ' +
        'private, link-local, or any other special-purpose range (e.g. 127.0.0.1 for ' +
        'tests). Empty: only public addresses.',
      format: String,
      default: '',
      env: 'URL_GUARD_ALLOWLIST',
    },
  },
  ingest: {
    maxEvents: {
      doc: 'Events per POST /v1/events/{eventType} request at most (more: 413).',
      format: 'nat',
      default: 1000,
      env: 'INGEST_MAX_EVENTS',
    },
    bodyLimitBytes: {
      doc: 'Body limit of an ingestion request, in bytes (more: 413).',
      format: 'nat',
      default: 5 * 1024 * 1024,
      env: 'INGEST_BODY_LIMIT_BYTES',
    },
    idempotencyWindowMs: {
      doc: 'How long an Idempotency-Key replays its first answer, in milliseconds.',
      format: 'nat',
      default: 24 * 60 * 60 * 1000,
      env: 'INGEST_IDEMPOTENCY_WINDOW_MS',
    },
    bufferCapacity: {
      doc: 'Events waiting for Kafka at most; beyond it ingestion answers 503 (back-pressure).',
      format: 'nat',
      default: 20000,
      env: 'INGEST_BUFFER_CAPACITY',
    },
    retryAfterSeconds: {
      doc: 'Retry-After of a 503 when the events could not be stored.',
      format: 'nat',
      default: 5,
      env: 'INGEST_RETRY_AFTER_SECONDS',
    },
    rateLimit: {
      eventsPerSecond: {
        doc:
          'Events per second allowed per API key on POST /v1/events/{eventType}, per ' +
          'process (token bucket refill rate; 0: unlimited). A request is admitted ' +
          'while the key has a token left and is charged its number of events; beyond, ' +
          '429 with Retry-After and the RateLimit headers, before the body is read. ' +
          'Well above the 1,000 to 5,000 events/s of the latency benchmark.',
        format: 'nat',
        default: 10000,
        env: 'INGEST_RATE_LIMIT_EVENTS_PER_SECOND',
      },
      burst: {
        doc: 'Events an API key may send at once before its ingestion rate limit applies (token bucket size).',
        format: 'nat',
        default: 20000,
        env: 'INGEST_RATE_LIMIT_BURST',
      },
    },
  },
  outbox: {
    relayEnabled: {
      doc:
        'Run the outbox relay in API processes: it produces the events the control ' +
        "plane writes with its changes (a partner's profile to partners.profiles). " +
        'One relay sends at a time (a lease); turn it off only where another API ' +
        'process relays.',
      format: 'boolean',
      default: true,
      env: 'OUTBOX_RELAY_ENABLED',
    },
    pollMs: {
      doc:
        "Interval of the outbox relay's scan for events written by other API " +
        'processes, in milliseconds (writes in its own process wake it at once).',
      format: 'nat',
      default: 1000,
      env: 'OUTBOX_POLL_MS',
    },
    leaseTtlMs: {
      doc:
        "How long the outbox relay's lease lasts without renewal; another API process " +
        'takes the relay over after about this long, in milliseconds.',
      format: 'nat',
      default: 10000,
      env: 'OUTBOX_LEASE_TTL_MS',
    },
  },
  deals: {
    protectionDays: {
      doc:
        'Days of protection a deal approval gives (protectionExpiresAt), ' +
        "unless the publisher's profile sets dealProgram.protectionDays.",
      format: 'nat',
      default: 90,
      env: 'DEALS_PROTECTION_DAYS',
    },
    reminderDays: {
      doc:
        "Days before the end of a deal's protection its deal.expiring reminder goes (once), " +
        "unless the publisher's profile sets dealProgram.reminderDays.",
      format: 'nat',
      default: 7,
      env: 'DEALS_REMINDER_DAYS',
    },
    leadAcceptHours: {
      doc:
        'Hours a partner has to accept or decline a lead when the publisher gives no acceptBy; ' +
        'unanswered, the lead expires back to the publisher.',
      format: 'nat',
      default: 48,
      env: 'DEALS_LEAD_ACCEPT_HOURS',
    },
    expiryIntervalMs: {
      doc:
        'Interval of the deal and lead expiry job in API processes (expired approvals, reminders, ' +
        'unanswered leads), in milliseconds; safe with several processes. 0 turns it off.',
      format: 'nat',
      default: 60000,
      env: 'DEALS_EXPIRY_INTERVAL_MS',
    },
  },
  sources: {
    file: {
      doc:
        'JSON file declaring source connectors, upserted by name when a worker ' +
        'starts: an array of { name, kind (csv-drop | mongodb), publisher ' +
        '(organization id or slug), config, desiredState? }. A state set through the ' +
        'API is kept across restarts. Empty: none.',
      format: String,
      default: '',
      env: 'SOURCES_FILE',
    },
    dropRoot: {
      doc:
        'Folder holding one drop folder per publisher, <dropRoot>/<publisher id>/: a ' +
        "CSV drop source's dir, stateDir and processedDir lie inside its publisher's " +
        '(relative to it, or absolute inside it; 422 otherwise, and checked by real ' +
        'path when the source starts), so that no source reads, moves or writes files ' +
        "elsewhere on the worker's host. Empty: drop/ in the stack folder (STACK_DIR, " +
        'by default .stack/drop).',
      format: String,
      default: '',
      env: 'SOURCES_DROP_ROOT',
    },
  },
  bench: {
    csvRows: {
      doc: "Rows of the stock file of `npm run bench -- csv` (the issue's full run: 1000000).",
      format: 'nat',
      default: 100000,
      env: 'BENCH_CSV_ROWS',
    },
    latencyRate: {
      doc:
        'Open-loop rate of `npm run bench -- latency` (POST /v1/events, one event ' +
        'each, and the raw kafkajs baseline), in events/s (the issue: 1000).',
      format: 'nat',
      default: 1000,
      env: 'BENCH_LATENCY_RATE',
    },
    latencyBrokerWarmupMs: {
      doc:
        'Raw kafkajs traffic at the latency rate that `npm run bench -- latency` ' +
        'sends the broker before either arm, in milliseconds (a broker fresh from ' +
        '`npm run stack:up` compiles its produce and fetch paths over its first tens ' +
        'of seconds of traffic); 0 skips it.',
      format: 'nat',
      default: 30000,
      env: 'BENCH_LATENCY_BROKER_WARMUP_MS',
    },
    latencyBatchMs: {
      doc:
        'How the publisher of `npm run bench -- latency` sends: 0, one event per request at ' +
        'its time; more, every this many milliseconds the events that came due in one request ' +
        '(the raw kafkajs baseline likewise), each event still timed from its own time.',
      format: 'nat',
      default: 0,
      env: 'BENCH_LATENCY_BATCH_MS',
    },
    collapseEvents: {
      doc: 'Events that wait while the partner is paused in `npm run bench -- collapse` (the issue: 1000000).',
      format: 'nat',
      default: 1_000_000,
      env: 'BENCH_COLLAPSE_EVENTS',
    },
    collapseKeys: {
      doc: 'Keys those events are spread over (the issue: 10000): what a collapsed catch-up delivers.',
      format: 'nat',
      default: 10_000,
      env: 'BENCH_COLLAPSE_KEYS',
    },
    snapshotKeys: {
      doc:
        'Keys of the topic of `npm run bench -- snapshot-bootstrap`, each written twice: what a new ' +
        "partner's snapshot delivers (the issue: 1000000; 100000 for a quick run).",
      format: 'positive-int',
      default: 1_000_000,
      env: 'BENCH_SNAPSHOT_KEYS',
    },
    partnersSubscriptions: {
      doc: 'Active webhook subscriptions on the one worker of `npm run bench -- partners` (the issue: 1000).',
      format: 'nat',
      default: 1000,
      env: 'BENCH_PARTNERS_SUBSCRIPTIONS',
    },
    partnersRate: {
      doc:
        'Aggregate events/s of `npm run bench -- partners` (the issue: 1000), spread ' +
        'over the subscriptions: each wants its own rows (subscription i is filtered ' +
        'to SKU-i) and event n is SKU-(n mod subscriptions).',
      format: 'nat',
      default: 1000,
      env: 'BENCH_PARTNERS_RATE',
    },
    partnersWorkers: {
      doc:
        'Sink workers sharing the subscriptions of `npm run bench -- partners` (1: the one ' +
        "worker of the issue's p99 and RSS; 2: also each worker's share, the issue: 50 % ± 10 %).",
      format: 'positive-int',
      default: 1,
      env: 'BENCH_PARTNERS_WORKERS',
    },
    partnersCpuProf: {
      doc:
        'A file `npm run bench -- partners` writes a CPU profile of the bench process (the one ' +
        'worker) to, over the measured phase (open it in DevTools or speedscope); empty: none.',
      format: String,
      default: '',
      env: 'BENCH_PARTNERS_CPU_PROF',
    },
    partnerTopicsSubscriptions: {
      doc: 'Kafka-topic subscriptions (partner topics) of `npm run bench -- partner-topics`.',
      format: 'positive-int',
      default: 100,
      env: 'BENCH_PARTNER_TOPICS_SUBSCRIPTIONS',
    },
    partnerTopicsEvents: {
      doc:
        'Source events of the throughput phase of `npm run bench -- partner-topics` (each one ' +
        'record per subscription: 2000 x 100 = 200,000 partner records).',
      format: 'positive-int',
      default: 2000,
      env: 'BENCH_PARTNER_TOPICS_EVENTS',
    },
    partnerTopicsSkipLatency: {
      doc: 'Run only the throughput phase of `npm run bench -- partner-topics` (no latency phase).',
      format: 'boolean',
      default: false,
      env: 'BENCH_PARTNER_TOPICS_SKIP_LATENCY',
    },
    deals: {
      doc:
        'Deal registrations of `npm run bench -- deals` (at least 200: a p99 of fewer rests on ' +
        'a single registration).',
      format: 'positive-int',
      default: 200,
      env: 'BENCH_DEALS',
    },
    dealsRate: {
      doc: 'Deal registrations per second of `npm run bench -- deals`.',
      format: 'positive-int',
      default: 5,
      env: 'BENCH_DEALS_RATE',
    },
    consoleDeliveries: {
      doc: 'Deliveries in the delivery log of the subscription of `npm run bench -- console`.',
      format: 'positive-int',
      default: 100_000,
      env: 'BENCH_CONSOLE_DELIVERIES',
    },
    csvCpuProf: {
      doc:
        "A folder `npm run bench -- csv` has the platform arm's child process write CPU profiles " +
        'to (node --cpu-prof-dir); empty: none.',
      format: String,
      default: '',
      env: 'BENCH_CSV_CPU_PROF',
    },
    latencyDump: {
      doc:
        "A CSV file `npm run bench -- latency` writes every event's intended send, 202 and " +
        'arrival times to (one line per event), to find where a tail comes from; empty: none.',
      format: String,
      default: '',
      env: 'BENCH_LATENCY_DUMP',
    },
  },
  cli: {
    apiUrl: {
      doc: 'Management API the CLI commands (partners, subscriptions, connectors, dlq) talk to. Empty: http://<http.host>:<http.port>.',
      format: 'url-or-empty',
      default: '',
      env: 'DISTRIBUTARY_API_URL',
    },
    apiKey: {
      doc: 'API key the CLI commands send (Authorization: Bearer). Empty: ADMIN_API_KEY.',
      format: String,
      default: '',
      env: 'DISTRIBUTARY_API_KEY',
      sensitive: true,
    },
  },
  stack: {
    dir: {
      doc: "Folder of this checkout's local stack: data, logs, pid files (git-ignored). Empty: .stack/ in the project.",
      format: String,
      default: '',
      env: 'STACK_DIR',
    },
    cacheDir: {
      doc:
        'User-level cache of what the stack downloads or builds (Kafka jars, the ' +
        'FerretDB binary), shared by every checkout. Empty: ' +
        '$XDG_CACHE_HOME/distributary or ~/.cache/distributary.',
      format: String,
      default: '',
      env: 'STACK_CACHE_DIR',
    },
    kafka: {
      version: {
        doc: 'Apache Kafka version resolved from Maven Central (org.apache.kafka:kafka_2.13).',
        format: String,
        default: '4.1.1',
        env: 'STACK_KAFKA_VERSION',
      },
      brokers: {
        doc:
          'Kafka nodes of the local stack: 1 (one broker+controller node) or 3 (three ' +
          'broker+controller nodes, node ids 1 to 3, forming the KRaft controller ' +
          'quorum; a broker may fail without losing acknowledged events). KAFKA_BROKERS ' +
          'for the platform then lists the three brokers.',
        format: 'kafka-node-count',
        default: 1,
        env: 'STACK_KAFKA_BROKERS',
      },
      port: port(
        'Port of the local Kafka broker; with several, of the first (the others take ' +
          'the next ports: 9092, 9093, 9094).',
        9092,
        'STACK_KAFKA_PORT',
      ),
      controllerPort: port(
        'Port of the local KRaft controller; with several nodes, of the first (the ' +
          "others take the next ports). 0: the port after the last broker's (9093 with " +
          'one broker, 9095 to 9097 with three).',
        0,
        'STACK_KAFKA_CONTROLLER_PORT',
      ),
      partnerPort: port(
        "Port of the local Kafka broker's partner listener (SASL_PLAINTEXT with " +
          'SCRAM-SHA-512, ACLs enforced: partners read their own topics there); with ' +
          "several nodes, of the first. 0: the port after the last controller's (9094 " +
          'with one node, 9098 to 9100 with three).',
        0,
        'STACK_KAFKA_PARTNER_PORT',
      ),
      heap: {
        doc: 'JVM heap of each local Kafka node (-Xmx), sized for a 2-core machine.',
        format: String,
        default: '512m',
        env: 'STACK_KAFKA_HEAP',
      },
    },
    mongodb: {
      port: port('Port of the local MongoDB-compatible server (FerretDB).', 27017, 'STACK_MONGODB_PORT'),
    },
    readyTimeoutMs: {
      doc: 'How long `stack up` waits for each server to answer, in milliseconds.',
      format: 'nat',
      default: 120000,
      env: 'STACK_READY_TIMEOUT_MS',
    },
  },
  worker: {
    id: {
      doc:
        'Id of this sink worker process in leases and status reports (one per live ' +
        'process: a second live process with the same id refuses to start; a process ' +
        "restarted with it takes its predecessor's subscriptions back). Empty: " +
        '<hostname>-<pid>-<random>.',
      format: String,
      default: '',
      env: 'WORKER_ID',
    },
    groupId: {
      doc:
        'Prefix of the Kafka consumer groups of the sink workers: each worker process ' +
        'reads every partition once in a group of its own, <groupId>.<worker id>.<8 ' +
        'hex digits, new at every start>, and commits the minimum delivered position ' +
        'of the subscriptions it holds.',
      format: String,
      default: 'distributary-sinks',
      env: 'WORKER_GROUP_ID',
    },
    deadLetterTopic: {
      doc:
        'Topic receiving dead letters (key: subscription id; value: the original ' +
        'bytes; headers: the reason and origin). Created when missing.',
      format: String,
      default: 'distributary.dead-letters',
      env: 'WORKER_DEAD_LETTER_TOPIC',
    },
    leaseTtlMs: {
      doc:
        "How long a worker's heartbeat, which holds its claims on subscriptions, lasts " +
        "without renewal; a killed worker's subscriptions move to the others after " +
        'about this long, in milliseconds.',
      format: 'nat',
      default: 6000,
      env: 'WORKER_LEASE_TTL_MS',
    },
    heartbeatMs: {
      doc:
        'Interval of the heartbeat renewal (one write per worker, whatever the number of ' +
        'subscriptions) and of the claim check, in milliseconds (well below leaseTtlMs).',
      format: 'nat',
      default: 1000,
      env: 'WORKER_HEARTBEAT_MS',
    },
    pollMs: {
      doc: 'Interval of polling the control plane for connector changes and retry requests, in milliseconds.',
      format: 'nat',
      default: 1000,
      env: 'WORKER_POLL_MS',
    },
    cursorFlushMs: {
      doc:
        "Interval of writing each subscription's delivered position to MongoDB and " +
        'committing the shared group, in milliseconds (a crash re-delivers at most ' +
        'about this much).',
      format: 'nat',
      default: 1000,
      env: 'WORKER_CURSOR_FLUSH_MS',
    },
    statusIntervalMs: {
      doc:
        'Interval of the position and lag report of an unchanged connector, in ' +
        'milliseconds (changes are reported at once); a worker refreshes at most 100 ' +
        'unchanged reports a second, those reported longest ago first.',
      format: 'nat',
      default: 5000,
      env: 'WORKER_STATUS_INTERVAL_MS',
    },
    maxBuffered: {
      doc:
        'Records buffered per subscription before it leaves the shared stream for a ' +
        'catch-up reader of its own (back-pressure of a slow or parked partner).',
      format: 'nat',
      default: 2000,
      env: 'WORKER_MAX_BUFFERED',
    },
    maxCatchUpReaders: {
      doc:
        'Catch-up readers (Kafka consumers of one subscription: replays, paused or ' +
        'slow partners) running at the same time per worker; others wait their turn.',
      format: 'nat',
      default: 8,
      env: 'WORKER_MAX_CATCH_UP_READERS',
    },
    catchUpSliceMs: {
      doc:
        'How long a catch-up reader keeps its slot while other subscriptions wait for ' +
        'one, in milliseconds: then it yields (its position kept) to the subscription ' +
        'waiting longest and queues again, so that one long replay cannot hold up the ' +
        'others.',
      format: 'nat',
      default: 30000,
      env: 'WORKER_CATCH_UP_SLICE_MS',
    },
    collapseIndexMaxKeys: {
      doc:
        'Keys of the state topics (all partitions) whose latest offset a worker keeps as its shared ' +
        'reader reads them (some 20 to 40 bytes each), so that a backlog collapse needs no scan; ' +
        'beyond this many it drops them and collapses scan; 0 keeps none.',
      format: 'nat',
      default: 1_000_000,
      env: 'WORKER_COLLAPSE_INDEX_MAX_KEYS',
    },
    logDelivered: {
      doc: 'Write successful deliveries to the delivery log too (failures and dead letters always are).',
      format: 'boolean',
      default: true,
      env: 'WORKER_LOG_DELIVERED',
    },
    logBacklogMax: {
      doc:
        'Delivery-log writes a worker holds at most while the store is slow or away ' +
        '(each is tried again until written): at this many, no partner call starts ' +
        'until half of them are written (back-pressure); beyond half of it, ' +
        'successful deliveries are not logged.',
      format: 'nat',
      default: 10000,
      env: 'WORKER_LOG_BACKLOG_MAX',
    },
  },
  delivery: {
    retrySchedule: {
      doc:
        'Default retry schedule of a subscription: delays after the immediate first ' +
        'attempt (Standard Webhooks: 5s,5m,30m,2h,5h,10h,10h); a subscription may set ' +
        'its own.',
      format: 'duration-list',
      default: '5s,5m,30m,2h,5h,10h,10h',
      env: 'DELIVERY_RETRY_SCHEDULE',
    },
    retryJitter: {
      doc: 'Spread of each retry delay, as a fraction of it (0.1: ±10%).',
      format: 'fraction',
      default: 0.1,
      env: 'DELIVERY_RETRY_JITTER',
    },
    maxRetryAfterMs: {
      doc: 'Longest Retry-After a partner may ask for, in milliseconds (longer answers wait this long).',
      format: 'nat',
      default: 7200000,
      env: 'DELIVERY_MAX_RETRY_AFTER_MS',
    },
    concurrency: {
      doc:
        'Default number of keys delivered at the same time per subscription (each key ' +
        "stays in order); a subscription's deliveryPolicy.concurrency overrides it. " +
        'As many as the keep-alive connections per origin: with 8, one receiver ' +
        "slowing for a few milliseconds queued the worker's deliveries behind it.",
      format: 'nat',
      default: 32,
      env: 'DELIVERY_CONCURRENCY',
    },
    parkAfterFailures: {
      doc:
        'Consecutive failed attempts (no success between) that park a subscription: ' +
        'one probe at a time until its endpoint answers.',
      format: 'nat',
      default: 5,
      env: 'DELIVERY_PARK_AFTER_FAILURES',
    },
    disableAfterMs: {
      doc:
        'A subscription failing without a single success for this long is disabled ' +
        '(an event and a log line say so), in milliseconds.',
      format: 'nat',
      default: 432000000,
      env: 'DELIVERY_DISABLE_AFTER_MS',
    },
    webhook: {
      timeoutMs: {
        doc:
          'Default webhook timeout (answer headers, and between body chunks), in ' +
          'milliseconds; precise to about 1 s.',
        format: 'nat',
        default: 15000,
        env: 'WEBHOOK_TIMEOUT_MS',
      },
      connectionsPerOrigin: {
        doc: 'Keep-alive connections per partner origin, shared by all subscriptions calling it.',
        format: 'nat',
        default: 32,
        env: 'WEBHOOK_CONNECTIONS_PER_ORIGIN',
      },
      keepAliveTimeoutMs: {
        doc: 'How long an idle webhook connection is kept open, in milliseconds.',
        format: 'nat',
        default: 30000,
        env: 'WEBHOOK_KEEP_ALIVE_TIMEOUT_MS',
      },
      connectTimeoutMs: {
        doc: 'Timeout of one TCP/TLS connection attempt to a partner, in milliseconds.',
        format: 'nat',
        default: 10000,
        env: 'WEBHOOK_CONNECT_TIMEOUT_MS',
      },
    },
    mapping: {
      processes: {
        doc:
          'REST sinks: sandbox processes that evaluate JSONata body mappings (started ' +
          'on first use, about 40 MB of RSS each). A mapping that hangs or exhausts its ' +
          'limits holds one of them until it is killed, so keep at least 2: the other ' +
          "subscriptions' mappings go on in the others.",
        format: 'nat',
        default: 2,
        env: 'MAPPING_SANDBOX_PROCESSES',
      },
      timeLimitMs: {
        doc:
          'REST sinks: time one body mapping evaluation may take, in milliseconds (its ' +
          'process is killed about 100 ms after it); an event whose mapping exceeds it ' +
          'is dead-lettered with the reason.',
        format: 'nat',
        default: 1000,
        env: 'MAPPING_TIME_LIMIT_MS',
      },
      memoryLimitMb: {
        doc:
          'REST sinks: heap of a mapping sandbox process (V8 old generation), in MB (at ' +
          'least 16); an event whose mapping exhausts it is dead-lettered with the ' +
          'reason and the process replaced.',
        format: 'nat',
        default: 64,
        env: 'MAPPING_MEMORY_LIMIT_MB',
      },
      maxOutputBytes: {
        doc:
          "REST sinks: largest body one event's mapping may produce, in bytes (UTF-8 " +
          'JSON); a larger one is refused in the sandbox (the event is dead-lettered ' +
          'with the reason).',
        format: 'nat',
        default: 1048576,
        env: 'MAPPING_MAX_OUTPUT_BYTES',
      },
    },
    mongodb: {
      serverSelectionTimeoutMs: {
        doc:
          'MongoDB sinks: how long a write waits for a reachable partner server before ' +
          'it fails (retriable), in milliseconds.',
        format: 'nat',
        default: 10000,
        env: 'MONGODB_SINK_SERVER_SELECTION_TIMEOUT_MS',
      },
      connectTimeoutMs: {
        doc: 'MongoDB sinks: timeout of one TCP/TLS connection attempt to a partner server, in milliseconds.',
        format: 'nat',
        default: 10000,
        env: 'MONGODB_SINK_CONNECT_TIMEOUT_MS',
      },
      socketTimeoutMs: {
        doc:
          'MongoDB sinks: how long a write waits for the partner server to answer ' +
          'before it fails (retriable), in milliseconds (0: no limit).',
        format: 'nat',
        default: 30000,
        env: 'MONGODB_SINK_SOCKET_TIMEOUT_MS',
      },
      maxPoolSize: {
        doc:
          'MongoDB sinks: connections per partner connection string at most, shared by ' +
          'every subscription using that string.',
        format: 'nat',
        default: 10,
        env: 'MONGODB_SINK_MAX_POOL_SIZE',
      },
    },
  },
}
