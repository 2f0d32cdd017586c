const ZERO = Buffer.alloc(1 << 20);

/** Whether every byte is zero (compared a MiB at a time against a shared zero buffer). */
export function isZero(b: Uint8Array): boolean {
  for (let at = 0; at < b.length; at += ZERO.length) {
    const n = Math.min(ZERO.length, b.length - at);
    if (!Buffer.from(b.buffer, b.byteOffset + at, n).equals(ZERO.subarray(0, n))) return false;
  }
  return true;
}
