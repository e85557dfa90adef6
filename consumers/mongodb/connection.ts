/**
 * A partner's MongoDB connection string (sinks), or a publisher's (MongoDB sources): parsed by the
 * driver (so we accept exactly what it accepts), described without its credentials, and checked by
 * the SSRF guard.
 *
 * Why the URL guard applies to MongoDB too: the connection string is typed by a partner or a
 * publisher and the worker connects from inside our network. Without the guard,
 * `mongodb://127.0.0.1:27017/` with the control plane's database name would let a partner write into
 * our own store (API keys, grants), and any private address could be probed. So every host the
 * driver connects to (a seed, every target of a mongodb+srv SRV record, every server a replica set
 * names) must pass the same guard as webhook URLs (loopback, private, link-local and metadata
 * addresses refused unless allowlisted; tests allowlist 127.0.0.1). Unix domain sockets are refused.
 *
 * When the string is saved, `guardConnection` resolves every host (and the SRV record) and answers a
 * 422 naming the field. When the worker connects, `guardedMongoClient` pins the driver to the guard:
 * the driver's sockets resolve host names through the guard's `lookup` (every connection, also
 * reconnects and servers discovered later), so they only connect to addresses the guard approved at
 * that moment; an IP-address host (net never calls `lookup` for one) is checked before the client
 * exists (seeds) or when the driver opens it (servers a replica set names).
 */
import dns from 'node:dns/promises'
import net from 'node:net'
import { MongoClient, type MongoClientOptions, type ServerOpeningEvent } from 'mongodb'
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

/**
 * Parses with the driver (no connection). A string the driver refuses is a ConfigError naming
 * `field` that never quotes it.
 */
export function parseConnectionString(
  connectionString: string,
  options: MongoClientOptions = {},
  field = 'sink.connectionString',
): ParsedConnection {
  if (typeof connectionString !== 'string' || !/^mongodb(\+srv)?:\/\//.test(connectionString)) {
    throw new ConfigError(`${field} must start with mongodb:// or mongodb+srv://`, { field })
  }
  let client: MongoClient
  try {
    client = new MongoClient(connectionString, options)
  } catch (err) {
    const reason = scrub(err instanceof Error ? err.message : String(err), connectionSecrets(connectionString))
    throw new ConfigError(`${field} is not a valid MongoDB connection string: ${reason}`, { field })
  }
  const o = client.options
  // a SOCKS5 proxy would connect on our behalf to a destination it resolves itself, past the guard
  if (o.proxyHost)
    throw new ConfigError(
      `${field} must not name a proxy (proxyHost): the worker connects to the MongoDB hosts directly`,
      { field },
    )
  const hosts: ParsedConnection['hosts'] = []
  for (const h of o.hosts) {
    if (h.socketPath) throw new ConfigError(`${field} must not name a Unix domain socket`, { field })
    hosts.push({ host: h.host ?? '', port: h.port ?? 27017 })
  }
  const srvHost = o.srvHost ?? null
  const display = srvHost
    ? `mongodb+srv://${srvHost}`
    : `mongodb://${hosts.map((h) => `${net.isIPv6(h.host) ? `[${h.host}]` : h.host}:${h.port}`).join(',')}`
  return { hosts, srvHost, display, hasCredentials: o.credentials !== undefined }
}

export type SrvResolver = (name: string) => Promise<Array<{ name: string; port: number }>>

/**
 * Save time: runs the URL guard over every host the connection string makes the driver connect to.
 * A refused host is a UrlRefusedError naming it (never the credentials); a name (or SRV record) that
 * does not resolve now is a RetriableError (DNS may be down, the record may not exist yet): the
 * callers accept the string, the worker's connection is guarded again (guardedMongoClient).
 */
export async function guardConnection(
  parsed: ParsedConnection,
  guard: UrlGuard,
  resolveSrv: SrvResolver = (n) => dns.resolveSrv(n),
): Promise<void> {
  let targets = parsed.hosts
  if (parsed.srvHost) {
    try {
      targets = (await resolveSrv(`_mongodb._tcp.${parsed.srvHost}`)).map((r) => ({ host: r.name, port: r.port }))
    } catch (err) {
      throw new RetriableError(
        `SRV record of ${parsed.srvHost} does not resolve: ${(err as Error).message}`,
        undefined,
        { host: parsed.srvHost },
        { cause: err },
      )
    }
  }
  for (const t of targets) await guardHost(t.host, t.port, guard)
}

/** One host:port through the URL guard, resolving a host name now (save time). */
export async function guardHost(host: string, port: number, guard: UrlGuard): Promise<void> {
  try {
    await guard.resolve(host)
  } catch (err) {
    throw mongoRefusal(err, host, port)
  }
}

/** A UrlRefusedError of the guard as a MongoDB host refusal naming host:port; anything else as is. */
function mongoRefusal(err: unknown, host: string, port?: number): unknown {
  if (!(err instanceof UrlRefusedError)) return err
  const at = port === undefined ? host : `${host}:${port}`
  return new UrlRefusedError(
    `MongoDB host ${at} refused: ${err.message}`,
    { ...err.context, host, ...(port === undefined ? {} : { port }) },
    { cause: err },
  )
}

/** A MongoClient whose every connection is guarded (see the top of this file). */
export interface GuardedMongoClient {
  client: MongoClient
  connection: ParsedConnection
  /** The guard's first refusal of a host the driver was about to connect to, or null. */
  refusal(): UrlRefusedError | null
}

/**
 * A MongoClient pinned to the URL guard: its sockets resolve through `guard.lookup`, IP-address
 * seeds are checked now (UrlRefusedError thrown) and IP-address servers the deployment names later
 * when the driver opens them. On the first refusal the client is closed and `onRefused` is told; the
 * refused address is never connected to (a host name), or at most by the monitor's first attempt
 * racing the close (an IP address a replica set names: the driver offers no hook before it).
 */
export function guardedMongoClient(
  connectionString: string,
  options: MongoClientOptions,
  guard: UrlGuard,
  onRefused: (err: UrlRefusedError) => void = () => undefined,
  field = 'sink.connectionString',
): GuardedMongoClient {
  const connection = parseConnectionString(connectionString, options, field)
  for (const h of connection.hosts) {
    try {
      guard.checkHost(h.host)
    } catch (err) {
      throw mongoRefusal(err, h.host, h.port)
    }
  }
  let refusal: UrlRefusedError | null = null
  const refuse = (err: unknown, host: string, port?: number) => {
    const e = mongoRefusal(err, host, port)
    if (refusal || !(e instanceof UrlRefusedError)) return
    refusal = e
    onRefused(e)
    void client.close().catch(() => undefined)
  }
  const lookup: net.LookupFunction = (hostname, opts, callback) =>
    guard.lookup(hostname, opts, (err, address, family) => {
      if (err) refuse(err, hostname)
      callback(err, address, family)
    })
  const client = new MongoClient(connectionString, { ...options, lookup })
  client.on('serverOpening', (ev: ServerOpeningEvent) => {
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(ev.address)
    if (!m) return
    try {
      guard.checkHost(m[1]!)
    } catch (err) {
      refuse(err, m[1]!, Number(m[2]))
    }
  })
  return { client, connection, refusal: () => refusal }
}
