/**
 * Stock file drop: a folder watched for CSV files (one at a time, oldest first, once unchanged for
 * `settleMs`). Rows are parsed as a stream (never the whole file in memory), mapped by header to the
 * topic's Avro contract, and produced in batches; bad rows go to `<file>.rejects.csv` beside it
 * (line, field, column, error, raw row) while good rows flow. When every good row is acked, the file
 * and its rejects move to processed/.
 *
 * Resume point: `<stateDir>/<file>.json` holds the byte offset and line after the last acked row
 * and the size of the reject file at that row, written atomically after each ack. A restart (even
 * after kill -9) reads the header row again, truncates the reject file to that size, and continues
 * at that byte; rows acked but not yet committed are found in Kafka by the runner's recovery scan.
 *
 * Folders: a source run by the platform is confined to its publisher's drop folder (`root`, see
 * folders.ts): its folders are checked by real path at start and on every scan, and files are opened
 * without following symbolic links, so nothing outside that folder is read, moved or written.
 */
import fs from 'node:fs'
import path from 'node:path'
import { eventTypeSettings, validateConfig, type ConfigSchema } from '../../connectors/source/config.ts'
import { createConverter, type Converter } from '../../connectors/source/json-avro.ts'
import type { SourceConnector, SourceContext, SourceRecord } from '../../connectors/source/types.ts'
import { contractSchema } from '../../schemas/contracts.ts'
import { ALL_TOPICS, type TopicSpec } from '../../schemas/topics.ts'
import { ConfigError, DataError } from '../../common/errors.ts'
import type { Logger } from '../../common/logger.ts'
import { CsvParser, type CsvRow } from './csv-parser.ts'
import { confineFolders, openNoFollow } from './folders.ts'

export interface CsvDropConfig {
  /**
   * The publisher's drop folder: every folder below must lie inside it, by real path (not a setting:
   * the runtime sets it). Empty: no confinement (a source built directly, as in tests and benchmarks).
   */
  root: string
  /** Folder watched for *.csv files. */
  dir: string
  /** ce_type of every row; selects the contract. */
  eventType: string
  /** Topic to write (default: the declared topic of eventType; the platform allows no other). */
  topic: string
  /** Avro field → CSV header (fields not listed are looked up under their own name). */
  columns: Record<string, string>
  /** Avro field → constant value for fields the file does not carry (e.g. manufacturerId). */
  constants: Record<string, string>
  delimiter: string
  /** Rows per poll (one produce request). */
  batchRows: number
  /** How long a file must be unchanged before it is taken. */
  settleMs: number
  /** How often the folder is listed when idle. */
  scanIntervalMs: number
  /** Resume points (default <dir>/.distributary). */
  stateDir: string
  /** Where finished files go (default <dir>/processed). */
  processedDir: string
}

export const csvDropConfigSchema: ConfigSchema = {
  dir: {
    doc:
      "Folder watched for *.csv files, inside the publisher's drop folder " +
      '(<SOURCES_DROP_ROOT>/<publisherId>/): relative to it (e.g. stock), or ' +
      'absolute inside it.',
    type: 'string',
  },
  ...eventTypeSettings('Event type of every row (selects the Avro contract, and with it the topic).'),
  columns: { doc: 'Avro field → CSV header name.', type: 'string-map', default: {} },
  constants: { doc: 'Avro field → constant value for fields the file lacks.', type: 'string-map', default: {} },
  delimiter: { doc: 'Field delimiter (one ASCII character).', type: 'string', default: ',' },
  batchRows: {
    doc:
      "Rows per poll, produced as one request when the runner's maxBatch (default " +
      '2000) allows; larger polls are split.',
    type: 'integer',
    default: 2000,
    min: 1,
    max: 100_000,
  },
  settleMs: { doc: 'A file is taken once unchanged this long (ms).', type: 'integer', default: 1000, min: 0 },
  scanIntervalMs: { doc: 'How often the folder is listed when idle (ms).', type: 'integer', default: 1000, min: 10 },
  stateDir: {
    doc: "Folder of the resume points, inside the publisher's drop folder as dir; empty: <dir>/.distributary.",
    type: 'string',
    default: '',
  },
  processedDir: {
    doc: "Folder of finished files, inside the publisher's drop folder as dir; empty: <dir>/processed.",
    type: 'string',
    default: '',
  },
}

/** The config with defaults; with a `root` (the publisher's drop folder), relative folders are taken from it. */
export function parseCsvDropConfig(raw: unknown, root = ''): CsvDropConfig {
  const c = validateConfig<Omit<CsvDropConfig, 'root'>>('csv-drop', csvDropConfigSchema, raw)
  const spec = ALL_TOPICS.find((t) => t.eventTypes.includes(c.eventType))
  const at = (p: string) => (root ? path.resolve(root, p) : p)
  const dir = at(c.dir)
  return {
    ...c,
    root,
    dir,
    topic: c.topic || (spec?.name ?? ''),
    stateDir: c.stateDir ? at(c.stateDir) : path.join(dir, '.distributary'),
    processedDir: c.processedDir ? at(c.processedDir) : path.join(dir, 'processed'),
  }
}

interface Position {
  file: string
  fileId: string
  /** Byte offset and line where the next row starts. */
  byte: number
  line: number
  /** Size of the reject file when this row was read. */
  rejects: number
}

interface State extends Position {
  committedAt: number
}

interface OpenFile {
  name: string
  path: string
  fileId: string
  mtimeMs: number
  /** Size of the file in bytes (progress). */
  size: number
  header: string[]
  /** Avro field → index in the row. */
  index: Map<string, number>
  stream: AsyncIterator<Buffer>
  parser: CsvParser
  /** Parsed rows not yet turned into records: queue[queueAt..] (an index, not shift(): a chunk holds thousands). */
  queue: CsvRow[]
  queueAt: number
  eof: boolean
  rejectFd: number | undefined
  rejectBytes: number
  /** Position after the last row handed out / acked. */
  emitted: Position
  committed: Position
  /** How each Avro field of a row is filled (computed on the first row): a column, a constant, or derived. */
  plan?: Array<
    { field: string; column: number } | { field: string; value: unknown } | { field: string; sequenceBase: number }
  >
  /** occurredAt of the rows (the file's mtime), as the runner takes it. */
  occurredAt?: Date
}

const REJECT_HEADER = 'line,field,column,error,row\n'
const csvCell = (s: string) => (/[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s)

export class CsvDropSource implements SourceConnector<CsvDropConfig> {
  readonly kind = 'source' as const
  private config!: CsvDropConfig
  private log!: Logger
  private converter!: Converter
  private keyFields: string[] = []
  /** The organization the source publishes for (its owner): fills and checks each row's manufacturerId. */
  private publisherId: string | undefined
  private current: OpenFile | undefined
  private nextScan = 0
  private pendingState: State | undefined
  /** Files finished since start (names), for status and tests. */
  readonly finished: string[] = []

  constructor(private readonly topics: readonly TopicSpec[] = ALL_TOPICS) {}

  async start(given: CsvDropConfig, ctx: SourceContext): Promise<void> {
    const config = given.root ? { ...given, ...confineFolders(given.root, given) } : given
    this.config = config
    this.publisherId = ctx.publisherId
    const claimed = config.constants.manufacturerId
    if (this.publisherId !== undefined && claimed !== undefined && claimed !== this.publisherId) {
      throw new ConfigError(
        `csv-drop: constants.manufacturerId is ${String(claimed)}, but the source publishes for ${this.publisherId}`,
        { field: 'constants.manufacturerId' },
      )
    }
    this.log = ctx.logger.child({ component: 'csv-drop', dir: config.dir })
    const spec =
      this.topics.find((t) => t.name === config.topic) ??
      ALL_TOPICS.find((t) => t.eventTypes.includes(config.eventType))
    if (!spec) throw new Error(`csv-drop: no topic for event type ${config.eventType}`)
    // toRecord builds a fresh object per row
    this.converter = createConverter(contractSchema(spec.valueSchema), { strings: true, inPlace: true })
    this.keyFields = (JSON.parse(contractSchema(spec.keySchema)) as { fields: Array<{ name: string }> }).fields.map(
      (f) => f.name,
    )
    fs.mkdirSync(config.stateDir, { recursive: true })
    fs.mkdirSync(config.processedDir, { recursive: true })
    // A file in progress when the process died: its state file.
    for (const f of fs.readdirSync(config.stateDir)) {
      if (!f.endsWith('.json')) continue
      const fd = openNoFollow(path.join(config.stateDir, f), 'r', config.root !== '')
      let s: State
      try {
        s = JSON.parse(fs.readFileSync(fd, 'utf8')) as State
      } finally {
        fs.closeSync(fd)
      }
      // finished (state left behind), or not this file's state (it names a file of its own, never a path)
      if (s.file !== f.slice(0, -'.json'.length) || !fs.existsSync(path.join(config.dir, s.file)))
        fs.rmSync(path.join(config.stateDir, f), { force: true })
      else this.pendingState = s
    }
  }

  recovery(): { sinceMs: number; topics: string[] } | undefined {
    return this.pendingState ? { sinceMs: this.pendingState.committedAt, topics: [this.config.topic] } : undefined
  }

  async reconcile(positions: unknown[]): Promise<void> {
    const s = this.pendingState
    if (!s) return
    let best: Position | undefined
    for (const p of positions as Position[]) if (p.fileId === s.fileId && p.byte > (best?.byte ?? s.byte)) best = p
    if (best) {
      this.log.info('moving past rows acked before the crash but not committed', {
        file: s.file,
        fromLine: s.line,
        toLine: best.line,
      })
      this.pendingState = { ...best, committedAt: Date.now() }
      this.writeState(this.pendingState)
    }
  }

  async poll(): Promise<SourceRecord[]> {
    if (!this.current) {
      if (Date.now() < this.nextScan) return []
      this.nextScan = Date.now() + this.config.scanIntervalMs
      const next = this.pickFile()
      if (!next) return []
      await this.open(next)
    }
    const f = this.current!
    const out: SourceRecord[] = []
    while (out.length < this.config.batchRows) {
      if (f.queueAt === f.queue.length) {
        if (f.eof) break
        const r = await f.stream.next()
        f.queueAt = 0
        if (r.done) {
          f.eof = true
          f.queue = f.parser.end()
        } else f.queue = f.parser.push(r.value)
        continue
      }
      const row = f.queue[f.queueAt++]!
      const rec = this.toRecord(f, row)
      if (rec) out.push(rec)
    }
    if (out.length === 0 && f.eof && f.queueAt === f.queue.length && f.committed.byte === f.emitted.byte) this.finish(f)
    return out
  }

  async commit(records: SourceRecord[]): Promise<void> {
    const last = records[records.length - 1]?.position as Position | undefined
    const f = this.current
    if (!last || !f || last.fileId !== f.fileId) return
    this.writeState({ ...last, committedAt: Date.now() })
    f.committed = last
  }

  /** The file in progress and the next line to read after the last acked row (status reports). */
  /** The resume point and progress: the current file, its next line, the bytes acked of its size. */
  position(): {
    file: string | null
    line: number | null
    byte: number | null
    size: number | null
    filesDone: number
  } {
    const f = this.current
    return {
      file: f?.name ?? null,
      line: f ? f.committed.line : null,
      byte: f ? f.committed.byte : null,
      size: f ? f.size : null,
      filesDone: this.finished.length,
    }
  }

  async stop(): Promise<void> {
    const f = this.current
    this.current = undefined
    if (f) {
      await f.stream.return?.()
      if (f.rejectFd !== undefined) fs.closeSync(f.rejectFd)
    }
  }

  /** A confined source's folders still are what they were at start (none replaced by a symbolic link since). */
  private checkFolders(): void {
    if (!this.config.root) return
    for (const key of ['dir', 'stateDir', 'processedDir'] as const) {
      if (fs.realpathSync(this.config[key]) !== this.config[key])
        throw new ConfigError(`csv-drop: config.${key} now leads elsewhere (replaced by a symbolic link)`, {
          field: `config.${key}`,
        })
    }
  }

  private pickFile(): { name: string; mtimeMs: number } | undefined {
    this.checkFolders()
    const now = Date.now()
    // Regular files only: a symbolic link (d.isFile() is false for one) is never taken.
    const files = fs
      .readdirSync(this.config.dir, { withFileTypes: true })
      .filter((d) => d.isFile() && /\.csv$/i.test(d.name) && !/\.rejects\.csv$/i.test(d.name))
      .map((d) => ({ name: d.name, stat: fs.lstatSync(path.join(this.config.dir, d.name)) }))
      .filter((f) => f.stat.isFile())
      .filter((f) => now - f.stat.mtimeMs >= this.config.settleMs || this.pendingState?.file === f.name)
      .sort((a, b) => a.stat.mtimeMs - b.stat.mtimeMs || a.name.localeCompare(b.name))
    const inProgress = files.find((f) => f.name === this.pendingState?.file)
    const pick = inProgress ?? files[0]
    return pick ? { name: pick.name, mtimeMs: pick.stat.mtimeMs } : undefined
  }

  private async open(pick: { name: string; mtimeMs: number }): Promise<void> {
    const p = path.join(this.config.dir, pick.name)
    // One descriptor for the header and the rows, opened without following a link that replaced the file since the
    // scan.
    const fd = openNoFollow(p, 'r', this.config.root !== '')
    const st = fs.fstatSync(fd)
    if (!st.isFile()) {
      fs.closeSync(fd)
      throw new DataError(`csv-drop: ${pick.name} is not a regular file`, { file: pick.name })
    }
    const fileId = `${st.ino}-${st.size}-${Math.round(st.mtimeMs)}`
    // The header row, read again on every open.
    const headParser = new CsvParser({ delimiter: this.config.delimiter })
    let headerRow: CsvRow | undefined
    try {
      const chunk = Buffer.allocUnsafe(64 * 1024)
      let at = 0
      while (!headerRow) {
        const n = fs.readSync(fd, chunk, 0, chunk.length, at)
        const rows = n === 0 ? headParser.end() : headParser.push(chunk.subarray(0, n))
        headerRow = rows[0]
        if (n === 0) break
        at += n
      }
    } catch (err) {
      fs.closeSync(fd)
      throw err
    }
    const state =
      this.pendingState?.file === pick.name && this.pendingState.fileId === fileId ? this.pendingState : undefined
    this.pendingState = undefined
    const start: Position = state ?? {
      file: pick.name,
      fileId,
      byte: headerRow?.end ?? 0,
      line: (headerRow?.line ?? 0) + 1,
      rejects: 0,
    }
    const rejectPath = p.replace(/\.csv$/i, '') + '.rejects.csv'
    let rejectFd: number | undefined
    let rejectBytes = 0
    try {
      if (state && state.rejects > 0 && fs.existsSync(rejectPath)) {
        rejectFd = openNoFollow(rejectPath, 'a', this.config.root !== '')
        fs.ftruncateSync(rejectFd, state.rejects) // drop rejects of rows after the resume point
        rejectBytes = state.rejects
      } else {
        fs.rmSync(rejectPath, { force: true })
      }
    } catch (err) {
      fs.closeSync(fd)
      throw err
    }
    const header = headerRow?.fields.map((h) => h.trim()) ?? []
    const index = new Map<string, number>()
    for (const field of this.converter.fields) {
      const col = this.config.columns[field] ?? field
      const i = header.indexOf(col)
      if (i >= 0) index.set(field, i)
    }
    const stream = fs
      .createReadStream(p, { fd, start: start.byte, highWaterMark: 256 * 1024 })
      [Symbol.asyncIterator]() as AsyncIterator<Buffer>
    this.current = {
      name: pick.name,
      path: p,
      fileId,
      mtimeMs: st.mtimeMs,
      size: st.size,
      header,
      index,
      stream,
      parser: new CsvParser({ offset: start.byte, line: start.line, delimiter: this.config.delimiter }),
      queue: [],
      queueAt: 0,
      eof: false,
      rejectFd,
      rejectBytes,
      emitted: start,
      committed: start,
    }
    if (!state) this.writeState({ ...start, committedAt: Date.now() })
    this.log.info(state ? 'resuming file' : 'taking file', { file: pick.name, line: start.line, byte: start.byte })
    const missing = Object.entries(this.config.columns).filter(([field]) => !index.has(field))
    if (!headerRow || missing.length > 0) {
      const detail = !headerRow
        ? 'the file has no header row'
        : `header lacks ${missing.map(([f, c]) => `${c} (for ${f})`).join(', ')}`
      this.reject(this.current, 1, '', '', detail, headerRow?.fields ?? [])
      this.current.queue = []
      this.current.queueAt = 0
      this.current.eof = true
      await stream.return?.()
    }
  }

  private toRecord(f: OpenFile, row: CsvRow): SourceRecord | undefined {
    if (row.error) {
      this.reject(f, row.line, '', '', row.error, row.fields)
      return undefined
    }
    const plan = (f.plan ??= this.planOf(f))
    const obj: Record<string, unknown> = {}
    for (const p of plan)
      obj[p.field] =
        'column' in p ? (row.fields[p.column] ?? '') : 'sequenceBase' in p ? p.sequenceBase + row.line : p.value
    if (row.fields.length !== f.header.length) {
      this.reject(f, row.line, '', '', `row has ${row.fields.length} fields, the header ${f.header.length}`, row.fields)
      return undefined
    }
    const r = this.converter.convert(obj)
    if (r.faults.length > 0) {
      for (const fault of r.faults) {
        const field = fault.path.split('/')[1] ?? ''
        const col = f.index.has(field) ? f.header[f.index.get(field)!]! : ''
        this.reject(f, row.line, fault.path, col, fault.message, row.fields)
      }
      return undefined
    }
    const value = r.value as Record<string, unknown>
    if (this.publisherId !== undefined && 'manufacturerId' in value && value.manufacturerId !== this.publisherId) {
      // The platform stamps the publisher; a row naming another manufacturer is refused, never believed.
      const col = f.index.has('manufacturerId') ? f.header[f.index.get('manufacturerId')!]! : ''
      this.reject(
        f,
        row.line,
        '/manufacturerId',
        col,
        `names manufacturer ${String(value.manufacturerId)}, but this source publishes for ${this.publisherId}`,
        row.fields,
      )
      return undefined
    }
    const key: Record<string, unknown> = {}
    for (const k of this.keyFields) key[k] = value[k]
    const position: Position = {
      file: f.name,
      fileId: f.fileId,
      byte: row.end,
      line: row.line + 1,
      rejects: f.rejectBytes,
    }
    f.emitted = position
    let occurredAt: Date | undefined
    if (typeof value.occurredAt === 'number') {
      // rows of one file mostly share one time (the file's): one Date for them (nobody mutates it)
      if (f.occurredAt?.getTime() !== value.occurredAt) f.occurredAt = new Date(value.occurredAt)
      occurredAt = f.occurredAt
    }
    return { topic: this.config.topic, key, value, type: this.config.eventType, occurredAt, position }
  }

  /**
   * The fields of a row in the converter's order: from a column, a constant, or the file's time (sequence is per row).
   */
  private planOf(f: OpenFile): NonNullable<OpenFile['plan']> {
    const plan: NonNullable<OpenFile['plan']> = []
    for (const field of this.converter.fields) {
      const i = f.index.get(field)
      if (i !== undefined) plan.push({ field, column: i })
      else if (field in this.config.constants) plan.push({ field, value: this.config.constants[field] })
      else if (field === 'manufacturerId' && this.publisherId !== undefined)
        plan.push({ field, value: this.publisherId }) // the source's owner
      else if (field === 'sequence')
        // + the line: strictly increasing per key within a file and across files
        plan.push({ field, sequenceBase: Math.floor(f.mtimeMs / 1000) * 2 ** 21 })
      else if (field === 'occurredAt') plan.push({ field, value: Math.round(f.mtimeMs) })
    }
    return plan
  }

  private reject(f: OpenFile, line: number, field: string, column: string, error: string, fields: string[]): void {
    if (f.rejectFd === undefined) {
      f.rejectFd = openNoFollow(f.path.replace(/\.csv$/i, '') + '.rejects.csv', 'a', this.config.root !== '')
      if (f.rejectBytes === 0) f.rejectBytes += fs.writeSync(f.rejectFd, REJECT_HEADER)
    }
    const raw = fields.map(csvCell).join(this.config.delimiter)
    f.rejectBytes += fs.writeSync(
      f.rejectFd,
      `${line},${csvCell(field)},${csvCell(column)},${csvCell(error)},${csvCell(raw)}\n`,
    )
  }

  private finish(f: OpenFile): void {
    if (f.rejectFd !== undefined) fs.closeSync(f.rejectFd)
    f.rejectFd = undefined
    this.checkFolders()
    const dest = (name: string) => {
      const d = path.join(this.config.processedDir, name)
      return fs.existsSync(d) ? path.join(this.config.processedDir, `${Date.now()}-${name}`) : d
    }
    const rejectPath = f.path.replace(/\.csv$/i, '') + '.rejects.csv'
    if (fs.existsSync(rejectPath)) fs.renameSync(rejectPath, dest(path.basename(rejectPath)))
    fs.renameSync(f.path, dest(f.name))
    fs.rmSync(this.statePath(f.name), { force: true })
    this.current = undefined
    this.nextScan = 0
    this.finished.push(f.name)
    this.log.info('file done', { file: f.name, lines: f.emitted.line - 1, rejectBytes: f.rejectBytes })
  }

  private statePath(file: string): string {
    return path.join(this.config.stateDir, `${file}.json`)
  }

  private writeState(s: State): void {
    const p = this.statePath(s.file)
    const tmp = `${p}.tmp`
    const fd = openNoFollow(tmp, 'w', this.config.root !== '')
    try {
      fs.writeSync(fd, JSON.stringify(s))
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    fs.renameSync(tmp, p)
  }
}
