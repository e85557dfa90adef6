import type { StackSettings } from './settings.ts'

export type ServiceName = 'kafka' | 'mongodb'
/**
 * One server process of the stack: a service's only server has the service's name (its pid file is
 * <name>.pid, its folder <name>/); the nodes of a local Kafka cluster are kafka-1, kafka-2, kafka-3.
 */
export type ServerName = ServiceName | `kafka-${number}`

/** One server of the local stack: how to install and start it, and how to ask it whether it serves. */
export interface ServiceDefinition {
  name: ServerName
  /** The service it is (or is a node of). */
  service: ServiceName
  port(s: StackSettings): number
  address(s: StackSettings): string
  /** A string in the process's command line that proves the pid is this checkout's server. */
  marker(s: StackSettings): string
  /**
   * Installs (cached) and writes configuration; returns the command that runs the server (and its environment, when not
   * this process's).
   */
  prepare(
    s: StackSettings,
    report: (msg: string) => void,
  ): Promise<{ command: string; args: string[]; cwd: string; env?: NodeJS.ProcessEnv }>
  /** A real request: Kafka metadata, MongoDB ping. */
  probe(s: StackSettings, timeoutMs: number): Promise<boolean>
  stopGraceMs: number
}

/**
 * running: ours, alive and answering; starting: ours and alive but not answering (yet);
 * crashed: the pid file names a process that is gone; stopped: never started or stopped cleanly;
 * foreign: something that is not ours answers on the port.
 */
export type ServiceState = 'running' | 'starting' | 'crashed' | 'stopped' | 'foreign'

export interface ServiceStatus {
  name: ServerName
  state: ServiceState
  address: string
  pid?: number
  log: string
}
