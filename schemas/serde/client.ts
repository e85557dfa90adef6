/**
 * A thin client of the Confluent Schema Registry REST API (ours or Confluent's), used by the serde
 * on cache misses only. 404s and 4xx answers are DataErrors (the schema or subject is not there);
 * network failures and 5xx are RetriableErrors.
 */
import { DataError, RetriableError } from '../../common/errors.ts'
import { parseBody } from '../../common/json.ts'
import type { AppConfig } from '../../config/index.ts'
import type { Reference } from '../registry/avro.ts'
import { INTERNAL_USER, internalPassword } from '../registry/auth.ts'

export interface RegistryClientOptions {
  url: string
  username?: string
  password?: string
  timeoutMs?: number
}

export interface RegisteredSchema {
  subject: string
  version: number
  id: number
  schema: string
  schemaType?: string
  references?: Reference[]
}

const CT = 'application/vnd.schemaregistry.v1+json'

export class RegistryClient {
  readonly url: string
  private readonly auth: string | undefined
  private readonly timeoutMs: number

  constructor(options: RegistryClientOptions) {
    this.url = options.url.replace(/\/+$/, '')
    this.auth = options.username
      ? 'Basic ' + Buffer.from(`${options.username}:${options.password ?? ''}`).toString('base64')
      : undefined
    this.timeoutMs = options.timeoutMs ?? 10_000
  }

  /**
   * The registry the platform uses: the external one when schemaRegistry.url is set (with
   * schemaRegistry.username/password), else ours, as the platform's internal principal: `keyRing` is
   * the secrets key ring every platform process has (see schemas/registry/auth.ts internalPassword).
   */
  static fromConfig(config: AppConfig, keyRing: string, builtInUrl?: string): RegistryClient {
    const r = config.schemaRegistry
    if (r.url !== '') return new RegistryClient({ url: r.url, username: r.username, password: r.password })
    const host = r.host === '0.0.0.0' ? '127.0.0.1' : r.host === '::' ? '::1' : r.host
    return new RegistryClient({
      url: builtInUrl ?? `http://${host.includes(':') ? `[${host}]` : host}:${r.port}`,
      username: INTERNAL_USER,
      password: internalPassword(keyRing),
    })
  }

  async request<T>(method: string, path: string, body?: unknown, timeoutMs = this.timeoutMs): Promise<T> {
    const headers: Record<string, string> = { accept: CT }
    if (body !== undefined) headers['content-type'] = CT
    if (this.auth) headers.authorization = this.auth
    let res: Response
    try {
      res = await fetch(this.url + path, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      })
    } catch (err) {
      throw new RetriableError(
        `schema registry ${this.url} unreachable: ${(err as Error).message}`,
        undefined,
        { method, path },
        { cause: err },
      )
    }
    const text = await res.text()
    const json = parseBody(text, text)
    if (res.ok) return json as T
    const e = json as { error_code?: number; message?: string } | undefined
    const msg = `schema registry ${method} ${path}: ${res.status} ${e?.error_code ?? ''} ${e?.message ?? text}`.trim()
    const ctx = { method, path, status: res.status, errorCode: e?.error_code }
    if (res.status >= 500 || res.status === 429 || res.status === 408) throw new RetriableError(msg, undefined, ctx)
    throw new DataError(msg, ctx)
  }

  getSchemaById(id: number): Promise<{ schema: string; schemaType?: string; references?: Reference[] }> {
    return this.request('GET', `/schemas/ids/${id}`)
  }

  async registerTyped(
    subject: string,
    schemaType: 'AVRO' | 'JSON' | 'PROTOBUF',
    schema: string,
    references: Reference[] = [],
  ): Promise<number> {
    const body: Record<string, unknown> = { schema, schemaType }
    if (references.length > 0) body.references = references
    const r = await this.request<{ id: number }>('POST', `/subjects/${encodeURIComponent(subject)}/versions`, body)
    return r.id
  }

  /** The schema of an id and, depth first, every schema its references point at (by subject/version). */
  async schemaWithReferences(id: number): Promise<{
    schema: string
    schemaType: string
    references: Reference[]
    lookup: (r: Reference) => { schema: string; references: Reference[] } | undefined
  }> {
    const found = await this.getSchemaById(id)
    const refs = new Map<string, { schema: string; references: Reference[] }>()
    const visit = async (list: Reference[]) => {
      for (const r of list) {
        const k = `${r.subject}/${r.version}`
        if (refs.has(k)) continue
        const v = await this.getVersion(r.subject, r.version)
        refs.set(k, { schema: v.schema, references: v.references ?? [] })
        await visit(v.references ?? [])
      }
    }
    await visit(found.references ?? [])
    return {
      schema: found.schema,
      schemaType: found.schemaType ?? 'AVRO',
      references: found.references ?? [],
      lookup: (r) => refs.get(`${r.subject}/${r.version}`),
    }
  }

  getVersion(subject: string, version: number | 'latest'): Promise<RegisteredSchema> {
    return this.request('GET', `/subjects/${encodeURIComponent(subject)}/versions/${version}`)
  }

  async register(subject: string, schema: string, references: Reference[] = []): Promise<number> {
    const body: Record<string, unknown> = { schema }
    if (references.length > 0) body.references = references
    const r = await this.request<{ id: number }>('POST', `/subjects/${encodeURIComponent(subject)}/versions`, body)
    return r.id
  }

  lookup(subject: string, schema: string, references: Reference[] = []): Promise<RegisteredSchema> {
    const body: Record<string, unknown> = { schema }
    if (references.length > 0) body.references = references
    return this.request('POST', `/subjects/${encodeURIComponent(subject)}`, body)
  }
}
