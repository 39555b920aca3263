/**
 * Checks that a test leaves no process behind: it records the pids of what it
 * started (Xvfb, the xprobe scene, Chromium and its helpers, subprocesses) and
 * asserts, after its `finally`, that every one of them is gone.
 *
 * Test files run in parallel inside one Deno process, so "children of this
 * process" would include other files' servers; pids are therefore found from
 * what identifies this test's own processes: the pid it spawned, the probe's
 * DISPLAY, the browser's own process list.
 *
 * @module
 */
import type { Browser } from "npm:playwright-core@1.65.1";

/** Parent pid and state of `pid`, or undefined when it does not exist. */
function stat(pid: number): { ppid: number; state: string } | undefined {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { state: rest[0], ppid: Number(rest[1]) };
  } catch {
    return undefined;
  }
}

/** Whether `pid` is running (a zombie has exited: it only waits for its parent to reap it). */
export function running(pid: number): boolean {
  const s = stat(pid);
  return s !== undefined && s.state !== "Z";
}

function commandLine(pid: number): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").join(" ").trim();
  } catch {
    return "?";
  }
}

function allPids(): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (/^\d+$/.test(entry.name)) pids.push(Number(entry.name));
  }
  return pids;
}

/** Every descendant of `root` now (children, their children, ...). */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const pid of allPids()) {
    const s = stat(pid);
    if (s === undefined) continue;
    const list = children.get(s.ppid) ?? [];
    list.push(pid);
    children.set(s.ppid, list);
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

/** This process's children running `exe` (basename) with DISPLAY=`display`. */
export function childrenOnDisplay(exe: string, display: string): number[] {
  return descendants(Deno.pid).filter((pid) => {
    try {
      if (!Deno.readLinkSync(`/proc/${pid}/exe`).endsWith(`/${exe}`)) return false;
      const env = Deno.readTextFileSync(`/proc/${pid}/environ`).split("\0");
      return env.includes(`DISPLAY=${display}`);
    } catch {
      return false;
    }
  });
}

/** Chromium's processes (browser, renderers, GPU, zygotes...) as the browser itself lists them. */
export async function browserPids(browser: Browser): Promise<number[]> {
  const cdp = await browser.newBrowserCDPSession();
  try {
    const { processInfo } = await cdp.send("SystemInfo.getProcessInfo") as {
      processInfo: { type: string; id: number }[];
    };
    const main = processInfo.find((p) => p.type === "browser");
    if (main === undefined) throw new Error("Chromium listed no browser process");
    return [...new Set([main.id, ...processInfo.map((p) => p.id), ...descendants(main.id)])];
  } finally {
    await cdp.detach().catch(() => {});
  }
}

/** The pids a test started, by what they are; {@linkcode assertGone} checks them at the end. */
export class ProcessTracker {
  readonly #pids = new Map<number, string>();

  /** Records `pids` under `what` (e.g. "Xvfb :12"). */
  add(what: string, ...pids: number[]): void {
    for (const pid of pids) this.#pids.set(pid, what);
  }

  /** Pids recorded so far. */
  get size(): number {
    return this.#pids.size;
  }

  /**
   * Waits (at most `timeoutMs`; processes take a moment to be reaped) until
   * none of the recorded processes exists, else throws naming the survivors.
   */
  async assertGone(timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = [...this.#pids].filter(([pid]) => running(pid));
      if (left.length === 0) return;
      if (Date.now() > deadline) {
        throw new Error(
          `left running after the test: ${
            left.map(([pid, what]) =>
              `${what} (pid ${pid}, state ${stat(pid)?.state}: ${commandLine(pid).slice(0, 80)})`
            ).join("; ")
          }`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Steps to undo, run last-in first-out; every step runs even when one fails. */
export class Cleanup {
  readonly #steps: { what: string; step: () => Promise<void> | void }[] = [];

  /** Registers `step` (named `what` in errors) to run at {@linkcode run}. */
  defer(what: string, step: () => Promise<void> | void): void {
    this.#steps.push({ what, step });
  }

  /** Runs every step, newest first; throws after all ran if any failed. */
  async run(): Promise<void> {
    const errors: string[] = [];
    for (const { what, step } of this.#steps.splice(0).reverse()) {
      try {
        await step();
      } catch (error) {
        errors.push(`${what}: ${(error as Error).message}`);
      }
    }
    if (errors.length > 0) throw new Error(`cleanup failed: ${errors.join("; ")}`);
  }
}
