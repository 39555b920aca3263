/**
 * Test helpers for the player: headless Chromium (Debian's /usr/bin/chromium)
 * through playwright-core, and waiting for conditions.
 *
 * @module
 */
import { type Browser, chromium } from "npm:playwright-core@1.65.1";

/** Chromium flags for the player tests: headless, no GPU, nothing phoning home. */
export const CHROMIUM_ARGS = [
  "--headless=new",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  // The player plays audio as soon as it arrives, as a desktop app would.
  "--autoplay-policy=no-user-gesture-required",
];

/** Launches headless Chromium; close it in `finally`. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: Deno.env.get("WAVRY_CHROMIUM") ?? "/usr/bin/chromium",
    args: CHROMIUM_ARGS,
    // Playwright would otherwise exit the whole process on Ctrl-C, before the demo stops the
    // host, the client and Xvfb; the caller closes the browser in its own cleanup.
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
  });
}

/** Polls `predicate` every 20 ms until it is true, or throws `what` after `timeoutMs`. */
export async function waitFor(
  predicate: () => boolean,
  what: string,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
