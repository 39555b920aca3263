/**
 * A child process its owner drives itself (the demo's gateway and relay, a
 * test's host): its pid, its stdout and stderr as lines, and
 * `kill(signal)` for tests that make a program disappear (SIGKILL) rather
 * than stop it politely. `finish()` always reaps it and drains its pipes.
 *
 * @module
 */
import { Waiters } from "./waiters.ts";

/** A running child whose stdout and stderr are collected as lines. */
export class Subprocess {
  readonly #child: Deno.ChildProcess;
  readonly #stdout: string[] = [];
  readonly #stderr: string[] = [];
  readonly #waiters = new Waiters();
  #exit: Deno.CommandStatus | undefined;
  /** Resolves with the exit status once the child has exited and its output is read. */
  readonly status: Promise<Deno.CommandStatus>;
  /** What the test calls it in messages. */
  readonly name: string;

  /** Starts `command` with `args` (stdin closed), `env` added to this process's environment. */
  constructor(
    name: string,
    command: string,
    args: string[],
    options: { cwd?: string; env?: Record<string, string> } = {},
  ) {
    this.name = name;
    const child = new Deno.Command(command, {
      args,
      cwd: options.cwd,
      env: options.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    const pumps = Promise.all([
      this.#pump(child.stdout, this.#stdout),
      this.#pump(child.stderr, this.#stderr),
    ]);
    this.status = (async () => {
      const status = await child.status;
      await pumps;
      this.#exit = status;
      this.#waiters.notify();
      return status;
    })();
  }

  async #pump(stream: ReadableStream<Uint8Array>, into: string[]): Promise<void> {
    let buffer = "";
    try {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        buffer += chunk;
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          into.push(buffer.slice(0, newline));
          buffer = buffer.slice(newline + 1);
          this.#waiters.notify();
        }
      }
    } catch {
      // The pipe broke: the process is gone.
    }
    if (buffer !== "") into.push(buffer);
    this.#waiters.notify();
  }

  /** The process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Lines written to stdout so far. */
  get stdout(): readonly string[] {
    return this.#stdout;
  }

  /** Lines written to stderr so far. */
  get stderr(): readonly string[] {
    return this.#stderr;
  }

  /** Waits for a stdout line matching `predicate`; throws (with stderr) on exit or after `timeoutMs`. */
  waitForLine(predicate: (line: string) => boolean, timeoutMs: number): Promise<string> {
    return this.#waiters.wait(
      () => {
        const line = this.#stdout.find(predicate);
        if (line !== undefined || this.#exit === undefined) return line;
        throw new Error(
          `${this.name} exited (code ${this.#exit.code}) before the expected line; stderr: ${
            this.#stderr.join(" | ")
          }`,
        );
      },
      timeoutMs,
      () => {
        throw new Error(
          `${this.name}: no expected line within ${timeoutMs} ms; stdout: ${
            this.#stdout.join(" | ")
          }; stderr: ${this.#stderr.join(" | ")}`,
        );
      },
    );
  }

  /** Sends `signal` if the process still runs. */
  kill(signal: Deno.Signal): void {
    if (this.#exit !== undefined) return;
    try {
      this.#child.kill(signal);
    } catch {
      // Already exited.
    }
  }

  /**
   * Waits up to `timeoutMs` for the process to exit on its own, then kills it
   * (SIGKILL) and reaps it; returns the status and whether it had to be killed.
   */
  async finish(timeoutMs: number): Promise<{ status: Deno.CommandStatus; killed: boolean }> {
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      this.kill("SIGKILL");
    }, timeoutMs);
    try {
      return { status: await this.status, killed };
    } finally {
      clearTimeout(timer);
    }
  }
}
