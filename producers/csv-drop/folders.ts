/**
 * Confinement of the csv-drop folders. Every publisher has one drop folder, `<drop root>/<publisher id>`
 * (SOURCES_DROP_ROOT, by default drop/ in the stack folder), and a csv-drop source's `dir`, `stateDir`
 * and `processedDir` are folders inside its publisher's: paths relative to it (`stock`, `wms/in`), or
 * absolute paths that lie inside it. Refused: NUL bytes, `..` segments, absolute paths elsewhere (another
 * publisher's folder included), and symbolic links that lead out (resolved with fs.realpath when the
 * source is declared, as far as the folders exist on that host, then when it starts and on every scan).
 * Files are opened without following a symbolic link (O_NOFOLLOW), so a link to a file elsewhere is
 * neither read nor written through.
 */
import fs from 'node:fs'
import path from 'node:path'
import { ConfigError } from '../../common/errors.ts'
import type { SettingFault } from '../../connectors/source/config.ts'

/** The settings naming folders, all confined to the publisher's drop folder. */
export const FOLDER_SETTINGS = ['dir', 'stateDir', 'processedDir'] as const

const PUBLISHER_ID = /^[A-Za-z0-9_-]{1,64}$/

/** The drop folder of a publisher: `<dropRoot>/<publisherId>`. */
export function publisherDropFolder(dropRoot: string, publisherId: string): string {
  if (!PUBLISHER_ID.test(publisherId))
    throw new ConfigError(`csv-drop: publisher id ${JSON.stringify(publisherId)} cannot name a drop folder`, {
      publisherId,
    })
  return path.join(path.resolve(dropRoot), publisherId)
}

/** Whether `p` is `base` or lies below it (both absolute and normalized). */
export function isInside(base: string, p: string): boolean {
  const rel = path.relative(base, p)
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel))
}

/** What is wrong with a folder setting by its text alone (any host), or undefined. */
export function folderTextFault(value: string): string | undefined {
  if (value.includes('\0')) return 'must not contain NUL bytes'
  if (value.split(/[\\/]/).includes('..'))
    return "must not contain '..': a folder inside the publisher's drop folder, relative to it (e.g. stock)"
  return undefined
}

const OUTSIDE =
  "must be a folder inside the publisher's drop folder " +
  '(<SOURCES_DROP_ROOT>/<publisherId>/): a path relative to it (e.g. stock), or ' +
  'an absolute path inside it'
const LINK_OUT = "leads out of the publisher's drop folder through a symbolic link"

/**
 * The real path of the folder `p`: the real path of its deepest existing ancestor, then its missing
 * components, each created below a real parent when `create` (else joined as they are). A dangling
 * symbolic link on the way is an error (ENOENT). With `within`, nothing is created unless its real
 * parent lies inside that (real) folder: the path as far as it is resolved is returned instead.
 */
export function realFolder(p: string, create: boolean, within?: string): string {
  const missing: string[] = []
  let at = path.resolve(p)
  for (;;) {
    try {
      fs.lstatSync(at)
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || path.dirname(at) === at) throw err
      missing.unshift(path.basename(at))
      at = path.dirname(at)
    }
  }
  let real = fs.realpathSync(at)
  for (const part of missing) {
    if (create && within !== undefined && !isInside(within, real)) return real
    real = path.join(real, part)
    if (!create) continue
    try {
      fs.mkdirSync(real)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    real = fs.realpathSync(real) // made by someone else meanwhile: maybe a link
  }
  return real
}

/**
 * Faults of the folder settings of a csv-drop config for its publisher's drop folder `folder`:
 * outside it by name, or (as far as the folders exist here) by real path. Nothing is created.
 */
export function folderFaults(folder: string, config: Record<string, unknown>): SettingFault[] {
  const faults: SettingFault[] = []
  let realRoot: string | undefined
  for (const key of FOLDER_SETTINGS) {
    const v = config[key]
    if (typeof v !== 'string' || v === '' || folderTextFault(v) !== undefined) continue
    const p = path.resolve(folder, v)
    if (!isInside(folder, p)) {
      faults.push({ field: key, message: OUTSIDE })
      continue
    }
    try {
      realRoot ??= realFolder(folder, false)
      if (!isInside(realRoot, realFolder(p, false))) faults.push({ field: key, message: LINK_OUT })
    } catch {
      faults.push({ field: key, message: `${LINK_OUT} (it cannot be resolved)` })
    }
  }
  return faults
}

/**
 * The real paths of a source's folders, created when missing (the publisher's drop folder too),
 * or a ConfigError naming the first folder that lies outside the publisher's drop folder `root`.
 */
export function confineFolders(
  root: string,
  folders: Record<(typeof FOLDER_SETTINGS)[number], string>,
): Record<(typeof FOLDER_SETTINGS)[number], string> {
  fs.mkdirSync(root, { recursive: true })
  const realRoot = fs.realpathSync(root)
  const out = { ...folders }
  for (const key of FOLDER_SETTINGS) {
    const fail = (message: string) => new ConfigError(`csv-drop: config.${key} ${message}`, { field: `config.${key}` })
    if (!isInside(root, path.resolve(folders[key]))) throw fail(OUTSIDE)
    let real: string
    try {
      real = realFolder(folders[key], true, realRoot)
    } catch (err) {
      throw fail(`cannot be used (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
    }
    if (!isInside(realRoot, real)) throw fail(LINK_OUT)
    if (!fs.statSync(real).isDirectory()) throw fail('is not a folder')
    out[key] = real
  }
  return out
}

/**
 * Opens a file without following a symbolic link in its last component (ELOOP then), nor blocking on
 * a FIFO. `confined`: the file's folder is a real path that must still hold it once open (where
 * /proc/self/fd tells, as on Linux), so a folder swapped for a link between the scan's check and the
 * open is caught before a byte is read or written ('w' truncates only then).
 */
export function openNoFollow(p: string, flags: 'r' | 'w' | 'a', confined = false): number {
  const c = fs.constants
  const mode =
    flags === 'r'
      ? c.O_RDONLY | c.O_NONBLOCK
      : flags === 'w'
        ? c.O_WRONLY | c.O_CREAT
        : c.O_WRONLY | c.O_CREAT | c.O_APPEND
  const fd = fs.openSync(p, mode | (c.O_NOFOLLOW ?? 0), 0o644)
  if (confined) {
    let where: string | undefined
    try {
      where = fs.readlinkSync(`/proc/self/fd/${fd}`)
    } catch {
      where = undefined // no /proc: the folder checks of the scan stand alone
    }
    if (where !== undefined && path.dirname(where) !== path.dirname(p)) {
      fs.closeSync(fd)
      throw new ConfigError(
        `csv-drop: ${path.basename(p)} was reached through a folder that now leads elsewhere (a symbolic link)`,
        { file: path.basename(p) },
      )
    }
  }
  if (flags === 'w') fs.ftruncateSync(fd, 0)
  return fd
}
