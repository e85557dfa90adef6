/**
 * The commands over the management API, for operators at a terminal: readable tables and lines by
 * default, the API's JSON with --json. They talk through the typed client (client/index.ts), so a
 * request the API's contract does not allow does not compile.
 *
 * Creates and updates take flags for the common fields, or `--from-file <file|->` with exactly the
 * API's request JSON (the schemas of GET /v1/openapi.json; `-` reads stdin); flags given with a file
 * replace its fields. The API validates either: its problem is printed as one line naming the field
 * at fault, exit 1. A command line that is wrong before any request (an unknown subcommand, a flag
 * the subcommand does not take, an unreadable file) is one line and exit 2.
 */
import { ApiProblem, ApiUnreachable, createManagementClient, type ManagementClient } from '../client/index.ts'
import type { AppConfig } from '../config/index.ts'
import {
  API_OPTIONS,
  UsageError,
  VALUE,
  type ApiCommandFlags,
  type Ctx,
  type OptionName,
  type Sub,
} from './api-args.ts'
import { SUBS } from './api-subcommands.ts'

export { API_OPTIONS, renderTable } from './api-args.ts'
export type { ApiCommandFlags } from './api-args.ts'
export { SUBS } from './api-subcommands.ts'

export const API_SUMMARY: Record<string, string> = {
  partners: 'partner organizations (--kind publisher: the publishers)',
  organizations: 'publishers and partners',
  keys: 'API keys (a new key is shown once)',
  grants: 'what a publisher lets a partner receive: an offer until the partner accepts it',
  subscriptions: "a partner's subscriptions (sink connectors), within its grants",
  connectors: "each subscription's connector: state, lag, pause and resume, replay",
  dlq: "a subscription's dead letters",
  sources: 'source connectors (csv-drop, mongodb)',
  deals: 'deal registrations: partners register, publishers decide (docs/deals.md)',
  leads: 'leads a publisher shares with a partner: accept, decline, reassign, convert',
  inbound: "a publisher's inbound connectors: the signed endpoints its CRM posts deal decisions to",
}

/** `--name <value>` as the help shows a flag (a repeatable one with `...` after the brackets in the usage). */
const flagText = (f: string) =>
  `--${f}${API_OPTIONS[f as OptionName].type === 'string' ? ` <${VALUE[f as OptionName]}>` : ''}`

const usageLine = (command: string, name: string, sub: Sub, first: boolean) => {
  const flags = Object.keys(sub.flags ?? {}).map(
    (f) => ` [${flagText(f)}]${'multiple' in API_OPTIONS[f as OptionName] ? '...' : ''}`,
  )
  return (
    `distributary ${command} ` +
    `${first ? `[${name}]` : name}${sub.args ? ` ${sub.args}` : ''}${flags.join('')} ` +
    `[--json]`
  )
}

/** `distributary <command> --help` of an API command: each subcommand's usage and what it does, then each flag. */
export function apiCommandHelp(command: string): string | undefined {
  const subs = SUBS[command]
  if (!subs) return undefined
  const indent = ' '.repeat(24)
  const entries = Object.entries(subs)
  const lines = entries.map(
    ([name, sub], i) =>
      `${i === 0 ? 'usage:' : '      '} ${usageLine(command, name, sub, i === 0)}\n${indent}${sub.help}`,
  )
  const flagLines = entries.flatMap(([name, sub]) =>
    Object.entries(sub.flags ?? {}).map(([f, text]) => `  ${name} ${flagText(f)}\n${indent}${text}`),
  )
  const env =
    'over the management API at DISTRIBUTARY_API_URL (default http://127.0.0.1:8080) with DISTRIBUTARY_API_KEY (default ADMIN_API_KEY)'
  return (
    `${lines.join('\n')}\n\n${API_SUMMARY[command]}, ` +
    `${env}.\n${flagLines.length ? `\nflags:\n${flagLines.join('\n')}\n` : ''}  ` +
    `--json                the API's JSON instead of a table or a line\n`
  )
}

function baseUrl(config: AppConfig): string {
  if (config.cli.apiUrl !== '') return config.cli.apiUrl.replace(/\/$/, '')
  const host = config.http.host === '0.0.0.0' ? '127.0.0.1' : config.http.host
  return `http://${host}:${config.http.port}`
}

/** The typed client the CLI talks through: the configured URL and key (DISTRIBUTARY_API_KEY, else ADMIN_API_KEY). */
export function cliClient(config: AppConfig): ManagementClient {
  return createManagementClient({
    baseUrl: baseUrl(config),
    apiKey: config.cli.apiKey !== '' ? config.cli.apiKey : config.management.adminApiKey,
  })
}

/**
 * Runs `distributary <command> [sub] [args]`. `given`: the options the command line named (parseArgs
 * tokens), so one the subcommand does not take is refused instead of silently ignored.
 */
export async function apiCommand(
  config: AppConfig,
  command: string,
  args: string[],
  flags: ApiCommandFlags,
  given: ReadonlySet<string> = new Set(),
): Promise<number> {
  const subs = SUBS[command]!
  const [name = Object.keys(subs)[0]!, ...rest] = args
  try {
    const sub = Object.hasOwn(subs, name) ? subs[name]! : undefined
    if (!sub) {
      process.stderr.write(
        `distributary: unknown command "${command} ${name}" ` +
          `(${Object.keys(subs).join(', ')}; see distributary ${command} --help)\n`,
      )
      return 2
    }
    const stray = [...given].filter((f) => f !== 'json' && f !== 'help' && !(f in (sub.flags ?? {})))
    if (stray.length > 0)
      throw new UsageError(`${command} ${name} does not take ${stray.map((f) => `--${f}`).join(', ')}`)
    const ctx: Ctx = {
      api: cliClient(config),
      command,
      sub: name,
      spec: sub,
      args: rest,
      flags,
      out: (value, human) => process.stdout.write(flags.json ? JSON.stringify(value, null, 2) + '\n' : human()),
      need: (n, what) => {
        const v = rest[n]
        if (!v) throw new UsageError(`${command} ${name}: missing <${what}>`)
        return v
      },
    }
    return await sub.run(ctx)
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`distributary: ${err.message} (see distributary ${command} --help)\n`)
      return 2
    }
    if (err instanceof ApiProblem) {
      process.stderr.write(`distributary: ${err.message}\n`)
      return 1
    }
    if (err instanceof ApiUnreachable) {
      process.stderr.write(`distributary: ${err.message} (is \`distributary start\` running? DISTRIBUTARY_API_URL)\n`)
      return 1
    }
    throw err
  }
}
