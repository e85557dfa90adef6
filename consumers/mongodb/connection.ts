/**
 * A partner's MongoDB connection string: parsed by the driver (so we accept exactly what it
 * accepts), described without its credentials, and checked by the SSRF guard.
 *
 * Why the URL guard applies to MongoDB too: the connection string is typed by a partner and the
 * worker connects from inside our network. Without the guard, `mongodb://127.0.0.1:27017/` with the
 * control plane's database name would let a partner write into our own store (API keys, grants),
 * and any private address could be probed. So every host of the string (for mongodb+srv://, every
 * target of its SRV record) must pass the same guard as webhook URLs (loopback, private, link-local
 * and metadata addresses refused unless allowlisted; tests allowlist 127.0.0.1). The guard runs when
 * the subscription is saved (422 naming sink.connectionString) and again when the sink starts
 * (DNS can change); the shared client also checks every server the driver discovers later (a
 * replica set's `hello` can name other hosts), see client-pool.ts. Unix domain sockets are refused.
 */
import dns from 'node:dns/promises'
import net from 'node:net'
import { MongoClient, type MongoClientOptions } from 'mongodb'
import { ConfigError, RetriableError, UrlRefusedError } from '../../common/errors.ts'
import type { UrlGuard } from '../../common/url-guard.ts'

/** The password of a connection string, read leniently (also from a string the driver refuses), raw and decoded. */
export function connectionSecrets(connectionString: string): string[] {
  const m = /^[a-z+]+:\/\/([^/?#]*)@/i.exec(connectionString)
  const userinfo = m?.[1]
  const out = new Set<string>()
  if (connectionString.length > 0) out.add(connectionString)
  if (userinfo) {
    const colon = userinfo.indexOf(':')
    const password = colon >= 0 ? userinfo.slice(colon + 1) : ''
    if (password.length > 0) {
      out.add(password)
      try {
        out.add(decodeURIComponent(password))
      } catch {
        /* not percent-encoded properly: the raw form is enough */
      }
    }
  }
  return [...out].filter((s) => s.length >= 3).sort((a, b) => b.length - a.length)
}

/** `text` with every secret of the connection string replaced. */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = text
  for (const s of secrets) out = out.split(s).join('[redacted]')
  return out
}

export interface ParsedConnection {
  /** host:port of every seed (empty for mongodb+srv://). */
  hosts: Array<{ host: string; port: number }>
  srvHost: string | null
  /** The string without credentials or options, for logs and the delivery log. */
  display: string
  hasCredentials: boolean
}

/** Parses with the driver (no connection). A string the driver refuses is a ConfigError that never quotes it. */
export function parseConnectionString(connectionString: string, options: MongoClientOptions = {}): ParsedConnection {
  if (typeof connectionString !== 'string' || !/^mongodb(\+srv)?:\/\//.test(connectionString)) {
    throw new ConfigError('sink.connectionString must start with mongodb:// or mongodb+srv://', { field: 'sink.connectionString' })
  }
  let client: MongoClient
  try {
    client = new MongoClient(connectionString, options)
  } catch (err) {
    const reason = scrub(err instanceof Error ? err.message : String(err), connectionSecrets(connectionString))
    throw new ConfigError(`sink.connectionString is not a valid MongoDB connection string: ${reason}`, { field: 'sink.connectionString' })
  }
  const o = client.options
  const hosts: ParsedConnection['hosts'] = []
  for (const h of o.hosts) {
    if (h.socketPath) throw new ConfigError('sink.connectionString must not name a Unix domain socket', { field: 'sink.connectionString' })
    hosts.push({ host: h.host ?? '', port: h.port ?? 27017 })
  }
  const srvHost = o.srvHost ?? null
  const display = srvHost ? `mongodb+srv://${srvHost}` : `mongodb://${hosts.map((h) => `${net.isIPv6(h.host) ? `[${h.host}]` : h.host}:${h.port}`).join(',')}`
  return { hosts, srvHost, display, hasCredentials: o.credentials !== undefined }
}

export type SrvResolver = (name: string) => Promise<Array<{ name: string; port: number }>>

/**
 * Runs the URL guard over every host the connection string makes the driver connect to. A refused
 * host is a UrlRefusedError naming it (never the credentials); a name that does not resolve now is
 * retriable (DNS may be down), except at save time where the caller reports it as a field error.
 */
export async function guardConnection(parsed: ParsedConnection, guard: UrlGuard, resolveSrv: SrvResolver = (n) => dns.resolveSrv(n)): Promise<void> {
  let targets = parsed.hosts
  if (parsed.srvHost) {
    try {
      targets = (await resolveSrv(`_mongodb._tcp.${parsed.srvHost}`)).map((r) => ({ host: r.name, port: r.port }))
    } catch (err) {
      throw new RetriableError(`SRV record of ${parsed.srvHost} does not resolve: ${(err as Error).message}`, undefined, { host: parsed.srvHost }, { cause: err })
    }
  }
  for (const t of targets) await guardHost(t.host, t.port, guard)
}

/** One host:port through the URL guard (which speaks URLs: the host is wrapped in one). */
export async function guardHost(host: string, port: number, guard: UrlGuard): Promise<void> {
  const h = net.isIPv6(host) ? `[${host}]` : host
  try {
    await guard.check(`http://${h}:${port}/`)
  } catch (err) {
    if (err instanceof UrlRefusedError) {
      if (err.context.reason === 'unresolvable') throw new RetriableError(`MongoDB host ${host} does not resolve`, undefined, { host }, { cause: err })
      throw new UrlRefusedError(`MongoDB host ${host}:${port} refused: ${err.message}`, { ...err.context, host, port })
    }
    throw err
  }
}
