/**
 * What Linux says of another process (/proc): its resident memory and its CPU time, to report a child process's cost
 * beside a benchmark's goal figure. 0 elsewhere (no /proc) or once the process is gone.
 */
import { readFileSync } from 'node:fs'

/** USER_HZ of /proc/<pid>/stat (100 on Linux). */
const CLOCK_TICKS = 100

/** Resident memory of a process, in MB. */
export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) / 1024 : 0
  } catch {
    return 0
  }
}

/**
 * CPU time of a process (user + system), in ms. The machine is shared: a wall-clock rate swings with what else runs,
 * a process's CPU per unit of work much less.
 */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS
  } catch {
    return 0
  }
}
