/**
 * Drives a `tests/support/ice_peer.ts` child (in a network namespace or
 * not) over JSON lines: send commands, wait for events. Killed and reaped on
 * `close()` / `await using`, also when the test fails.
 *
 * @module
 */

const PEER = new URL("./ice_peer.ts", import.meta.url).pathname;
const ROOT = new URL("../../", import.meta.url).pathname;

/** One JSON event line of the peer. */
// deno-lint-ignore no-explicit-any
export type PeerEvent = { ev: string; [key: string]: any };

/** An ICE peer process. */
export class IcePeerProcess {
  readonly name: string;
  readonly events: PeerEvent[] = [];
  readonly stderr: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #waiters = new Set<() => void>();
  readonly #pumped: Promise<void>;
  #ended = false;
  #closing: Promise<void> | undefined;

  /**
   * Starts the peer; `ns` runs it inside that network namespace (`ip netns
   * exec`, root), `args` are ice_peer.ts's flags.
   */
  constructor(name: string, args: string[], ns?: string) {
    this.name = name;
    const deno = [Deno.execPath(), "run", "-A", PEER, ...args];
    const [cmd, ...rest] = ns ? ["ip", "netns", "exec", ns, ...deno] : deno;
    this.#child = new Deno.Command(cmd, {
      args: rest,
      cwd: ROOT,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#pumped = Promise.all([this.#pump(), this.#pumpErr()]).then(() => {});
  }

  async #pump(): Promise<void> {
    let buffer = "";
    try {
      for await (const chunk of this.#child.stdout.pipeThrough(new TextDecoderStream())) {
        buffer += chunk;
        let nl;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          try {
            this.events.push(JSON.parse(line));
          } catch {
            this.events.push({ ev: "unparsable", line });
          }
        }
        for (const w of [...this.#waiters]) w();
      }
    } catch {
      // the child went away
    }
    this.#ended = true;
    for (const w of [...this.#waiters]) w();
  }

  async #pumpErr(): Promise<void> {
    try {
      for await (const chunk of this.#child.stderr.pipeThrough(new TextDecoderStream())) {
        this.stderr.push(chunk);
      }
    } catch {
      // gone
    }
  }

  /** Sends one command line. */
  async send(command: unknown): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(command) + "\n"));
  }

  /** The first event (from index `from`) matching `pred`, within `timeoutMs`; throws otherwise. */
  async next(pred: (e: PeerEvent) => boolean, timeoutMs: number): Promise<PeerEvent> {
    const find = () => this.events.find(pred);
    const found = find();
    if (found) return found;
    const { promise, resolve } = Promise.withResolvers<PeerEvent | undefined>();
    const check = () => {
      const e = find();
      if (e) resolve(e);
      else if (this.#ended) resolve(undefined);
    };
    this.#waiters.add(check);
    const timer = setTimeout(() => resolve(undefined), timeoutMs);
    try {
      const e = await promise;
      if (!e) {
        throw new Error(
          `${this.name}: no matching event within ${timeoutMs} ms; events ${
            JSON.stringify(this.events)
          }; stderr ${this.stderr.join("").slice(-2000)}`,
        );
      }
      return e;
    } finally {
      clearTimeout(timer);
      this.#waiters.delete(check);
    }
  }

  /** Closes stdin (the peer exits), kills it if it lingers, reaps it. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        await this.#writer.close();
      } catch {
        // already closed
      }
      const timer = setTimeout(() => {
        try {
          this.#child.kill("SIGKILL");
        } catch {
          // gone
        }
      }, 3000);
      await this.#child.status;
      clearTimeout(timer);
      await this.#pumped;
    })();
    return this.#closing;
  }

  /** Same as {@linkcode close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
