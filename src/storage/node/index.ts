/**
 * The storage node: block objects as sparse files (ObjectStore), served over kumo's pipelined
 * binary protocol (protocol.ts) by StorageNodeServer, and StorageNodeClient for the frontend,
 * the controller and other nodes (COPY); InProcessNodeClient reaches a node in the same process
 * (both are a NodeClient). Errors form one family: NodeError (an error reply with an
 * errno code), NodeTimeout, NodeClosed, NodeProtocolError.
 */
export { ObjectStore, DEFAULT_MAX_OBJECT_BYTES, DEFAULT_MAX_OPEN_FILES } from './store.js';
export type { ObjectStoreOptions, ObjectStat, SourceReader, StoreCounters } from './store.js';
export { StorageNodeServer } from './server.js';
export type { StorageNodeServerOptions } from './server.js';
export { StorageNodeClient, DEFAULT_REQUEST_TIMEOUT_MS } from './client.js';
export type { StorageNodeConnectOptions } from './client.js';
export { InProcessNodeClient } from './in-process.js';
export type { InProcessClientOptions } from './in-process.js';
export { requestError } from './node-client.js';
export type { NodeClient, RequestOptions, DurableOptions, NodeCloseInfo } from './node-client.js';
export {
  StorageNodeError, NodeError, NodeTimeout, NodeClosed, NodeProtocolError, NodeOpError, isNodeError, errnoName, errnoNumber, errorReply,
} from './errors.js';
export type { StorageNodeErrorClass } from './errors.js';
export {
  Op, opName, PROTOCOL_VERSION, REQUEST_MAGIC, REPLY_MAGIC, HEADER_BYTES, MAX_PAYLOAD, FLAG_FUA, NO_OBJECT,
  FrameDecoder, encodeHeader, decodeHeader,
} from './protocol.js';
export type { FrameHeader, Frame, HelloRequest, HelloReply, CopyRequest, CopyReply, NodeStatReply } from './protocol.js';
export { silentLogger } from './log.js';
export type { NodeLogger } from './log.js';
