import type { Socket } from 'node:net';

/** Writes a header and its payload as one segment where possible, without concatenating them. */
export function writeFrame(socket: Socket, header: Uint8Array, payload?: Uint8Array): void {
  if (!payload || payload.length === 0) { socket.write(header); return; }
  socket.cork();
  socket.write(header);
  socket.write(payload);
  socket.uncork();
}
