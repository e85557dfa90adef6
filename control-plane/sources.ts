/**
 * Source connectors as control-plane resources: kind (a plug-in of producers/plugins.ts), unique
 * name, owning publisher organization, config validated against the plug-in's schema (a fault is a
 * 422 naming `config.<setting>`), secrets sealed with the key ring, desired state (running, paused,
 * stopped) and the status the runtime reports.
 *
 * Declared through the management API or in configuration (`sources.file`, upserted by name at
 * start: config changes apply, a desired state changed through the API is kept).
 *
 * Confinement (producers/plugins.ts): a source writes only to its contract's topic, and a csv-drop
 * source's folders lie in its publisher's drop folder `<dropRoot>/<publisherId>/`, whoever declares
 * it (the publisher's key, an admin key naming the publisher, the sources file).
 *
 * Visibility as for the rest of the control plane: admin sees everything, a publisher only its own
 * sources (others' are 404), a partner none. Writes follow the store's one-writer rule: the API
 * writes `sources`, the worker holding a source's lease writes its `source_status` document.
 */
import fs from 'node:fs'
import type { Filter } from 'mongodb'
import { ConfigError, RetriableError, UrlRefusedError } from '../common/errors.ts'
import type { Logger } from '../common/logger.ts'
import type { SecretBox } from '../common/secret-box.ts'
import type { UrlGuard } from '../common/url-guard.ts'
import { guardConnection, parseConnectionString } from '../consumers/mongodb/connection.ts'
import { isSourceKind, SOURCE_KINDS, SOURCE_PLUGINS, type SourceOwner } from '../producers/plugins.ts'
import {
  ConflictError,
  ForbiddenError,
  isDuplicateKey,
  uniqueWrite,
  NotFoundError,
  RequestInvalidError,
  type FieldError,
} from './errors.ts'
import { newId, page, type Collections, type Page, type PageRequest } from './store.ts'
import type { DesiredState, OrganizationDoc, Principal, SourceDoc, SourceKindName, SourceStatus } from './types.ts'

export interface SourceInput {
  name: string
  kind: SourceKindName
  /** Required with an admin key; a publisher key declares sources of its own organization. */
  publisherId?: string
  config: Record<string, unknown>
  desiredState?: DesiredState
}

export interface SourcePatch {
  config?: Record<string, unknown>
}

/** A source declared in the `sources.file` JSON array. */
export interface SourceDeclaration {
  name: string
  kind: SourceKindName
  /** The owning publisher: its organization id or its slug. */
  publisher: string
  config: Record<string, unknown>
  /** The state it starts in when it is new (an existing source keeps the state set through the API). */
  desiredState?: DesiredState
}

/** A source with the runtime's report beside it. */
export type SourceWithStatus = SourceDoc & { status: SourceStatus | null }

const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/
const STATES: readonly DesiredState[] = ['running', 'paused', 'stopped']

const secretPaths = (kind: SourceKindName) => SOURCE_PLUGINS[kind].secretPaths

/** Faults of a config against its plug-in (for its owner when known), as `config.<setting>` fields. */
export function checkSourceConfig(
  kind: SourceKindName,
  config: unknown,
  prefix = 'config',
  owner?: SourceOwner,
): FieldError[] {
  return SOURCE_PLUGINS[kind]
    .check(config, owner)
    .map((f) => ({ field: f.field ? `${prefix}.${f.field}` : prefix, message: f.message }))
}

/**
 * Reads and checks the `sources.file` declarations: a ConfigError naming every bad one
 * (`sources.file[2].config.dir: must not contain '..'`). What depends on the publisher (a folder
 * outside its drop folder) is checked when the worker starts the source, and reported in its status.
 */
export function loadSourceDeclarations(file: string): SourceDeclaration[] {
  if (file === '') return []
  const where = 'sources.file (env SOURCES_FILE)'
  let raw: unknown
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch (err) {
    throw new ConfigError(
      `invalid configuration: ${where}: ${file} is not a readable JSON file: ${(err as Error).message}`,
      { key: 'sources.file' },
    )
  }
  if (!Array.isArray(raw))
    throw new ConfigError(`invalid configuration: ${where}: ${file} must hold a JSON array of sources`, {
      key: 'sources.file',
    })
  const faults: string[] = []
  const names = new Set<string>()
  raw.forEach((d: unknown, i) => {
    const at = `sources.file[${i}]`
    if (d === null || typeof d !== 'object' || Array.isArray(d)) return void faults.push(`${at}: must be an object`)
    const o = d as Record<string, unknown>
    for (const k of Object.keys(o))
      if (!['name', 'kind', 'publisher', 'config', 'desiredState'].includes(k))
        faults.push(`${at}.${k}: is not a field of a source declaration`)
    if (typeof o.name !== 'string' || !NAME.test(o.name)) faults.push(`${at}.name: must match ${NAME.source}`)
    else if (names.has(o.name)) faults.push(`${at}.name: ${o.name} is declared twice`)
    else names.add(o.name)
    if (typeof o.publisher !== 'string' || o.publisher === '')
      faults.push(`${at}.publisher: is required (the publisher organization's id or slug)`)
    if (o.desiredState !== undefined && !STATES.includes(o.desiredState as DesiredState))
      faults.push(`${at}.desiredState: must be one of ${STATES.join(', ')}`)
    if (!isSourceKind(o.kind)) faults.push(`${at}.kind: must be one of ${SOURCE_KINDS.join(', ')}`)
    else
      for (const f of checkSourceConfig(o.kind, o.config ?? {}, `${at}.config`)) faults.push(`${f.field}: ${f.message}`)
  })
  if (faults.length > 0)
    throw new ConfigError(`invalid configuration: ${where} ${file}: ${faults.join('; ')}`, {
      key: 'sources.file',
      faults,
    })
  return raw as SourceDeclaration[]
}

const getPath = (o: Record<string, unknown>, key: string) => o[key]

export interface SourceRegistryOptions {
  /**
   * The folder holding each publisher's drop folder, `<dropRoot>/<publisherId>/` (config sources.dropRoot, resolved).
   */
  dropRoot: string
  /**
   * SSRF guard for the connection strings declared through the API (none: not checked here; the worker's connections
   * always are).
   */
  urlGuard?: UrlGuard
}

export class SourceRegistry {
  constructor(
    private readonly cols: Collections,
    private readonly box: SecretBox,
    private readonly options: SourceRegistryOptions,
  ) {}

  /** Whose a source of this publisher is, for its checks and its build. */
  ownerOf(publisherId: string): SourceOwner {
    return { publisherId, dropRoot: this.options.dropRoot }
  }

  /**
   * A MongoDB connection string given through the API: every host (and SRV target) through the SSRF
   * guard, a refusal is a 422 naming config.connectionString. A host that does not resolve now is
   * accepted: the worker's every connection is guarded when it is made.
   */
  private async checkEgress(kind: SourceKindName, config: Record<string, unknown>): Promise<void> {
    const guard = this.options.urlGuard
    const cs = config.connectionString
    if (kind !== 'mongodb' || !guard || typeof cs !== 'string') return
    try {
      await guardConnection(parseConnectionString(cs, {}, 'config.connectionString'), guard)
    } catch (err) {
      if (err instanceof RetriableError) return
      if (err instanceof ConfigError || err instanceof UrlRefusedError)
        throw new RequestInvalidError([
          { field: 'config.connectionString', message: err.message.replace(/^config\.connectionString /, '') },
        ])
      throw err
    }
  }

  // ---------------------------------------------------------------- visibility

  private scope(p: Principal): Filter<SourceDoc> {
    if (p.scope === 'admin') return {}
    if (p.scope === 'publisher') return { publisherId: p.organizationId! }
    return { _id: { $in: [] } }
  }

  private async publisher(id: string, field: string, p?: Principal): Promise<OrganizationDoc> {
    const org = await this.cols.organizations.findOne({ _id: id })
    if (!org || (p && p.scope !== 'admin' && p.organizationId !== id))
      throw new RequestInvalidError([{ field, message: `no such organization ${id}` }])
    if (org.kind !== 'publisher')
      throw new RequestInvalidError([{ field, message: `organization ${id} is a ${org.kind}, not a publisher` }])
    return org
  }

  private canChange(p: Principal, doc: SourceDoc, what: string): void {
    if (doc.origin === 'config' && (what === 'update' || what === 'delete')) {
      throw new ConflictError(
        `source ${doc.name} is declared in configuration (sources.file): change it there`,
        'origin',
      )
    }
  }

  // ---------------------------------------------------------------- secrets

  /** A new source document (its secrets sealed), declared through the API or in the sources file. */
  private newDoc(
    d: {
      name: string
      kind: SourceKindName
      publisherId: string
      origin: SourceDoc['origin']
      config: Record<string, unknown>
      desiredState?: SourceDoc['desiredState'] | undefined
    },
    now = new Date(),
  ): SourceDoc {
    return {
      _id: newId('src'),
      name: d.name,
      kind: d.kind,
      publisherId: d.publisherId,
      origin: d.origin,
      config: this.seal(d.kind, d.config),
      desiredState: d.desiredState ?? 'running',
      generation: 1,
      configVersion: 1,
      createdAt: now,
      updatedAt: now,
    }
  }

  private seal(kind: SourceKindName, config: Record<string, unknown>, previous?: SourceDoc): Record<string, unknown> {
    const out = structuredClone(config)
    for (const key of secretPaths(kind)) {
      const v = getPath(out, key)
      if (typeof v === 'string') out[key] = this.box.seal(v)
      else if (previous && previous.kind === kind && typeof previous.config[key] === 'string')
        out[key] = previous.config[key]
    }
    return out
  }

  /** For the runtime: the config with its secrets opened. */
  openConfig(doc: SourceDoc): Record<string, unknown> {
    const out = structuredClone(doc.config)
    for (const key of secretPaths(doc.kind))
      if (typeof out[key] === 'string') out[key] = this.box.open(out[key] as string)
    return out
  }

  /** Key rotation: re-seals the source secrets with the current key. Returns how many changed. */
  async resealSecrets(): Promise<number> {
    let changed = 0
    for await (const doc of this.cols.sources.find({})) {
      const set: Record<string, string> = {}
      for (const key of secretPaths(doc.kind)) {
        const v = doc.config[key]
        if (typeof v === 'string' && this.box.keyIdOf(v) !== this.box.currentKeyId)
          set[`config.${key}`] = this.box.reseal(v)
      }
      if (Object.keys(set).length === 0) continue
      const r = await this.cols.sources.updateOne({ _id: doc._id, configVersion: doc.configVersion }, { $set: set })
      changed += r.modifiedCount
    }
    return changed
  }

  // ---------------------------------------------------------------- API

  async list(p: Principal, q: { publisherId?: string | undefined }, req: PageRequest): Promise<Page<SourceWithStatus>> {
    const filter: Filter<SourceDoc> = { ...this.scope(p) }
    if (q.publisherId !== undefined)
      filter.publisherId =
        filter.publisherId !== undefined && filter.publisherId !== q.publisherId ? '\u0000none' : q.publisherId
    const result = await page(this.cols.sources, filter, req)
    return { ...result, items: await this.withStatus(result.items) }
  }

  async get(p: Principal, id: string): Promise<SourceWithStatus> {
    const doc = await this.cols.sources.findOne({ $and: [{ _id: id }, this.scope(p)] })
    if (!doc) throw new NotFoundError('source', { sourceId: id })
    return (await this.withStatus([doc]))[0]!
  }

  async create(p: Principal, input: SourceInput): Promise<SourceWithStatus> {
    if (p.scope === 'partner') throw new ForbiddenError('a partner key cannot declare sources: publishers publish')
    const publisherId = input.publisherId ?? p.organizationId
    if (publisherId === null)
      throw new RequestInvalidError([{ field: 'publisherId', message: 'is required with an admin key' }])
    await this.publisher(publisherId, 'publisherId', p)
    const errors = checkSourceConfig(input.kind, input.config, 'config', this.ownerOf(publisherId))
    if (errors.length > 0) throw new RequestInvalidError(errors)
    await this.checkEgress(input.kind, input.config)
    const doc = this.newDoc({
      name: input.name,
      kind: input.kind,
      publisherId,
      origin: 'api',
      config: input.config,
      desiredState: input.desiredState,
    })
    await uniqueWrite(this.cols.sources.insertOne(doc), 'name', `a source named ${input.name} exists`)
    return { ...doc, status: null }
  }

  /** Replaces the config (a secret left out keeps its sealed value); a running instance restarts with it. */
  async update(p: Principal, id: string, patch: SourcePatch): Promise<SourceWithStatus> {
    const doc = await this.get(p, id)
    this.canChange(p, doc, 'update')
    if (patch.config === undefined) return doc
    // A secret left out keeps the stored one: validate as if it were given.
    const probe = { ...patch.config }
    for (const key of secretPaths(doc.kind))
      if (probe[key] === undefined && typeof doc.config[key] === 'string') probe[key] = 'mongodb://kept'
    const errors = checkSourceConfig(doc.kind, probe, 'config', this.ownerOf(doc.publisherId))
    if (errors.length > 0) throw new RequestInvalidError(errors)
    await this.checkEgress(doc.kind, patch.config)
    const updated = await this.cols.sources.findOneAndUpdate(
      { _id: id, configVersion: doc.configVersion },
      {
        $set: { config: this.seal(doc.kind, patch.config, doc), updatedAt: new Date() },
        $inc: { generation: 1, configVersion: 1 },
      },
      { returnDocument: 'after' },
    )
    if (!updated) throw new ConflictError('the source changed concurrently; read it again and retry')
    return (await this.withStatus([updated]))[0]!
  }

  async delete(p: Principal, id: string): Promise<void> {
    const doc = await this.get(p, id)
    this.canChange(p, doc, 'delete')
    // The worker stops it when it disappears; its status goes with it.
    await this.cols.sources.deleteOne({ _id: id })
    await this.cols.sourceStatus.deleteOne({ _id: id })
  }

  async setDesiredState(p: Principal, id: string, state: DesiredState): Promise<SourceWithStatus> {
    await this.get(p, id)
    // The state it already has changes nothing (no generation bump).
    await this.cols.sources.updateOne(
      { _id: id, desiredState: { $ne: state } },
      { $set: { desiredState: state, updatedAt: new Date() }, $inc: { generation: 1 } },
    )
    return this.get(p, id)
  }

  private async withStatus(docs: SourceDoc[]): Promise<SourceWithStatus[]> {
    if (docs.length === 0) return []
    const statuses = await this.cols.sourceStatus.find({ _id: { $in: docs.map((d) => d._id) } }).toArray()
    const byId = new Map(statuses.map(({ _id, ...s }) => [_id, s as SourceStatus]))
    return docs.map((d) => ({ ...d, status: byId.get(d._id) ?? null }))
  }

  // ---------------------------------------------------------------- runtime

  /** Every source (the runtime's poll; sources are few). */
  all(): Promise<SourceDoc[]> {
    return this.cols.sources.find({}).sort({ _id: 1 }).toArray()
  }

  reportStatus(id: string, status: SourceStatus): Promise<unknown> {
    return this.cols.sourceStatus.replaceOne({ _id: id }, { ...status }, { upsert: true })
  }

  /**
   * Upserts declared sources by name: new ones are created in their declared state; existing ones
   * take the declared kind, publisher and config (bumping the generation when they changed) and keep
   * their desired state. Returns the declarations that could not be applied yet (unknown publisher).
   */
  async upsertDeclared(decls: SourceDeclaration[], logger: Logger): Promise<SourceDeclaration[]> {
    const pending: SourceDeclaration[] = []
    for (const d of decls) {
      const org = await this.cols.organizations.findOne({ $or: [{ _id: d.publisher }, { slug: d.publisher }] })
      if (!org || org.kind !== 'publisher') {
        logger.warn('declared source waits for its publisher organization', {
          code: 'CONFIG_INVALID',
          source: d.name,
          publisher: d.publisher,
        })
        pending.push(d)
        continue
      }
      const existing = await this.cols.sources.findOne({ name: d.name })
      const now = new Date()
      if (!existing) {
        const doc = this.newDoc(
          {
            name: d.name,
            kind: d.kind,
            publisherId: org._id,
            origin: 'config',
            config: d.config,
            desiredState: d.desiredState,
          },
          now,
        )
        try {
          await this.cols.sources.insertOne(doc)
          logger.info('declared source created', { source: d.name, kind: d.kind })
        } catch (err) {
          if (!isDuplicateKey(err)) throw err // another process declared it at the same time
        }
        continue
      }
      const same =
        existing.kind === d.kind &&
        existing.publisherId === org._id &&
        existing.origin === 'config' &&
        JSON.stringify(this.openConfig(existing)) === JSON.stringify(d.config)
      if (same) continue
      await this.cols.sources.updateOne(
        { _id: existing._id, configVersion: existing.configVersion },
        {
          $set: {
            kind: d.kind,
            publisherId: org._id,
            origin: 'config',
            config: this.seal(d.kind, d.config),
            updatedAt: now,
          },
          $inc: { generation: 1, configVersion: 1 },
        },
      )
      logger.info('declared source updated from configuration', { source: d.name, kind: d.kind })
    }
    return pending
  }
}
