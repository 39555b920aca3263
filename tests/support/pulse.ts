/**
 * A private PulseAudio server for a test, with a null sink whose monitor can
 * be recorded: what is played to the sink comes back from `<sink>.monitor`.
 *
 * @module
 */
import { LineProcess } from "../../tools/process/line_process.ts";

/** A running PulseAudio server. */
export interface PulseServer {
  /** Server string for clients, e.g. "unix:/tmp/x/native". */
  readonly server: string;
  /** The null sink's name. */
  readonly sink: string;
  /** The sink's monitor source (records what is played to the sink). */
  readonly monitor: string;
  /** Stops the server and removes its files. */
  stop(): Promise<void>;
}

/** Starts `pulseaudio` with a null sink on a private socket. */
export async function startPulse(sink = "wavry_null"): Promise<PulseServer> {
  const dir = await Deno.makeTempDir({ prefix: "wavry-pulse-" });
  const socket = `${dir}/native`;
  const pulse = new LineProcess("pulseaudio", "pulseaudio", [
    "--daemonize=no",
    "--exit-idle-time=-1",
    "-n",
    "--use-pid-file=no",
    "--disable-shm=yes",
    `--load=module-null-sink sink_name=${sink} rate=48000 channels=2`,
    `--load=module-native-protocol-unix socket=${socket} auth-anonymous=1`,
  ], { PULSE_RUNTIME_PATH: dir, PULSE_STATE_PATH: dir, HOME: dir });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    try {
      await Deno.stat(socket);
      return {
        server: `unix:${socket}`,
        sink,
        monitor: `${sink}.monitor`,
        stop: async () => {
          await pulse.stop();
          await Deno.remove(dir, { recursive: true }).catch(() => {});
        },
      };
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  await pulse.stop();
  throw new Error("pulseaudio did not create its socket within 10 s");
}
