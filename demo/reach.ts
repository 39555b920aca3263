/**
 * The reachability services as real programs: the gateway (`gateway/main.ts`,
 * KV and key in a temporary directory), the STUN server (`relay/stun_main.ts`)
 * and a relay registered with the gateway (`relay/main.ts --master-url`).
 * Used by `./wavry demo --via-gateway` on loopback and by
 * tests/connect_netns_test.ts in a namespace (through `spawn`).
 *
 * @module
 */
import { Subprocess } from "../tools/process/subprocess.ts";
import type { PeerAddress } from "../edge/udp_socket.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** Starts `deno run -A script args` somewhere (this machine, or inside a namespace). */
export type DenoSpawner = (name: string, script: string, args: string[]) => Subprocess;

/** Options of {@linkcode startReachServices}. */
export interface ReachOptions {
  /** The IP every service binds to (default 127.0.0.1). */
  hostname?: string;
  /** Where to start them (default: child processes of this one). */
  spawn?: DenoSpawner;
  /** Ports (default: free ones picked on this machine). */
  ports?: { gateway: number; stun: number; relay: number; relayHttp: number };
}

/** The running services. */
export interface ReachServices {
  /** The gateway's base URL. */
  readonly gatewayUrl: string;
  /** The STUN server. */
  readonly stun: PeerAddress;
  /** The relay's UDP address (as registered with the gateway). */
  readonly relay: PeerAddress;
  /** The relay's process (tests kill it). */
  readonly relayProcess: Subprocess;
  /** Every process, for diagnostics. */
  readonly processes: readonly Subprocess[];
  /** Stops everything and removes the temporary directory. */
  stop(): Promise<void>;
}

function localSpawn(name: string, script: string, args: string[]): Subprocess {
  return new Subprocess(name, Deno.execPath(), ["run", "-A", script, ...args], { cwd: ROOT });
}

function freeUdpPort(): number {
  const s = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (s.addr as Deno.NetAddr).port;
  s.close();
  return port;
}

function freeTcpPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function waitStderr(p: Subprocess, needle: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!p.stderr.some((l) => l.includes(needle))) {
    if (Date.now() > deadline) {
      throw new Error(
        `${p.name}: no "${needle}" within ${timeoutMs} ms; stderr: ${p.stderr.join(" | ")}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts gateway, STUN and relay; resolves once the relay has registered with the gateway. */
export async function startReachServices(options: ReachOptions = {}): Promise<ReachServices> {
  const ip = options.hostname ?? "127.0.0.1";
  const spawn = options.spawn ?? localSpawn;
  const ports = options.ports ?? {
    gateway: freeTcpPort(),
    stun: freeUdpPort(),
    relay: freeUdpPort(),
    relayHttp: freeTcpPort(),
  };
  const dir = await Deno.makeTempDir({ prefix: "wavry-reach-" });
  const processes: Subprocess[] = [];
  const stop = async () => {
    for (const p of processes) p.kill("SIGTERM");
    await Promise.all(processes.map((p) => p.finish(3_000).catch(() => {})));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    const gatewayUrl = `http://${ip}:${ports.gateway}`;
    const gateway = spawn("gateway", `${ROOT}gateway/main.ts`, [
      "--listen",
      `${ip}:${ports.gateway}`,
      "--kv",
      `${dir}/gateway.kv`,
      "--key",
      `${dir}/gateway.key`,
    ]);
    processes.push(gateway);
    const stunProcess = spawn("stun", `${ROOT}relay/stun_main.ts`, [
      "--listen",
      `${ip}:${ports.stun}`,
    ]);
    processes.push(stunProcess);
    await Promise.all([
      gateway.waitForLine((l) => l.includes("listening on"), 30_000),
      stunProcess.waitForLine((l) => l.includes("listening on"), 30_000),
    ]);
    const relayProcess = spawn("relay", `${ROOT}relay/main.ts`, [
      "--master-url",
      gatewayUrl,
      "--listen",
      `${ip}:${ports.relay}`,
      "--public-address",
      `${ip}:${ports.relay}`,
      "--http",
      `127.0.0.1:${ports.relayHttp}`,
      "--identity",
      `${dir}/relay.key`,
      "--relay-id",
      "relay-1",
    ]);
    processes.push(relayProcess);
    await waitStderr(relayProcess, "forwarding on udp", 30_000);
    return {
      gatewayUrl,
      stun: { hostname: ip, port: ports.stun },
      relay: { hostname: ip, port: ports.relay },
      relayProcess,
      processes,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
