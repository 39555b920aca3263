/**
 * Command-line options shared by the benches.
 *
 * @module
 */

/** The number after `--name` on the command line, or `fallback` when the option is absent. */
export function numberFlag(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Number(Deno.args[i + 1]) : fallback;
}
