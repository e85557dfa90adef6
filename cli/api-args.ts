/**
 * What the API commands (api-commands.ts) share: their options, a subcommand's context, tables, and
 * the request bodies built from flags and `--from-file` (flags given with a file replace its fields).
 */
import fs from 'node:fs'
import { allPages, data, type ManagementClient, type paths, type Schemas } from '../client/index.ts'

/** The options of the API commands, for parseArgs (cli/main.ts); none has a default, so undefined is "not given". */
export const API_OPTIONS = {
  kind: { type: 'string' },
  from: { type: 'string' },
  follow: { type: 'boolean' },
  'from-file': { type: 'string' },
  name: { type: 'string' },
  slug: { type: 'string' },
  scope: { type: 'string' },
  'organization-id': { type: 'string' },
  'publisher-id': { type: 'string' },
  'partner-id': { type: 'string' },
  'event-type': { type: 'string', multiple: true },
  fields: { type: 'string' },
  filter: { type: 'string', multiple: true },
  'webhook-url': { type: 'string' },
  'start-from': { type: 'string' },
  'overlap-seconds': { type: 'string' },
  issue: { type: 'boolean' },
  revoke: { type: 'boolean' },
  reason: { type: 'string' },
  state: { type: 'string' },
  mapping: { type: 'string' },
  'tolerance-seconds': { type: 'string' },
} as const

export type OptionName = keyof typeof API_OPTIONS
type OptionValue<O> = O extends { type: 'boolean' } ? boolean : O extends { multiple: true } ? string[] : string
export type ApiCommandFlags = { json: boolean } & {
  [K in OptionName]?: OptionValue<(typeof API_OPTIONS)[K]> | undefined
}

/** How each option's value reads in the help. */
export const VALUE: Record<OptionName, string> = {
  kind: 'publisher|partner',
  from: 'ISO time|earliest|latest|snapshot',
  follow: '',
  'from-file': 'file|-',
  name: 'name',
  slug: 'slug',
  scope: 'admin|publisher|partner',
  'organization-id': 'org id',
  'publisher-id': 'org id',
  'partner-id': 'org id',
  'event-type': 'type',
  fields: 'field,field...',
  filter: 'field=value,value...',
  'webhook-url': 'url',
  'start-from': 'latest|earliest|snapshot',
  'overlap-seconds': 'seconds',
  issue: '',
  revoke: '',
  reason: 'text',
  state: 'state',
  mapping: 'JSONata',
  'tolerance-seconds': 'seconds',
}

/** One subcommand: its arguments, the options it takes (with what each means there), what it does. */
export interface Sub {
  args?: string
  flags?: Partial<Record<OptionName, string>>
  help: string
  run(ctx: Ctx): Promise<number>
}

export interface Ctx {
  api: ManagementClient
  command: string
  sub: string
  spec: Sub
  /** Positional arguments after the subcommand. */
  args: string[]
  flags: ApiCommandFlags
  /** Prints `value` as the API's JSON with --json, else what `human` gives. */
  out(value: unknown, human: () => string): void
  /** The n-th argument (`<what>` in the help), or a usage error. */
  need(n: number, what: string): string
}

export interface Column {
  title: string
  get(row: Record<string, unknown>): unknown
}

export class UsageError extends Error {}

export function renderTable(rows: Array<Record<string, unknown>>, columns: Column[]): string {
  const cells = rows.map((r) =>
    columns.map((c) => {
      const v = c.get(r)
      return v === null || v === undefined ? '-' : v instanceof Object ? JSON.stringify(v) : String(v)
    }),
  )
  const widths = columns.map((c, i) => Math.max(c.title.length, ...cells.map((row) => row[i]!.length)))
  const line = (values: string[]) =>
    values
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd()
  return (
    [line(columns.map((c) => c.title)), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n') + '\n'
  )
}

export const col = (title: string, key: string): Column => ({
  title,
  get: (r) => key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], r),
})

export const PAGE = 200
export const path = <K extends string>(name: K, value: string) => ({ path: { [name]: value } as Record<K, string> })

// ---- request bodies from flags and --from-file ----------------------------------------------------

/** The --from-file JSON object (`-`: stdin), or {} without the flag. */
function fileBody(flags: ApiCommandFlags): Record<string, unknown> {
  const file = flags['from-file']
  if (file === undefined) return {}
  let text: string
  try {
    text = fs.readFileSync(file === '-' ? 0 : file, 'utf8')
  } catch (err) {
    throw new UsageError(
      `--from-file ${file}: ` +
        `${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`,
    )
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new UsageError(`--from-file ${file}: not JSON (${(err as Error).message})`)
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new UsageError(`--from-file ${file}: the request must be a JSON object`)
  return parsed as Record<string, unknown>
}

/** The file's JSON with each field a flag gives set over it (undefined: not given); an update must change something. */
export function requestBody(ctx: Ctx, fromFlags: Record<string, unknown>, update = false): Record<string, unknown> {
  const body = fileBody(ctx.flags)
  for (const [k, v] of Object.entries(fromFlags)) if (v !== undefined) body[k] = v
  if (update && Object.keys(body).length === 0) {
    const flags = Object.keys(ctx.spec.flags ?? {}).map((f) => `--${f}`)
    throw new UsageError(
      `${ctx.command} ${ctx.sub}: nothing to change (give ${flags.slice(0, -1).join(', ')} or ${flags.at(-1)})`,
    )
  }
  return body
}

/** `a,b, c` → ['a', 'b', 'c']; several occurrences of a repeatable flag add up. */
const list = (v: string | string[] | undefined): string[] | undefined => {
  if (v === undefined) return undefined
  const items = (Array.isArray(v) ? v : [v])
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter((s) => s !== '')
  return items.length > 0 ? items : undefined
}

/** `--filter region=EU,US` (repeatable) → the API's row filter { region: { in: ['EU', 'US'] } }; values are strings. */
function rowFilter(flags: ApiCommandFlags): Schemas['RowFilter'] | undefined {
  if (flags.filter === undefined) return undefined
  const filter: Schemas['RowFilter'] = {}
  for (const f of flags.filter) {
    const eq = f.indexOf('=')
    const values = list(f.slice(eq + 1))
    if (eq < 1 || !values) throw new UsageError(`--filter "${f}": expected <field>=<value>[,<value>...]`)
    filter[f.slice(0, eq)] = { in: values }
  }
  return filter
}

/** --event-type (each with --fields and --filter) → a grant's entitlements. */
export function entitlements(flags: ApiCommandFlags): Schemas['Entitlement'][] | undefined {
  const types = list(flags['event-type'])
  const fields = list(flags.fields)
  const filter = rowFilter(flags)
  // as typed: the API refuses a type it does not know, naming the known ones
  return types?.map((type) => ({
    eventType: type as Schemas['Entitlement']['eventType'],
    ...(filter ? { filter } : {}),
    ...(fields ? { fields } : {}),
  }))
}

/** The subscription fields the flags give. */
export function subscriptionFields(flags: ApiCommandFlags): Record<string, unknown> {
  return {
    name: flags.name,
    eventTypes: list(flags['event-type']),
    fields: list(flags.fields),
    filter: rowFilter(flags),
    sink: flags['webhook-url'] === undefined ? undefined : { type: 'webhook', url: flags['webhook-url'] },
  }
}

export function overlapSeconds(flags: ApiCommandFlags): number | undefined {
  const v = flags['overlap-seconds']
  if (v === undefined) return undefined
  if (!/^\d+$/.test(v)) throw new UsageError(`--overlap-seconds must be a whole number of seconds (got "${v}")`)
  return Number(v)
}

type Page = { items: Array<Record<string, unknown>>; nextCursor: string | null }
type ApiAnswer<T> = { data?: T; error?: unknown; response: Response }
type PageQuery = { limit: number; cursor: string | undefined }

/**
 * A list, every page of it: a table of `columns` (the API's JSON with --json). `page(query)` asks for one, its query
 * the `filters` with the page size and the cursor.
 */
export async function printList<const Q extends object>(
  ctx: Ctx,
  columns: Column[],
  filters: Q,
  page: (query: Q & PageQuery) => Promise<ApiAnswer<Page>>,
): Promise<number> {
  const all = await allPages((cursor) => data(page({ ...filters, limit: PAGE, cursor })))
  ctx.out(all, () => renderTable(all, columns))
  return 0
}

/** The API's lists: the paths whose GET takes no path parameter and answers a page (`items`, `nextCursor`). */
type ListPath = {
  [P in keyof paths]: paths[P] extends {
    get: {
      parameters: { path?: never }
      responses: { 200: { content: { 'application/json': { nextCursor: string | null } } } }
    }
  }
    ? P
    : never
}[keyof paths]
/** The filters of a list: its query parameters but the page's. */
type ListFilters<P extends ListPath> = Omit<NonNullable<paths[P]['get']['parameters']['query']>, 'limit' | 'cursor'>
/** A query parameter's name as a flag's: kebab case (partnerId: partner-id). */
type Kebab<S extends string> = S extends `${infer H}${infer T}`
  ? `${H extends Lowercase<H> ? H : `-${Lowercase<H>}`}${Kebab<T>}`
  : S
/**
 * The flags of a list's filters: each query parameter it takes with what its flag means there. The flag is the
 * parameter's name in kebab case, or where no option has that name the [flag, help] given.
 */
type ListFlags<P extends ListPath> = {
  [Q in keyof ListFilters<P> & string]?: Kebab<Q> extends OptionName
    ? string | [OptionName, string]
    : [OptionName, string]
}

/**
 * A `list` subcommand: every page of the list at `path`, a table of `columns` (printList), filtered by the flags of
 * `filters` given.
 */
export function listCommand<P extends ListPath>(
  help: string,
  columns: Column[],
  path: P,
  filters: ListFlags<P> = {},
): Sub {
  const flags = Object.entries(filters as Record<string, string | [OptionName, string]>).map(
    ([param, f]): [param: string, flag: OptionName, means: string] =>
      typeof f === 'string'
        ? [param, param.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`) as OptionName, f]
        : [param, ...f],
  )
  return {
    ...(flags.length > 0 && { flags: Object.fromEntries(flags.map(([, flag, means]) => [flag, means])) }),
    help,
    run: (ctx) =>
      printList(ctx, columns, Object.fromEntries(flags.map(([param, flag]) => [param, ctx.flags[flag]])), (query) =>
        // openapi-fetch types a call by a literal path: the query is the list's (its filters and the page's)
        ctx.api.GET(path as ListPath, { params: { query } } as never),
      ),
  }
}

/** The paths with one path parameter, the item's id, whose `method` takes it (`/grants/{grantId}`). */
type OneIdPath<M extends 'get' | 'patch' | 'delete'> = {
  [P in keyof paths]: P extends `${string}{${string}}${infer Rest}`
    ? Rest extends `${string}{${string}`
      ? never
      : paths[P] extends Record<M, { parameters: { path: object } }>
        ? P
        : never
    : never
}[keyof paths]

/** The API's items: the paths whose GET takes one path parameter, the item's id. */
type ItemPath = OneIdPath<'get'>

/** A `show <id>` subcommand: the item at `itemPath` with that id, as its JSON (with or without --json). */
export function showCommand(help: string, itemPath: ItemPath): Sub {
  const param = /\{(\w+)\}/.exec(itemPath)![1]!
  return {
    args: '<id>',
    help,
    run: async (ctx) => {
      // openapi-fetch types a call by a literal path: the one parameter is `param`, the id given
      const value = await data(ctx.api.GET(itemPath, { params: path(param, ctx.need(0, 'id')) } as never))
      ctx.out(value, () => JSON.stringify(value, null, 2) + '\n')
      return 0
    },
  }
}

/** `<command> delete <id>`: DELETE the item, then `<id>: <done>` (the API's 204 has no body to print). */
export function deleteCommand(help: string, itemPath: OneIdPath<'delete'>, done: string): Sub {
  const param = /\{(\w+)\}/.exec(itemPath)![1]!
  return {
    args: '<id>',
    help,
    run: async (ctx) => {
      const id = ctx.need(0, 'id')
      // openapi-fetch types a call by a literal path: the one parameter is `param`, the id given
      await data(ctx.api.DELETE(itemPath, { params: path(param, id) } as never))
      ctx.out({ id, deleted: true }, () => `${id}: ${done}\n`)
      return 0
    },
  }
}

/** The status of an item a worker runs: GET paths with one path parameter ending in /status. */
type StatusPath = {
  [P in keyof paths]: P extends `${string}{${string}}/status` ? P : never
}[keyof paths]

/**
 * `<command> status <id>`: GET `statusPath`, a table of one row of `columns` (its `id` the id given: a status need not
 * carry it). With `follow`, --follow then follows it (`follow.run`) until it is done.
 */
export function statusCommand(
  help: string,
  statusPath: StatusPath,
  columns: Column[],
  follow?: { help: string; run: (api: ManagementClient, id: string) => Promise<number> },
): Sub {
  const param = /\{(\w+)\}/.exec(statusPath)![1]!
  return {
    args: '<id>',
    ...(follow && { flags: { follow: follow.help } }),
    help,
    run: async (ctx) => {
      const id = ctx.need(0, 'id')
      // openapi-fetch types a call by a literal path: the one parameter is `param`, the id given
      const status: unknown = await data(ctx.api.GET(statusPath, { params: path(param, id) } as never))
      ctx.out(status, () => renderTable([{ id, ...(status as Record<string, unknown>) }], columns))
      if (follow && ctx.flags.follow) return follow.run(ctx.api, id)
      return 0
    },
  }
}

/**
 * `<command> update <id>`: PATCH the item at `itemPath` with the fields `fieldsOf` makes of the `flags` given (over
 * --from-file's; nothing to change is refused before any request); `line` prints the changed item.
 */
export function updateCommand<T>(
  help: string,
  itemPath: OneIdPath<'patch'>,
  flags: NonNullable<Sub['flags']>,
  fieldsOf: (flags: ApiCommandFlags) => Record<string, unknown>,
  line: (changed: T) => string,
): Sub {
  const param = /\{(\w+)\}/.exec(itemPath)![1]!
  return {
    args: '<id>',
    flags,
    help,
    run: async (ctx) => {
      const id = ctx.need(0, 'id')
      const body = requestBody(ctx, fieldsOf(ctx.flags), true)
      // openapi-fetch types a call by a literal path: the one parameter is `param`, the id given; the body the item's
      // patch
      const changed = (await data(ctx.api.PATCH(itemPath, { params: path(param, id), body } as never))) as T
      ctx.out(changed, () => line(changed))
      return 0
    },
  }
}

/** The rotations of a credential: POST paths with one path parameter ending in /rotate. */
type RotationPath = {
  [P in keyof paths]: P extends `${string}{${string}}${string}/rotate` ? P : never
}[keyof paths]

/**
 * `<command> <sub> <id> [--overlap-seconds N]`: a new credential now, the old one valid for the overlap (the API's
 * default without the flag); `line` prints the answer, which holds the new credential (shown only now).
 */
export function rotateCommand<T>(
  help: string,
  overlapHelp: string,
  rotationPath: RotationPath,
  line: (answer: T, id: string) => string,
): Sub {
  const param = /\{(\w+)\}/.exec(rotationPath)![1]!
  return {
    args: '<id>',
    flags: { 'overlap-seconds': overlapHelp },
    help,
    run: async (ctx) => {
      const id = ctx.need(0, 'id')
      const overlap = overlapSeconds(ctx.flags)
      const body = overlap === undefined ? {} : { overlapSeconds: overlap }
      // openapi-fetch types a call by a literal path: the one parameter is `param`, the id given
      const answer = (await data(ctx.api.POST(rotationPath, { params: path(param, id), body } as never))) as T
      ctx.out(answer, () => line(answer, id))
      return 0
    },
  }
}

/** The help of `--from-file`: the API's request JSON of the named schema. */
export const FROM_FILE = (schema: string, note = '') =>
  `the API's request JSON, ${schema} of GET /v1/openapi.json (- reads stdin; ` +
  `flags given too replace its fields)${note ? `: ${note}` : ''}`

/** Every API command and its subcommands; the first subcommand is the default (`distributary grants` lists). */
