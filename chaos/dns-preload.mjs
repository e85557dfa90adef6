/**
 * Fault injection at the resolver, for `npm run chaos` only: a module the runner preloads into the
 * platform processes it starts (NODE_OPTIONS=--import <this file>). It answers dns.lookup (callback
 * and promise forms, which the URL guard and therefore every partner connection resolve through) for
 * the host names listed in CHAOS_DNS_NAMES from the hosts file CHAOS_HOSTS_FILE ("<address> <name>"
 * lines, read at every lookup). A listed name without a line in the file fails as NXDOMAIN would
 * (ENOTFOUND); every other name goes to the real resolver untouched. The runner removes a name's line
 * to make a partner's DNS name stop resolving, and writes it back to end the fault.
 *
 * Plain JavaScript: the platform processes run the built bundle with plain node, no TypeScript loader.
 */
import dns from 'node:dns'
import fs from 'node:fs'

const file = process.env.CHAOS_HOSTS_FILE ?? ''
const names = new Set(
  (process.env.CHAOS_DNS_NAMES ?? '')
    .split(',')
    .map((n) => n.trim().toLowerCase())
    .filter((n) => n !== ''),
)

/** The addresses the hosts file gives `name` now (empty: it does not resolve). */
function fromHostsFile(name) {
  let text
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch {
    return [] // no file: nothing resolves
  }
  const out = []
  for (const line of text.split('\n')) {
    const [address, ...hosts] = line.replace(/#.*/, '').trim().split(/\s+/)
    if (address && hosts.some((h) => h.toLowerCase() === name))
      out.push({ address, family: address.includes(':') ? 6 : 4 })
  }
  return out
}

function notFound(hostname) {
  const err = new Error(`getaddrinfo ENOTFOUND ${hostname} (chaos: removed from ${file})`)
  err.code = 'ENOTFOUND'
  err.errno = -3008
  err.syscall = 'getaddrinfo'
  err.hostname = hostname
  return err
}

/** The answer dns.lookup would give for `options` (family, all), or an ENOTFOUND error. */
function answer(hostname, options) {
  const opts = typeof options === 'number' ? { family: options } : (options ?? {})
  const family = opts.family === 'IPv4' ? 4 : opts.family === 'IPv6' ? 6 : opts.family
  const found = fromHostsFile(hostname.toLowerCase()).filter(
    (a) => !(family === 4 || family === 6) || a.family === family,
  )
  if (found.length === 0) return { error: notFound(hostname) }
  return { all: opts.all === true, found }
}

if (file !== '' && names.size > 0) {
  const realLookup = dns.lookup
  const realPromiseLookup = dns.promises.lookup
  dns.lookup = function lookup(hostname, options, callback) {
    const cb = typeof options === 'function' ? options : callback
    if (typeof hostname !== 'string' || !names.has(hostname.toLowerCase())) return realLookup.apply(this, arguments)
    const a = answer(hostname, typeof options === 'function' ? undefined : options)
    process.nextTick(() => {
      if (a.error) cb(a.error)
      else if (a.all) cb(null, a.found)
      else cb(null, a.found[0].address, a.found[0].family)
    })
    return {}
  }
  dns.promises.lookup = async function lookup(hostname, options) {
    if (typeof hostname !== 'string' || !names.has(hostname.toLowerCase()))
      return realPromiseLookup.call(this, hostname, options)
    const a = answer(hostname, options)
    if (a.error) throw a.error
    return a.all ? a.found : a.found[0]
  }
}
