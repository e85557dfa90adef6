/**
 * The /sources part of the management API document (source connectors), spread into document.ts.
 */
import { configJsonSchema } from '../../connectors/source/config.ts'
import { SOURCE_KINDS, SOURCE_PLUGINS } from '../../producers/plugins.ts'
import { PUBLISHER_TOPICS } from '../../schemas/topics.ts'
import { closed, dateTime, id, nullableDateTime, object, ok, operationsOf, pathId, query, ref } from './parts.ts'

/** What a source may publish: the publishers' event types (not those the platform alone writes: profiles, leads). */
const SOURCE_EVENT_TYPES = PUBLISHER_TOPICS.flatMap((t) => t.eventTypes)

const SRC = pathId('sourceId', 'src', 'source')
const orgId = id('org')
const desiredState = { type: 'string', enum: ['running', 'paused', 'stopped'] }

const sources = operationsOf('sources')

const CONFIG_DOC =
  "The plug-in's settings, validated against its config schema (a fault is a 422 naming `config.<setting>`). " +
  ('csv-drop: dir (required), eventType, topic, columns, constants, delimiter, ' +
    'batchRows, settleMs, scanIntervalMs, stateDir, processedDir. ') +
  ('A source publishes for its owner (publisherId): the platform stamps it on ' +
    'every record and fills manufacturerId with it; constants.manufacturerId ' +
    'naming another organization is a 422, and a row or document naming another ' +
    "is refused (a csv-drop reject file, a MongoDB source's status). ") +
  ('mongodb: connectionString (required, write-only: sealed at rest, never ' +
    "returned; every host passes the SSRF guard as a MongoDB sink's does, a " +
    'refusal is a 422 naming config.connectionString), database, collection ' +
    '(required), mode, eventType, topic, updatedAtField, offsetsCollection, ' +
    'batchSize, pollIntervalMs, lagMs. ') +
  ("Folders (csv-drop dir, stateDir, processedDir) lie inside the publisher's " +
    'drop folder `<SOURCES_DROP_ROOT>/<publisherId>/`: a path relative to it ' +
    '(`wms` watches `<SOURCES_DROP_ROOT>/<publisherId>/wms/`), or an absolute ' +
    "path inside it; `..`, NUL bytes, another publisher's folder or any folder " +
    'elsewhere, and a symbolic link leading out are a 422 naming the setting ' +
    '(`config.dir`), also for an admin key declaring a source for a publisher. ') +
  ('Topic: a source writes only to the topic of its contract, selected by ' +
    'eventType (inventory.level.changed → inventory.levels, deal.* → ' +
    'deals.registrations); `topic` may be left out or repeat it, any other is a ' +
    '422 naming `config.topic`. partner.profile.changed / partners.profiles are ' +
    'published by the platform only: a 422 naming `config.eventType` or ' +
    '`config.topic`.')

export const sourceTag = {
  name: 'sources',
  description:
    'Source connectors (CSV stock-file drop, MongoDB collection): declared here ' +
    'or in configuration, started, paused, resumed and stopped. HTTP ingestion is ' +
    'built in.',
}

export const sourcePaths = {
  ...sources.collection('Source', SRC, {
    list: { summary: 'List source connectors', filters: [query('publisherId', orgId, "Only this publisher's.")] },
    create: {
      summary: 'Declare a source connector (publisher or admin)',
      answer: 'Declared; a worker starts it within seconds unless its desired state says otherwise.',
      example: {
        name: 'acme-wms-drop',
        kind: 'csv-drop',
        config: {
          dir: 'wms',
          columns: { sku: 'Item No', locationId: 'Warehouse', onHand: 'On Hand' },
          constants: { unitOfMeasure: 'EA' },
        },
      },
    },
    get: { summary: 'Get a source connector', answer: 'The source (secret settings left out).' },
    update: {
      summary: "Replace a source's config (a running instance restarts with it)",
      example: { config: { dir: 'wms', batchRows: 2000 } },
    },
    remove: { summary: 'Delete a source connector (stopped first)' },
  }),
  '/sources/{sourceId}/status': {
    get: sources.one(
      'Source status: state, worker, position, counts, last error',
      'getSourceStatus',
      SRC,
      'The status.',
      'SourceStatusView',
    ),
  },
  ...sources.desiredStates(
    '/sources/{sourceId}',
    SRC,
    'source',
    ok(
      'Desired state recorded; the worker holding the source applies it within seconds, without a restart.',
      ref('Source'),
    ),
    [
      ['start', 'startSource', 'Runs a stopped source again from its stored resume point.'],
      [
        'pause',
        'pauseSource',
        'Takes no new records after the batch in flight; keeps the lease and the position. Survives restarts.',
      ],
      ['resume', 'resumeSource', 'Takes records again from the kept position.'],
      [
        'stop',
        'stopSource',
        'Stops the instance and releases its resources (the resume point is kept). Survives restarts.',
      ],
    ],
  ),
}

export const sourceSchemas = {
  SourceCreate: {
    ...closed(['name', 'kind', 'config'], {
      name: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$', description: 'Unique across the platform.' },
      kind: { type: 'string', enum: [...SOURCE_KINDS] },
      publisherId: {
        ...orgId,
        description: 'Required with an admin key; a publisher key declares sources of its own organization.',
      },
      config: { type: 'object', description: CONFIG_DOC },
      desiredState: { ...desiredState, default: 'running' },
    }),
    // each kind's settings, from its plug-in's config schema (what the API checks first: a fault there was a 422 the
    // document did not foretell); the checks beyond them (folders, the event type's topic, the SSRF guard) stay 422
    allOf: SOURCE_KINDS.map((kind) => ({
      if: { required: ['kind'], properties: { kind: { const: kind } } },
      then: {
        properties: {
          config: configJsonSchema(SOURCE_PLUGINS[kind].schema, SOURCE_PLUGINS[kind].secretPaths, {
            ...SOURCE_PLUGINS[kind].documented,
            eventType: { enum: SOURCE_EVENT_TYPES },
          }),
        },
      },
    })),
  },
  SourcePatch: closed(['config'], {
    config: {
      type: 'object',
      description: `The whole new config; a secret setting left out keeps its stored value. ${CONFIG_DOC}`,
    },
  }),
  Source: object(
    [
      'id',
      'name',
      'kind',
      'publisherId',
      'origin',
      'config',
      'desiredState',
      'generation',
      'status',
      'createdAt',
      'updatedAt',
    ],
    {
      id: id('src'),
      name: { type: 'string' },
      kind: { type: 'string', enum: [...SOURCE_KINDS] },
      publisherId: orgId,
      origin: {
        type: 'string',
        enum: ['api', 'config'],
        description: 'config: declared in sources.file (change it there; pause, resume, stop and start work here).',
      },
      config: {
        type: 'object',
        description: 'The config without its secret settings; `secretsSet` lists those that are set.',
      },
      desiredState,
      generation: { type: 'integer' },
      status: ref('SourceStatusView'),
      createdAt: dateTime,
      updatedAt: dateTime,
    },
  ),
  SourceStatusView: object(
    ['id', 'name', 'state', 'desiredState', 'workerId', 'position', 'counts', 'lastError', 'pendingChanges'],
    {
      id: { type: 'string' },
      name: { type: 'string' },
      state: {
        type: 'string',
        enum: ['running', 'paused', 'stopped', 'failed', 'starting', 'unassigned'],
        description: 'What the runtime reports; unassigned when no worker runs it.',
      },
      desiredState,
      workerId: { type: ['string', 'null'] },
      position: {
        description: "The plug-in's progress: csv-drop { file, line, filesDone }; mongodb { mode, watermark }.",
      },
      counts: {
        type: 'object',
        properties: { produced: { type: 'integer' }, batches: { type: 'integer' }, failedBatches: { type: 'integer' } },
      },
      lastError: { type: ['object', 'null'] },
      reportedAt: nullableDateTime,
      pendingChanges: { type: 'boolean', description: 'A change (state, config) no worker has applied yet.' },
    },
  ),
}
