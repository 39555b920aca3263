/**
 * Layout of the counters the worker writes into a SharedArrayBuffer and the
 * main thread reads synchronously in `stats()`.
 *
 * @module
 */

import type { DirectionStats, FlowDirectionStats, LinkEmulatorStats } from "./types.ts";

/** Fields of one direction, in slot order. */
export const DIRECTION_FIELDS = [
  "sent",
  "delivered",
  "lostRandom",
  "droppedQueue",
  "duplicated",
  "droppedMtu",
  "bytesDelivered",
  "maxQueueDelayMs",
  "received",
  "noPeer",
  "sendErrors",
  "queuedBytes",
  "releaseLateMeanMs",
  "releaseLateMaxMs",
] as const satisfies readonly (keyof DirectionStats)[];

/** Fields of one flow in one direction, in slot order. */
export const FLOW_FIELDS = [
  "received",
  "forwarded",
  "bytesForwarded",
] as const satisfies readonly (keyof FlowDirectionStats)[];

const D = DIRECTION_FIELDS.length;
const F = FLOW_FIELDS.length;

/** Float64 slots needed for `flows` flows. */
export function statsSlots(flows: number): number {
  return 2 * D + flows * 2 * F;
}

/** Slot offset of a direction's block. */
export function directionOffset(dir: "up" | "down"): number {
  return dir === "up" ? 0 : D;
}

/** Slot offset of a flow's block in a direction. */
export function flowOffset(flow: number, dir: "up" | "down"): number {
  return 2 * D + flow * 2 * F + (dir === "up" ? 0 : F);
}

function readDirection(a: Float64Array, off: number): DirectionStats {
  const out = {} as Record<string, number>;
  DIRECTION_FIELDS.forEach((k, i) => out[k] = a[off + i]);
  return out as unknown as DirectionStats;
}

function readFlow(a: Float64Array, off: number): FlowDirectionStats {
  const out = {} as Record<string, number>;
  FLOW_FIELDS.forEach((k, i) => out[k] = a[off + i]);
  return out as unknown as FlowDirectionStats;
}

/** Decodes a snapshot of the shared counters. */
export function readStats(a: Float64Array, flows: number): LinkEmulatorStats {
  return {
    up: readDirection(a, directionOffset("up")),
    down: readDirection(a, directionOffset("down")),
    flows: Array.from({ length: flows }, (_, i) => ({
      up: readFlow(a, flowOffset(i, "up")),
      down: readFlow(a, flowOffset(i, "down")),
    })),
  };
}
