// Masking of run parameters before they are shown: the console never displays a value that
// looks like a secret, even to an operator (screens are shared and screenshotted).

export const MASK = "••••";

const SECRET_KEY = /secret|password|passwd|token|api[_-]?key|private[_-]?key/i;

/** True for a `{"$secret": ...}` reference object. */
export function isSecretReference(value: unknown): boolean {
  return typeof value === "object" && value !== null && !Array.isArray(value) && "$secret" in value;
}

/** True when a parameter name says its value is a secret. */
export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

/**
 * A copy of `value` with secrets replaced by the mask: `{"$secret": ...}` objects anywhere, and
 * every value under a key naming a secret (whatever its type).
 */
export function maskSecrets(value: unknown): unknown {
  if (isSecretReference(value)) return MASK;
  if (Array.isArray(value)) return value.map((item) => maskSecrets(item));
  if (typeof value === "object" && value !== null) {
    const masked: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) {
      masked[key] = isSecretKey(key) && inner !== null && inner !== undefined ? MASK : maskSecrets(inner);
    }
    return masked;
  }
  return value;
}
