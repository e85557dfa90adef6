/**
 * Avro in the Confluent wire format: magic byte 0, the schema id as a 4-byte big-endian integer, then
 * the Avro binary body. Schema ids, compiled avsc types and resolvers are cached, so after the first
 * lookup of a schema, encoding and decoding do no I/O; `encodeSync`/`decodeSync` are the hot paths
 * (they throw when the schema has not been loaded yet), `encode`/`decode` load on a miss first.
 *
 * Encoding writes the Avro body straight after the 5-byte header in a reusable scratch buffer and
 * copies the result out once, the same work as avsc's own toBuffer (no concat).
 *
 * Decoding into a chosen reader schema (an older or newer version a partner pinned) is Avro schema
 * resolution with a resolver compiled once per (writer id, reader type).
 */
import avro from 'avsc'
import { DataError } from '../../common/errors.ts'
import { parseAvro, type Reference, type SchemaSource } from '../registry/avro.ts'
import type { RegistryClient } from './client.ts'

export const MAGIC_BYTE = 0
export const HEADER_SIZE = 5

interface Writer {
  id: number
  type: avro.Type
  /** Compiled resolvers from this writer into reader types; null: the reader is the writer. */
  resolvers: Map<avro.Type, avro.Resolver | null>
}

export class AvroSerde {
  private readonly writers = new Map<number, Writer>()
  private readonly loading = new Map<number, Promise<Writer>>()
  private readonly ids = new Map<string, number>()
  private readonly readers = new Map<string, Promise<avro.Type>>()
  private scratch = Buffer.allocUnsafe(64 * 1024)
  /** The writer of the previous decode: consecutive messages mostly share a schema. */
  private lastId = -1
  private lastWriter: Writer | undefined

  constructor(readonly client: RegistryClient) {}

  /** Registers a schema under a subject (or finds it) and loads it; returns its id. Cached. */
  async register(subject: string, schema: string, references: Reference[] = []): Promise<number> {
    const key = `${subject}\u0000${schema}\u0000${JSON.stringify(references)}`
    let id = this.ids.get(key)
    if (id === undefined) {
      id = await this.client.register(subject, schema, references)
      this.ids.set(key, id)
    }
    await this.load(id)
    return id
  }

  /** The id of subject/version ('latest' is looked up every call; numbers are cached). */
  async idOf(subject: string, version: number | 'latest'): Promise<number> {
    const key = `${subject}\u0000@${version}`
    let id = version === 'latest' ? undefined : this.ids.get(key)
    if (id === undefined) {
      id = (await this.client.getVersion(subject, version)).id
      if (version !== 'latest') this.ids.set(key, id)
    }
    await this.load(id)
    return id
  }

  /** The compiled type of a schema id, fetched (with its references) on first use. */
  async load(id: number): Promise<avro.Type> {
    const w = this.writers.get(id)
    if (w) return w.type
    let p = this.loading.get(id)
    if (!p) {
      p = this.fetchWriter(id).finally(() => this.loading.delete(id))
      this.loading.set(id, p)
    }
    return (await p).type
  }

  isLoaded(id: number): boolean {
    return this.writers.has(id)
  }

  private async fetchWriter(id: number): Promise<Writer> {
    const found = await this.client.getSchemaById(id)
    if (found.schemaType && found.schemaType !== 'AVRO')
      throw new DataError(`schema ${id} is ${found.schemaType}, not AVRO`, { schemaId: id })
    const type = await this.compile({ schema: found.schema, references: found.references ?? [] })
    const w: Writer = { id, type, resolvers: new Map() }
    this.writers.set(id, w)
    return w
  }

  private async compile(source: SchemaSource): Promise<avro.Type> {
    // Fetch every referenced subject/version first, then build synchronously.
    const refs = new Map<string, SchemaSource>()
    const visit = async (list: Reference[]) => {
      for (const r of list) {
        const k = `${r.subject}/${r.version}`
        if (refs.has(k)) continue
        const v = await this.client.getVersion(r.subject, r.version)
        refs.set(k, { schema: v.schema, references: v.references ?? [] })
        await visit(v.references ?? [])
      }
    }
    await visit(source.references)
    try {
      return parseAvro(source, (r) => refs.get(`${r.subject}/${r.version}`))
    } catch (err) {
      throw new DataError(`schema cannot be compiled: ${(err as Error).message}`, {}, { cause: err })
    }
  }

  /**
   * A reader type for decoding with resolution: subject/version as registered (what a partner
   * pinned), compiled once.
   */
  readerFor(subject: string, version: number): Promise<avro.Type> {
    const key = `${subject}\u0000${version}`
    let p = this.readers.get(key)
    if (!p) {
      p = this.idOf(subject, version).then((id) => this.writers.get(id)!.type)
      p.catch(() => this.readers.delete(key))
      this.readers.set(key, p)
    }
    return p
  }

  /** Encodes with a loaded schema id. No I/O; throws DataError when the value does not fit. */
  encodeSync(id: number, value: unknown): Buffer {
    const w = this.writers.get(id)
    if (!w) throw new DataError(`schema ${id} is not loaded; call load(${id}) or encode() first`, { schemaId: id })
    let buf = this.scratch
    let end: number
    try {
      end = w.type.encode(value, buf, HEADER_SIZE)
      if (end < 0) {
        buf = this.scratch = Buffer.allocUnsafe(Math.max(buf.length * 2, buf.length - end + HEADER_SIZE))
        end = w.type.encode(value, buf, HEADER_SIZE)
      }
    } catch (err) {
      throw this.invalid(w, value, err)
    }
    buf[0] = MAGIC_BYTE
    buf.writeInt32BE(id, 1)
    const out = Buffer.allocUnsafe(end)
    buf.copy(out, 0, 0, end)
    return out
  }

  async encode(id: number, value: unknown): Promise<Buffer> {
    if (!this.writers.has(id)) await this.load(id)
    return this.encodeSync(id, value)
  }

  private invalid(w: Writer, value: unknown, cause: unknown): DataError {
    const paths: string[] = []
    w.type.isValid(value, { errorHook: (path: string[]) => paths.push(path.join('.') || '(root)') })
    return new DataError(
      `value does not match schema ${w.id}${paths.length > 0 ? `: invalid ${paths.join(', ')}` : ''}`,
      { schemaId: w.id, fields: paths },
      { cause },
    )
  }

  /** The schema id of a Confluent-framed message (DataError when it is not one). */
  static schemaIdOf(buf: Buffer): number {
    if (buf.length < HEADER_SIZE)
      throw new DataError(`message of ${buf.length} bytes is too short for the Confluent wire format`, {})
    if (buf[0] !== MAGIC_BYTE)
      throw new DataError(`unknown magic byte ${buf[0]} (expected ${MAGIC_BYTE}): not Confluent wire format`, {})
    return buf.readInt32BE(1)
  }

  /**
   * Decodes with loaded schemas, no I/O. With `reader`, resolves the writer's data into the reader's
   * schema (fields added with defaults, removed fields dropped, promotions applied).
   */
  decodeSync(buf: Buffer, reader?: avro.Type): unknown {
    if (buf.length < HEADER_SIZE || buf[0] !== MAGIC_BYTE) AvroSerde.schemaIdOf(buf) // throws the DataError
    const id = buf.readInt32BE(1)
    const w = id === this.lastId ? this.lastWriter! : this.writers.get(id)
    if (!w) throw new DataError(`schema ${id} is not loaded; call load(${id}) or decode() first`, { schemaId: id })
    this.lastId = id
    this.lastWriter = w
    let r: { value: unknown; offset: number }
    if (reader === undefined || reader === w.type) {
      try {
        r = w.type.decode(buf, HEADER_SIZE)
      } catch (err) {
        throw this.undecodable(id, err)
      }
    } else {
      let resolver = w.resolvers.get(reader)
      if (resolver === undefined) {
        try {
          resolver = reader.equals(w.type) ? null : reader.createResolver(w.type)
        } catch (err) {
          throw new DataError(
            `data written with schema ${id} cannot be read with the requested reader schema: ${(err as Error).message}`,
            { schemaId: id },
            { cause: err },
          )
        }
        w.resolvers.set(reader, resolver)
      }
      try {
        r = resolver ? reader.decode(buf, HEADER_SIZE, resolver) : reader.decode(buf, HEADER_SIZE)
      } catch (err) {
        throw this.undecodable(id, err)
      }
    }
    if (r.offset !== buf.length) {
      throw new DataError(
        r.offset < 0
          ? `message body is truncated for schema ${id}`
          : `message has ${buf.length - r.offset} trailing bytes after the body of schema ${id}`,
        { schemaId: id },
      )
    }
    return r.value
  }

  private undecodable(id: number, err: unknown): DataError {
    return new DataError(
      `message body does not decode with schema ${id}: ${(err as Error).message}`,
      { schemaId: id },
      { cause: err },
    )
  }

  async decode(buf: Buffer, reader?: avro.Type): Promise<unknown> {
    const id = AvroSerde.schemaIdOf(buf)
    if (!this.writers.has(id)) await this.load(id)
    return this.decodeSync(buf, reader)
  }
}
