/**
 * Server side of the fixed newstyle handshake and option haggling (proto.md "Handshake").
 *
 * Supported options: EXPORT_NAME, GO, INFO (replying NBD_INFO_EXPORT and NBD_INFO_BLOCK_SIZE, plus
 * NBD_INFO_NAME when asked), LIST, ABORT. Everything else, STRUCTURED_REPLY and STARTTLS included,
 * gets NBD_REP_ERR_UNSUP: this server sends simple replies only and runs in NOTLS mode.
 * A violation the protocol lets us answer is answered (NBD_REP_ERR_INVALID / _UNKNOWN); one it does
 * not (bad magic, unknown client flags, an unknown name with EXPORT_NAME) throws NbdProtocolError
 * and the caller drops the connection.
 */
import type { BlockBackend } from './backend.js';
import type { SocketReader } from './bytes.js';
import {
  FLAG_C_NO_ZEROES, FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES, INFO, KNOWN_CLIENT_FLAGS, OPT, OPTION_HEADER_SIZE, REP,
  TFLAG, decodeInfoRequest, decodeOptionHeader, encodeExportNameReply, encodeGreeting, encodeInfoReply,
  encodeOptionReply, encodeServerEntry, type BlockSizeInfo,
} from './protocol.js';

/** The peer broke a rule that leaves no answer but dropping the connection. */
export class NbdProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NbdProtocolError';
  }
}

export interface ExportLookup {
  get(name: string): BlockBackend | undefined;
  names(): Iterable<string>;
}

export interface HandshakeOptions {
  blockSize: BlockSizeInfo;
  /** Option data longer than this ends the connection (the longest legal GO is ~135 KiB). */
  maxOptionLength: number;
}

export interface Negotiated {
  name: string;
  backend: BlockBackend;
  /** Transmission flags sent to the client. */
  flags: number;
}

export interface HandshakeIO {
  reader: SocketReader;
  write(b: Buffer): void;
}

/** Transmission flags for an export. */
export function transmissionFlags(backend: BlockBackend): number {
  let f = TFLAG.HAS_FLAGS | TFLAG.SEND_FLUSH | TFLAG.SEND_FUA;
  if (backend.readOnly) f |= TFLAG.READ_ONLY;
  else f |= TFLAG.SEND_TRIM | TFLAG.SEND_WRITE_ZEROES;
  if (backend.multiConn) f |= TFLAG.CAN_MULTI_CONN;
  return f;
}

const text = (s: string) => Buffer.from(s, 'utf8');

/**
 * Runs the handshake to its end: the export chosen (GO or EXPORT_NAME), or null after
 * NBD_OPT_ABORT. Throws NbdProtocolError or ConnectionClosed otherwise.
 */
export async function negotiate(io: HandshakeIO, exports: ExportLookup, opts: HandshakeOptions): Promise<Negotiated | null> {
  io.write(encodeGreeting(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES));
  const clientFlags = (await io.reader.read(4)).readUInt32BE(0);
  if (clientFlags & ~KNOWN_CLIENT_FLAGS) throw new NbdProtocolError(`unknown client flags 0x${clientFlags.toString(16)}`);
  // A client without NBD_FLAG_C_FIXED_NEWSTYLE is served the fixed newstyle anyway (proto.md: MAY).
  const noZeroes = (clientFlags & FLAG_C_NO_ZEROES) !== 0;

  for (;;) {
    const header = decodeOptionHeader(await io.reader.read(OPTION_HEADER_SIZE));
    if (!header) throw new NbdProtocolError('bad option magic');
    if (header.length > opts.maxOptionLength) throw new NbdProtocolError(`option ${header.option} with ${header.length} bytes of data`);
    const data = await io.reader.read(header.length);
    const reply = (type: number, payload?: Buffer) => io.write(encodeOptionReply(header.option, type, payload));

    switch (header.option) {
      case OPT.EXPORT_NAME: {
        const name = data.toString('utf8');
        const backend = exports.get(name);
        // No way to answer an error here: proto.md says terminate the session.
        if (!backend) throw new NbdProtocolError(`EXPORT_NAME: no export named ${JSON.stringify(name)}`);
        const flags = transmissionFlags(backend);
        io.write(encodeExportNameReply(backend.size, flags, noZeroes));
        return { name, backend, flags };
      }
      case OPT.ABORT:
        reply(REP.ACK);
        return null;
      case OPT.LIST:
        if (data.length !== 0) {
          reply(REP.ERR_INVALID, text('NBD_OPT_LIST takes no data'));
          break;
        }
        for (const name of exports.names()) reply(REP.SERVER, encodeServerEntry(name));
        reply(REP.ACK);
        break;
      case OPT.INFO:
      case OPT.GO: {
        const req = decodeInfoRequest(data);
        if (!req) {
          reply(REP.ERR_INVALID, text('malformed NBD_OPT_INFO/GO data'));
          break;
        }
        const backend = exports.get(req.name);
        if (!backend) {
          reply(REP.ERR_UNKNOWN, text(`no export named ${JSON.stringify(req.name)}`));
          break;
        }
        const flags = transmissionFlags(backend);
        reply(REP.INFO, encodeInfoReply({ type: INFO.EXPORT, size: backend.size, flags }));
        // Sent whether asked or not: the 32 MiB maximum is tighter than the protocol's default.
        reply(REP.INFO, encodeInfoReply({ type: INFO.BLOCK_SIZE, ...opts.blockSize }));
        if (req.requests.includes(INFO.NAME)) reply(REP.INFO, encodeInfoReply({ type: INFO.NAME, name: req.name }));
        reply(REP.ACK);
        if (header.option === OPT.GO) return { name: req.name, backend, flags };
        break;
      }
      default:
        reply(REP.ERR_UNSUP, text(`option ${header.option} not supported`));
    }
  }
}
