/**
 * `./wavry stun`: the STUN server as a program.
 *
 * ```
 * ./wavry stun [--listen 0.0.0.0:3478] [--alternate IP:PORT] [--metrics HOST:PORT] [--software NAME]
 * ```
 *
 * With `--alternate` the server opens the four RFC 5780 sockets (both IPs
 * must be concrete addresses of this machine). `--metrics` serves the
 * Prometheus counters at `/metrics`.
 *
 * @module
 */
import { StunServer } from "./stun_server.ts";

/** Parsed command line. */
export interface StunArgs {
  /** Primary address. */
  listen: { hostname: string; port: number };
  /** Alternate address (RFC 5780 mode). */
  alternate?: { hostname: string; port: number };
  /** Where to serve /metrics. */
  metrics?: { hostname: string; port: number };
  /** SOFTWARE value. */
  software?: string;
}

function parseHostPort(text: string): { hostname: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`"${text}" is not an address of the form host:port`);
  return { hostname: m[1] ?? m[2], port };
}

/** Parses the command line; throws a clear error for a bad one. */
export function parseStunArgs(args: string[]): StunArgs {
  const out: StunArgs = { listen: { hostname: "0.0.0.0", port: 3478 } };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const value = args[i + 1];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    i++;
    switch (flag) {
      case "--listen":
        out.listen = parseHostPort(value);
        break;
      case "--alternate":
        out.alternate = parseHostPort(value);
        break;
      case "--metrics":
        out.metrics = parseHostPort(value);
        break;
      case "--software":
        out.software = value;
        break;
      default:
        throw new Error(`unknown option ${flag}`);
    }
  }
  return out;
}

if (import.meta.main) {
  let args: StunArgs;
  try {
    args = parseStunArgs(Deno.args);
  } catch (e) {
    console.error(`wavry stun: ${(e as Error).message}`);
    console.error(
      "usage: ./wavry stun [--listen 0.0.0.0:3478] [--alternate IP:PORT] [--metrics HOST:PORT]",
    );
    Deno.exit(2);
  }
  const server = StunServer.start(args);
  const a = server.address, alt = server.alternateAddress;
  console.log(
    `wavry stun: listening on ${a.hostname}:${a.port}` +
      (alt ? `, RFC 5780 alternate ${alt.hostname}:${alt.port} (four sockets)` : ""),
  );
  let http: Deno.HttpServer | undefined;
  if (args.metrics) {
    http = Deno.serve(
      { ...args.metrics, onListen: () => {} },
      async (req) =>
        new URL(req.url).pathname === "/metrics"
          ? new Response(await server.metrics(), {
            headers: { "content-type": "text/plain; version=0.0.4" },
          })
          : new Response("not found", { status: 404 }),
    );
    console.log(
      `wavry stun: metrics on http://${args.metrics.hostname}:${args.metrics.port}/metrics`,
    );
  }
  const stop = async () => {
    await http?.shutdown();
    await server.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}
