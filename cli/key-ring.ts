/**
 * The secrets key ring of the platform's processes: secrets.encryptionKeys, or with the local stack a
 * key file in the stack folder (created on first use). Every process of one installation gets the same
 * ring: it seals secrets at rest, and the built-in registry's internal credentials derive from it.
 */
import fs from 'node:fs'
import path from 'node:path'
import type { Logger } from '../common/logger.ts'
import { generateKeyRingEntry } from '../common/secret-box.ts'
import { ConfigError } from '../common/errors.ts'
import { usesLocalMongo, type AppConfig } from '../config/index.ts'
export function encryptionKeys(config: AppConfig, stackDir: string, logger: Logger): string {
  if (config.secrets.encryptionKeys !== '') return config.secrets.encryptionKeys
  if (!usesLocalMongo(config)) {
    throw new ConfigError(
      'invalid configuration: secrets.encryptionKeys (env SECRETS_ENCRYPTION_KEYS) ' +
        'is required with an external MongoDB: e.g. ' +
        'SECRETS_ENCRYPTION_KEYS=k1:$(openssl rand -base64 32)',
      { key: 'secrets.encryptionKeys' },
    )
  }
  const file = path.join(stackDir, 'secrets.key')
  if (!fs.existsSync(file)) {
    fs.mkdirSync(stackDir, { recursive: true })
    fs.writeFileSync(file, generateKeyRingEntry('local1') + '\n', { mode: 0o600, flag: 'wx' })
    logger.warn('no SECRETS_ENCRYPTION_KEYS configured: created a local key file for the local stack', { file })
  }
  return fs.readFileSync(file, 'utf8').trim()
}
