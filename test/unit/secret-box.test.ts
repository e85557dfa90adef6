import { expect } from 'chai'
import { ConfigError, SecretUnreadableError } from '../../common/errors.ts'
import { createSecretBox, generateKeyRingEntry, generateWebhookSecret, parseKeyRing } from '../../common/secret-box.ts'

describe('secret box (AES-256-GCM key ring)', () => {
  const k1 = generateKeyRingEntry('k1')
  const k2 = generateKeyRingEntry('k2')

  it('seals so that only the ring opens it, with a fresh IV each time', () => {
    const box = createSecretBox(parseKeyRing(k1))
    const a = box.seal('whsec_abc')
    const b = box.seal('whsec_abc')
    expect(a).to.not.equal(b)
    expect(a).to.not.include('whsec_abc')
    expect(a.startsWith('enc:v1:k1:')).to.equal(true)
    expect(box.open(a)).to.equal('whsec_abc')
  })

  it('rotates: the new current key seals, the old one still opens, reseal moves values', () => {
    const old = createSecretBox(parseKeyRing(k1))
    const sealed = old.seal('s3cret')
    const ring = createSecretBox(parseKeyRing(`${k2},${k1}`))
    expect(ring.currentKeyId).to.equal('k2')
    expect(ring.open(sealed)).to.equal('s3cret')
    const moved = ring.reseal(sealed)
    expect(ring.keyIdOf(moved)).to.equal('k2')
    expect(ring.reseal(moved)).to.equal(moved)
    expect(createSecretBox(parseKeyRing(k2)).open(moved)).to.equal('s3cret')
    expect(() => createSecretBox(parseKeyRing(k2)).open(sealed)).to.throw(
      SecretUnreadableError,
      /k1.*not in the key ring/,
    )
    expect(createSecretBox(parseKeyRing(`${k2},${k1}`, 'k1')).currentKeyId).to.equal('k1')
  })

  it('detects tampering', () => {
    const box = createSecretBox(parseKeyRing(k1))
    const parts = box.seal('value').split(':')
    const ct = Buffer.from(parts[5]!, 'base64url')
    ct[0] = ct[0]! ^ 1
    parts[5] = ct.toString('base64url')
    expect(() => box.open(parts.join(':'))).to.throw(SecretUnreadableError, /authentication/)
  })

  it('refuses a malformed ring naming the setting', () => {
    expect(() => parseKeyRing('')).to.throw(ConfigError, /SECRETS_ENCRYPTION_KEYS/)
    expect(() => parseKeyRing('k1:' + Buffer.alloc(16).toString('base64'))).to.throw(ConfigError, /16 bytes/)
    expect(() => parseKeyRing(`${k1},${k1}`)).to.throw(ConfigError, /twice/)
    expect(() => parseKeyRing(k1, 'k9')).to.throw(ConfigError, /SECRETS_CURRENT_KEY_ID/)
  })

  it('makes Standard Webhooks secrets: whsec_ and base64 of at least 24 bytes', () => {
    const s = generateWebhookSecret()
    expect(s).to.match(/^whsec_/)
    expect(Buffer.from(s.slice(6), 'base64').length).to.be.at.least(24)
    expect(generateWebhookSecret()).to.not.equal(s)
  })
})
