/**
 * A child process whose stdout is read line by line, started and always
 * stopped by its owner (the demo, a test, a bench), so no server is ever left
 * running.
 *
 * @module
 */

/** A running child process whose stdout is read as lines. */
export class LineProcess {
  readonly #child: Deno.ChildProcess;
  readonly #lines: string[] = [];
  readonly #waiters: (() => void)[] = [];
  #ended = false;
  readonly #stderr: Promise<string>;
  #stopping: Promise<void> | undefined;
  readonly name: string;

  /** Starts `command` with `args` and `env` added to this process's environment. */
  constructor(name: string, command: string, args: string[], env: Record<string, string> = {}) {
    this.name = name;
    this.#child = new Deno.Command(command, {
      args,
      env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stderr = new Response(this.#child.stderr).text().catch(() => "");
    this.#pump();
  }

  async #pump(): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of this.#child.stdout) {
        buffer += decoder.decode(chunk, { stream: true });
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          this.#lines.push(buffer.slice(0, newline));
          buffer = buffer.slice(newline + 1);
          this.#wake();
        }
      }
    } catch {
      // The process went away; #ended below wakes the waiters.
    }
    this.#ended = true;
    this.#wake();
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  /** The child's process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Every line read so far. */
  get lines(): readonly string[] {
    return this.#lines;
  }

  /** Waits until a line matches `predicate`, or fails after `timeoutMs` with what was seen. */
  async waitForLine(predicate: (line: string) => boolean, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let checked = 0;
    for (;;) {
      for (; checked < this.#lines.length; checked++) {
        if (predicate(this.#lines[checked])) return this.#lines[checked];
      }
      if (this.#ended) {
        throw new Error(
          `${this.name} exited before the expected line; stderr: ${await this.#stderr}`,
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `${this.name}: no expected line within ${timeoutMs} ms; got ${this.#lines.length} lines`,
        );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        timer = setTimeout(resolve, Math.min(left, 200));
      });
      clearTimeout(timer);
    }
  }

  /** Stops the process (SIGTERM, then SIGKILL) and waits for it. Calling it again waits for the same stop. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    try {
      this.#child.kill("SIGTERM");
    } catch { /* already gone */ }
    const killer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* already gone */ }
    }, 3_000);
    await this.#child.status;
    clearTimeout(killer);
    // stdin closes after exit: closing a pipe the child is not reading could wait for ever.
    await this.#child.stdin.abort().catch(() => {});
    await this.#stderr;
  }
}
