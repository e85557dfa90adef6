/**
 * `distributary migrate keys`: the command around migrate-keys.ts, its usage and the report it prints
 * for a person at a terminal (or the report's JSON with --json).
 */
import type { AppConfig } from '../config/index.ts'
import { SyndicationError } from '../common/errors.ts'
import { PUBLISHER_TOPICS, type TopicSpec } from '../schemas/topics.ts'
import {
  MIGRATE_TOPIC_CHOICES,
  migrateKeys,
  type MigratedRow,
  type MigrateKeysDeps,
  type MigrationReport,
} from './migrate-keys.ts'

const n = (x: number) => x.toLocaleString('en-US')

const byPosition = (a: MigratedRow, b: MigratedRow) => a.partition - b.partition || Number(a.offset) - Number(b.offset)

/** The report for a person at a terminal. */
export function renderMigrationReport(r: MigrationReport): string {
  const out: string[] = []
  if (r.dryRun) out.push('dry run: nothing was written; `distributary migrate keys` would do what follows.')
  const labels = r.dryRun
    ? {
        reproduced: 'to re-produce under a version-2 key',
        kept: 'kept: a newer version-2 key exists',
        skipped: 'not re-produced: owner unknown',
        tombstoned: 'version-1 keys to tombstone',
      }
    : {
        reproduced: 're-produced under a version-2 key',
        kept: 'kept: a newer version-2 key exists',
        skipped: 'not re-produced: owner unknown',
        tombstoned: 'version-1 keys tombstoned',
      }
  const width = Math.max(...Object.values(labels).map((l) => l.length))
  const line = (label: string, count: number, note = '') =>
    out.push(`  ${label.padEnd(width)}  ${n(count).padStart(9)}${note ? `  ${note}` : ''}`)
  const rows = <T extends MigratedRow>(list: { count: number; first: T[] }, describe: (row: T) => string) => {
    for (const row of [...list.first].sort(byPosition))
      out.push(`      ${row.key} (partition ${row.partition} offset ${row.offset})${describe(row)}`)
    if (list.count > list.first.length) out.push(`      ... and ${n(list.count - list.first.length)} more`)
  }
  for (const t of r.topics) {
    if (!t.exists) {
      out.push(`${t.topic}: the topic does not exist; nothing to migrate`)
      continue
    }
    out.push(
      `${t.topic}: ${n(t.recordsScanned)} records read, ${n(t.v1Keys)} version-1 ` +
        `keys (${n(t.v1KeysLive)} with live rows), ${n(t.v2Keys)} version-2 ` +
        `keys${t.undecodableKeys > 0 ? `, ${n(t.undecodableKeys)} records with undecodable keys (left alone)` : ''}`,
    )
    line(labels.reproduced, t.reproduced.count)
    rows(t.reproduced, (row) => ` -> ${row.to}`)
    line(labels.kept, t.keptNewer)
    line(labels.skipped, t.skipped.count, t.skipped.count > 0 ? '(their publishers re-send their current state)' : '')
    rows(t.skipped, (row) => `: ${row.reason}`)
    line(labels.tombstoned, t.tombstonedKeys, `(${n(t.tombstones)} tombstones)`)
  }
  return out.join('\n') + '\n'
}

export interface MigrateCommandIo {
  out?: NodeJS.WritableStream
  err?: NodeJS.WritableStream & { isTTY?: boolean }
}

const USAGE = `usage: distributary migrate keys [--topic ${MIGRATE_TOPIC_CHOICES.join('|')}] [--dry-run] [--json]
  moves the rows of topics written before keys carried their publisher to version-2 keys and
  tombstones the version-1 keys (docs/tenancy.md); --dry-run writes nothing and prints what it would do
`

/** `distributary migrate keys ...`: 0 done, 1 failed (the message says why), 2 usage. */
export async function migrateCommand(
  config: AppConfig,
  args: string[],
  flags: { topic?: string | undefined; dryRun: boolean; json: boolean },
  deps: Omit<MigrateKeysDeps, 'config' | 'progress'> & { topics?: readonly TopicSpec[] } = {},
  io: MigrateCommandIo = {},
): Promise<number> {
  const out = io.out ?? process.stdout
  const err = io.err ?? process.stderr
  const [sub, ...rest] = args
  if (sub !== 'keys' || rest.length > 0) {
    err.write(USAGE)
    return 2
  }
  const choice = flags.topic ?? 'all'
  if (!(MIGRATE_TOPIC_CHOICES as readonly string[]).includes(choice)) {
    err.write(`distributary: --topic must be one of ${MIGRATE_TOPIC_CHOICES.join(', ')} (got "${choice}")\n\n${USAGE}`)
    return 2
  }
  const topics = deps.topics ?? PUBLISHER_TOPICS.filter((t) => choice === 'all' || t.name === choice)
  try {
    const report = await migrateKeys(
      { config, ...deps, ...(flags.json ? {} : { progress: err }) },
      { topics, dryRun: flags.dryRun },
    )
    out.write(flags.json ? JSON.stringify(report) + '\n' : renderMigrationReport(report))
    return 0
  } catch (e) {
    const message =
      e instanceof SyndicationError ? `[${e.code}] ${e.message}` : e instanceof Error ? e.message : String(e)
    err.write(`distributary: migrate keys: ${message}\n`)
    return 1
  }
}
