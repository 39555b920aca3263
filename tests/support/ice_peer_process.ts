/**
 * Drives a `tests/support/ice_peer.ts` child (in a network namespace or
 * not) over JSON lines: send commands, wait for events. Killed and reaped on
 * `close()` / `await using`, also when the test fails.
 *
 * @module
 */
import { Waiters } from "../../tools/process/waiters.ts";

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
  readonly #waiters = new Waiters();
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
        this.#waiters.notify();
      }
    } catch {
      // the child went away
    }
    this.#ended = true;
    this.#waiters.notify();
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
  next(pred: (e: PeerEvent) => boolean, timeoutMs: number): Promise<PeerEvent> {
    const fail = (): never => {
      throw new Error(
        `${this.name}: no matching event within ${timeoutMs} ms; events ${
          JSON.stringify(this.events)
        }; stderr ${this.stderr.join("").slice(-2000)}`,
      );
    };
    return this.#waiters.wait(
      () => {
        const e = this.events.find(pred);
        return e !== undefined || !this.#ended ? e : fail();
      },
      timeoutMs,
      fail,
    );
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
