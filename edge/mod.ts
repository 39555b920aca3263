/**
 * Wavry's I/O edge: RIFT sessions over real UDP sockets, timers and a
 * monotonic clock, for the host and client programs.
 *
 * Needs `Deno.listenDatagram`, which Deno 2 keeps behind `--unstable-net`.
 *
 * @example
 * ```ts ignore
 * import { SessionDriver, SessionListener } from "./mod.ts";
 * import { generateIdentity } from "../crypto/identity.ts";
 *
 * const listener = SessionListener.listen({ hostname: "127.0.0.1", port: 0, identity: generateIdentity() });
 * const client = await SessionDriver.connect({ remote: listener.addr, identity: generateIdentity() });
 * client.sendControl(new TextEncoder().encode("hello"));
 * await client.close();
 * await listener.close();
 * ```
 *
 * @module
 */
export {
  type CloseInfo,
  type ConnectOptions,
  DEFAULT_MAX_PEERS,
  DEFAULT_MAX_QUEUED_EVENTS,
  DEFAULT_PACING,
  type DriverIoCounters,
  type DriverOptions,
  type DriverStats,
  type ForeignHandler,
  isForeignDatagram,
  type ListenerStats,
  type ListenOptions,
  type PacingOptions,
  type PeerAddress,
  type RawDatagramLink,
  SessionDriver,
  SessionListener,
  type SocketCounters,
} from "./udp_session.ts";
export { AsyncQueue } from "./queue.ts";
export { formatAddress, UdpSocket } from "./udp_socket.ts";
export {
  AddressCache,
  addressFromRecord,
  DEFAULT_SLOT_BYTES,
  DEFAULT_SOCKET_BUFFER_BYTES,
  type NativeUdpCounters,
  type NativeUdpOpenOptions,
  NativeUdpSocket,
  type ReceiveBatchOptions,
  ReceivedBatch,
  receivedBatchBytes,
  type SendErrorKind,
  sendErrorKind,
  sourceAddressCache,
} from "./native_udp.ts";
