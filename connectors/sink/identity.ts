/**
 * A sink worker process's identity: its worker id (WORKER_ID; stable across restarts under systemd
 * or in a Kubernetes StatefulSet) plus an INCARNATION, random per process start. The heartbeat
 * document (`sink_workers`, `_id` = worker id) and every lease carry both (store.ts), so that a process
 * restarted under the same id knows which leases are its predecessor's, and two live processes
 * misconfigured with one id never both deliver.
 *
 *  - At start, before it claims any lease, the process takes its worker id's heartbeat document:
 *    - none (the predecessor stopped gracefully, or none ran): taken;
 *    - its holder is provably gone: the heartbeat expired, or the holder ran on this host, in this pid
 *      namespace, under a pid that no longer exists (kill -9 and an immediate restart): taken at once;
 *    - otherwise the holder may be alive: the process waits, re-reading every heartbeat interval. A
 *      holder that renews its heartbeat is a live process with the same id: start fails with a
 *      ConfigError naming it (nothing is claimed). One that does not is gone once its heartbeat
 *      expires (at most the lease TTL): taken.
 *  - Holding the id, the process takes over every lease held under its id by another incarnation at
 *    once, expired or not (worker.ts #claimShare): that incarnation is gone, and its subscriptions
 *    restart from their cursors.
 *  - A heartbeat that no longer matches (another process took the id after this one failed to renew it
 *    for a lease TTL, e.g. cut off from the store) stops every subscription here; the id is taken back
 *    only once it is free again by the rules above.
 */
import { readFileSync, readlinkSync } from 'node:fs'
import os from 'node:os'
import { ConfigError } from '../../common/errors.ts'
import { sleep } from '../../common/timers.ts'
import type { SinkStore, WorkerDoc, WorkerHost } from './store.ts'

/** Incarnations of sink workers alive in this process (several workers may share a process in tests). */
const liveHere = new Set<string>()

function orNull(read: () => string): string | null {
  try {
    return read().trim()
  } catch {
    return null
  }
}

let host: WorkerHost | undefined

/** This process's host, boot and pid namespace (the last two on Linux only). */
export function currentHost(): WorkerHost {
  host ??= {
    hostname: os.hostname(),
    bootId: orNull(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8')),
    pidNamespace: orNull(() => readlinkSync('/proc/self/ns/pid')),
    pid: process.pid,
  }
  return host
}

/** Why the holder of a heartbeat document is surely gone, or null when it may be alive. */
export function holderGone(doc: WorkerDoc, now: Date, here: WorkerHost = currentHost()): string | null {
  if (doc.expiresAt.getTime() <= now.getTime()) return 'its heartbeat expired'
  if (doc.incarnation !== undefined && liveHere.has(doc.incarnation)) return null
  const h = doc.host
  if (!h || !here.bootId || !here.pidNamespace || h.bootId !== here.bootId || h.pidNamespace !== here.pidNamespace)
    return null
  if (h.pid === here.pid) return "its process id is this process's now"
  try {
    process.kill(h.pid, 0)
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ESRCH') return `its process ${h.pid} no longer exists on this host`
  }
  return null
}

export interface IdentityOptions {
  workerId: string
  incarnation: string
  startedAt: Date
  ttlMs: number
}

function docOf(o: IdentityOptions, now: Date): WorkerDoc {
  return {
    _id: o.workerId,
    incarnation: o.incarnation,
    host: currentHost(),
    startedAt: o.startedAt,
    expiresAt: new Date(now.getTime() + o.ttlMs),
  }
}

/** One attempt, without waiting: the id is taken when it is free or its holder surely gone. */
export async function tryTakeIdentity(
  store: SinkStore,
  o: IdentityOptions,
): Promise<{ taken: boolean; holder: WorkerDoc | null; reason: string | null }> {
  const now = new Date()
  const holder = await store.identity(o.workerId)
  if (holder?.incarnation === o.incarnation) return { taken: true, holder: null, reason: null }
  const reason = holder ? holderGone(holder, now) : 'no process holds it'
  if (reason === null) return { taken: false, holder, reason }
  const taken = await store.claimIdentity(docOf(o, now), holder)
  if (taken) liveHere.add(o.incarnation)
  return { taken, holder, reason }
}

/**
 * Takes the worker id for this incarnation (see the rules above), waiting at most about a lease TTL
 * for a holder that may be alive; throws a ConfigError when another live process holds it. Returns
 * the previous holder (null: none) and why it was taken over.
 */
export async function takeIdentity(
  store: SinkStore,
  o: IdentityOptions & { pollMs: number },
): Promise<{ previous: WorkerDoc | null; reason: string }> {
  let seen: WorkerDoc | null = null
  for (;;) {
    const r = await tryTakeIdentity(store, o)
    if (r.taken) return { previous: r.holder, reason: r.reason ?? '' }
    const holder = r.holder
    if (!holder) continue // taken by another process between the read and the insert: read again
    if (seen && (holder.incarnation !== seen.incarnation || holder.expiresAt.getTime() !== seen.expiresAt.getTime())) {
      const where = holder.host ? ` (host ${holder.host.hostname}, pid ${holder.host.pid})` : ''
      throw new ConfigError(
        `WORKER_ID ${o.workerId} is in use by another live sink worker ` +
          `process${where}: its heartbeat was renewed while this one waited. Give each ` +
          `worker process an id of its own (or leave WORKER_ID empty).`,
        { workerId: o.workerId, holder: holder.incarnation ?? null },
      )
    }
    seen ??= holder
    await sleep(Math.max(50, Math.min(o.pollMs, holder.expiresAt.getTime() - Date.now() + 50)))
  }
}

/** Gives the id up (graceful stop): the next process with this id starts at once. */
export async function releaseIdentity(store: SinkStore, workerId: string, incarnation: string): Promise<void> {
  liveHere.delete(incarnation)
  await store.removeWorker(workerId, incarnation)
}

/** This incarnation no longer holds its id (another process took it). */
export function identityLost(incarnation: string): void {
  liveHere.delete(incarnation)
}
