import os from 'node:os'
import path from 'node:path'
import { PROJECT_ROOT } from '../common/paths.ts'
import { localControllerPorts, localPartnerPorts, type AppConfig } from '../config/index.ts'

/** Where the project lives: stack/ferretdb (the Go module) and the default .stack/ are under it. */
export { PROJECT_ROOT }

export interface StackSettings {
  /** This checkout's data, logs and pid files. */
  dir: string
  /** Downloads and builds shared by every checkout of this user. */
  cacheDir: string
  /**
   * Kafka nodes (broker+controller each): `brokers` of them, broker ports from `port` on, controller
   * ports from `controllerPort` on, partner (SASL SCRAM) listener ports from `partnerPort` on (resolved: never 0 here).
   */
  kafka: { version: string; brokers: number; port: number; controllerPort: number; partnerPort: number; heap: string }
  mongodb: { port: number }
  readyTimeoutMs: number
  /** Which services this stack manages (the platform skips those configured as external). */
  services: Array<'kafka' | 'mongodb'>
}

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME && env.XDG_CACHE_HOME !== '' ? env.XDG_CACHE_HOME : path.join(os.homedir(), '.cache')
  return path.join(base, 'distributary')
}

/** The folder of the publishers' drop folders (sources.dropRoot), by default drop/ in the stack folder. */
export function sourcesDropRoot(config: AppConfig): string {
  return config.sources.dropRoot !== ''
    ? path.resolve(config.sources.dropRoot)
    : path.join(stackSettings(config).dir, 'drop')
}

export function stackSettings(config: AppConfig): StackSettings {
  const services: StackSettings['services'] = []
  if (config.kafka.brokers === '') services.push('kafka')
  if (config.mongodb.uri === '') services.push('mongodb')
  return {
    dir: path.resolve(config.stack.dir !== '' ? config.stack.dir : path.join(PROJECT_ROOT, '.stack')),
    cacheDir: path.resolve(config.stack.cacheDir !== '' ? config.stack.cacheDir : defaultCacheDir()),
    kafka: {
      ...config.stack.kafka,
      controllerPort: localControllerPorts(config)[0]!,
      partnerPort: localPartnerPorts(config)[0]!,
    },
    mongodb: { ...config.stack.mongodb },
    readyTimeoutMs: config.stack.readyTimeoutMs,
    services,
  }
}
