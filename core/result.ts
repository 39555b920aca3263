/**
 * Errors as values: the `Result` type shared by every sans-IO module in
 * `core/` and `crypto/`.
 *
 * @module
 */

/** Either a value (`ok: true`) or an error (`ok: false`). */
export type Result<T, E> = { ok: true; value: T } | { ok: false; error: E };

/** Wraps `value` as a successful {@linkcode Result}. */
export function ok<T>(value: T): { ok: true; value: T } {
  return { ok: true, value };
}

/** Wraps `error` as a failed {@linkcode Result}. */
export function err<E>(error: E): { ok: false; error: E } {
  return { ok: false, error };
}
