/**
 * The `distributary` command. Usage:
 *   distributary start                    run the platform (brings the local stack up when needed)
 *   distributary stack up|down|status     the local Kafka + MongoDB-compatible stack [--json]
 *   distributary migrate keys             version-1 keys of the publisher topics to version 2 (docs/tenancy.md)
 */
import fs from 'node:fs'
import { parseArgs } from 'node:util'
import { ConfigError, SyndicationError } from '../common/errors.ts'
import { createLogger } from '../common/logger.ts'
import { loadConfig, type AppConfig } from '../config/index.ts'
import { stackDown, stackSettings, stackStatus, stackUp } from '../stack/index.ts'
import { API_OPTIONS, API_SUMMARY, apiCommand, apiCommandHelp, SUBS } from './api-commands.ts'
import { runDemo } from './demo.ts'
import { migrateCommand } from './migrate-keys-command.ts'
import { startPlatform, type PlatformRole } from './platform.ts'

/** Each command's help: the first line names it with its arguments, the rest explains. */
const COMMANDS: Array<[string, string]> = [
  [
    'start',
    `start [--role api|worker|all]
                         run the platform on 127.0.0.1:8080 (brings the local stack up when no
                         external KAFKA_BROKERS / MONGODB_URI is configured); --role api serves
                         HTTP only, --role worker delivers to the subscriptions only (run several:
                         they share the subscriptions and the declared sources), all (the default) does both`,
  ],
  [
    'demo',
    `demo [--events N] [--rate R] [--json]
                         watch the platform syndicate a manufacturer's stock changes and deals to two
                         distributors with different grants (webhooks and a MongoDB projection), live;
                         Ctrl-C (or after N stock changes) stops it and leaves nothing running`,
  ],
  [
    'stack',
    `stack up [--json]      provision and start the local Kafka and FerretDB (idempotent; three Kafka
                         nodes with STACK_KAFKA_BROKERS=3)
  stack down [--json]    stop the servers the stack started
  stack status [--json]  what runs, truthfully, one line per server (exit 1 when one is not running)`,
  ],
  // the commands over the management API (partners ... sources) describe themselves: cli/api-commands.ts
  ...Object.entries(SUBS).map(([name, subs]): [string, string] => [
    name,
    `${name} [${Object.keys(subs).join('|')}] ... [--json]\n${' '.repeat(25)}${API_SUMMARY[name]}`,
  ]),
  [
    'migrate',
    `migrate keys [--topic inventory.levels|deals.registrations|all] [--dry-run] [--json]
                         rows written before keys carried their publisher (version-1 keys): re-produce
                         each stamped row under its version-2 key, tombstone the version-1 keys; rows
                         without a ce_publisherid stamp are listed, not re-produced (docs/tenancy.md).
                         Reads Kafka and the platform's schema registry (SCHEMA_REGISTRY_URL, or
                         SCHEMA_REGISTRY_HOST:SCHEMA_REGISTRY_PORT); --dry-run writes nothing`,
  ],
]

const USAGE = `usage: distributary <command> [options]   (distributary <command> --help, distributary --version)

commands:
${COMMANDS.map(([, text]) => `  ${text}`).join('\n')}
`

/** The help of one command, or undefined for a command that does not exist. */
export function commandHelp(command: string): string | undefined {
  const api = apiCommandHelp(command)
  if (api !== undefined) return api
  const entry = COMMANDS.find(([name]) => name === command)
  return entry ? `usage: distributary ${entry[1].replace(/^ {2}stack /gm, '       distributary stack ')}\n` : undefined
}

/** The platform's version (package.json, one folder above this file and above the built bundle). */
function version(): string {
  try {
    return (JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string })
      .version
  } catch {
    return 'unknown'
  }
}

/** One line for a command line parseArgs refused (an unknown option, a value missing or given to a flag). */
function argumentError(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code
  if (typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS_')) return undefined
  const message = (err as Error).message
  const option = /'(-[^']*)'/.exec(message)?.[1]
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option ${option ?? message}`
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE')
    return option
      ? `option ${option.split(' ')[0]} ${/argument missing/.test(message) ? 'needs a value' : 'takes no value'}`
      : message.split('.')[0]!
  return message.split('.')[0]!
}

async function stackCommand(config: AppConfig, sub: string | undefined, json: boolean): Promise<number> {
  if (sub !== 'up' && sub !== 'down' && sub !== 'status') {
    process.stderr.write(
      sub === undefined
        ? `distributary: stack needs up, down or status (see distributary stack --help)\n`
        : `distributary: unknown stack command "${sub}" (up, down or status; see distributary stack --help)\n`,
    )
    return 2
  }
  const settings = stackSettings(config)
  // with --json, the progress lines go to stderr and stdout holds one JSON document
  const say = (msg: string) => (json ? process.stderr : process.stdout).write(`stack: ${msg}\n`)
  if (settings.services.length === 0) {
    say('KAFKA_BROKERS and MONGODB_URI point at external servers: there is no local stack to manage')
    if (json) process.stdout.write(JSON.stringify(sub === 'status' ? [] : { external: true, results: [] }) + '\n')
    return 0
  }
  switch (sub) {
    case 'up': {
      const results = await stackUp(settings, say)
      if (results.every((r) => r.action === 'already running')) say('everything was already running; nothing to do')
      if (json) process.stdout.write(JSON.stringify({ results }) + '\n')
      return 0
    }
    case 'down':
      await stackDown(settings, say)
      if (json) process.stdout.write(JSON.stringify({ status: await stackStatus(settings) }) + '\n')
      return 0
    case 'status': {
      const status = await stackStatus(settings)
      if (json) process.stdout.write(JSON.stringify(status) + '\n')
      else
        for (const s of status)
          say(`${s.name.padEnd(8)} ${s.state.padEnd(8)} ${s.address}${s.pid ? ` pid ${s.pid}` : ''}`)
      return status.every((s) => s.state === 'running') ? 0 : 1
    }
  }
}

async function start(config: AppConfig, role: PlatformRole): Promise<number> {
  const logger = createLogger({ level: config.log.level, bindings: { service: 'distributary', role } })
  const platform = await startPlatform(config, logger, { roles: role })
  await new Promise<void>((resolve) => {
    let closing = false
    const shutdown = (signal: string) => {
      if (closing) return
      closing = true
      logger.info('shutting down', { signal })
      platform.close().then(resolve, (err) => {
        logger.error('shutdown failed', { err })
        resolve()
      })
    }
    process.once('SIGINT', () => shutdown('SIGINT'))
    process.once('SIGTERM', () => shutdown('SIGTERM'))
  })
  return 0
}

export async function main(argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
        version: { type: 'boolean', short: 'v', default: false },
        role: { type: 'string', default: 'all' },
        events: { type: 'string' },
        rate: { type: 'string' },
        topic: { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        ...API_OPTIONS,
      },
      tokens: true,
    })
  } catch (err) {
    const line = argumentError(err)
    if (line === undefined) throw err
    process.stderr.write(`distributary: ${line} (see distributary --help)\n`)
    return 2
  }
  const { positionals, values, tokens } = parsed
  const [command, sub] = positionals
  if (values.version) {
    process.stdout.write(values.json ? JSON.stringify({ version: version() }) + '\n' : `distributary ${version()}\n`)
    return 0
  }
  if (command === undefined) {
    ;(values.help ? process.stdout : process.stderr).write(USAGE)
    return values.help ? 0 : 2
  }
  const help = commandHelp(command)
  if (help === undefined) {
    process.stderr.write(
      `distributary: unknown command "${command}" (commands: ` +
        `${COMMANDS.map(([name]) => name).join(', ')}; see distributary --help)\n`,
    )
    return 2
  }
  if (values.help) {
    process.stdout.write(help)
    return 0
  }
  const config = loadConfig()
  if (Object.hasOwn(SUBS, command)) {
    return apiCommand(
      config,
      command,
      positionals.slice(1),
      values,
      new Set(tokens.flatMap((t) => (t.kind === 'option' ? [t.name] : []))),
    )
  }
  switch (command) {
    case 'start': {
      const role = values.role
      if (role !== 'api' && role !== 'worker' && role !== 'all') {
        process.stderr.write(`distributary: --role must be api, worker or all (got "${role}")\n\n${USAGE}`)
        return 2
      }
      return start(config, role)
    }
    case 'stack':
      return stackCommand(config, sub, values.json)
    case 'demo': {
      const events = values.events === undefined ? undefined : Number(values.events)
      const rate = values.rate === undefined ? undefined : Number(values.rate)
      if (events !== undefined && (!Number.isInteger(events) || events < 1)) {
        process.stderr.write(`distributary: --events must be a positive integer (got "${values.events}")\n`)
        return 2
      }
      if (rate !== undefined && (!Number.isFinite(rate) || rate <= 0 || rate > 5000)) {
        process.stderr.write(
          `distributary: --rate must be a number of events per second between 1 and 5000 (got "${values.rate}")\n`,
        )
        return 2
      }
      const stop = new AbortController()
      process.on('SIGINT', () => {
        if (stop.signal.aborted) process.exit(130) // a second Ctrl-C: leave now
        stop.abort()
      })
      process.once('SIGTERM', () => stop.abort())
      const summary = await runDemo(config, {
        ...(events !== undefined ? { events } : {}),
        ...(rate !== undefined ? { rate } : {}),
        json: values.json,
        signal: stop.signal,
      })
      return summary.complete ? 0 : 1
    }
    case 'migrate':
      return migrateCommand(config, positionals.slice(1), {
        topic: values.topic,
        dryRun: values['dry-run'],
        json: values.json,
      })
    default:
      return 2 // every command of COMMANDS is handled above
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`distributary: ${err.message}\n`)
      process.exit(78)
    }
    if (err instanceof SyndicationError) {
      process.stderr.write(`distributary: [${err.code}] ${err.message}\n`)
      process.exit(1)
    }
    process.stderr.write(`distributary: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exit(1)
  },
)
