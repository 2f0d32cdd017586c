/**
 * kumo's NBD server and client (hand-written: DESIGN.md §9). The server exports BlockBackends to
 * QEMU over a unix socket or TCP; FileBackend serves a raw file; NbdClient speaks to any NBD server.
 */
export { NbdServer, DEFAULT_BLOCK_SIZE, silentNbdLogger } from './server.js';
export type { NbdAddress, NbdLogger, NbdServerOptions } from './server.js';
export { BlockError, nbdErrnoOf } from './backend.js';
export type { BlockBackend } from './backend.js';
export { FileBackend, SyncBatcher } from './file-backend.js';
export type { FileBackendOptions, FileIoMode } from './file-backend.js';
export { NbdClient, NbdRequestError, NbdHandshakeError } from './client.js';
export type { ExportInfo, NbdClientOptions } from './client.js';
export { NbdProtocolError, transmissionFlags } from './handshake.js';
export * as nbdProtocol from './protocol.js';
export { MemoryBackend } from './memory-backend.js';
