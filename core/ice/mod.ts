/**
 * ICE for Wavry (RFC 8445 as the model, RFC 7675 consent), sans-IO:
 * candidates and their priorities, and the {@linkcode IceAgent} that runs
 * connectivity checks on the socket RIFT will use. See `docs/CONNECT.md`.
 *
 * @module
 */
export * from "./candidate.ts";
export * from "./agent.ts";
