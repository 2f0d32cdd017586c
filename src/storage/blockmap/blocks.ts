/**
 * Block arithmetic of a volume (pure). A volume is a run of fixed-size blocks; a byte range of the
 * volume maps onto per-block segments, each inside one block, which is what the frontend reads and
 * writes on the block's object. Offsets are JS numbers: exact up to 2^53 bytes (8 PiB), far beyond
 * any volume.
 */

/** 4 MiB, as UKAI and Ceph RBD use. */
export const DEFAULT_BLOCK_SIZE = 4 * 1024 * 1024;

/** One piece of a range that lies inside one block. */
export interface Segment {
  /** Index of the block (0-based). */
  block: number;
  /** Byte offset inside the block (and inside its object). */
  offset: number;
  /** Bytes in this segment, > 0. */
  length: number;
  /** Where this segment starts inside the caller's range (its buffer), from 0. */
  rangeOffset: number;
}

export interface ByteRange { offset: number; length: number }

export function isPowerOfTwo(n: number): boolean {
  if (!Number.isSafeInteger(n) || n <= 0) return false;
  while (n % 2 === 0) n /= 2;
  return n === 1;
}

/** Throws unless `blockSize` is a power of two (1 B … 2^52 B). */
export function checkBlockSize(blockSize: number): void {
  if (!isPowerOfTwo(blockSize)) throw new RangeError(`block size must be a power of two, got ${blockSize}`);
}

function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`offset must be a non-negative integer, got ${offset}`);
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`length must be a non-negative integer, got ${length}`);
  if (!Number.isSafeInteger(offset + length)) throw new RangeError(`range ${offset}+${length} ends beyond 2^53`);
}

/** Number of blocks of a volume of `sizeBytes` (the last one may be partly beyond the end). */
export function blockCount(sizeBytes: number, blockSize = DEFAULT_BLOCK_SIZE): number {
  checkBlockSize(blockSize);
  checkRange(0, sizeBytes);
  return Math.ceil(sizeBytes / blockSize);
}

/**
 * Splits [offset, offset+length) into segments that never cross a block boundary, in ascending
 * order, tiling the range exactly. An empty range has no segments.
 */
export function splitRange(offset: number, length: number, blockSize = DEFAULT_BLOCK_SIZE): Segment[] {
  checkBlockSize(blockSize);
  checkRange(offset, length);
  const out: Segment[] = [];
  let pos = offset;
  const end = offset + length;
  while (pos < end) {
    const block = Math.floor(pos / blockSize);
    const inBlock = pos - block * blockSize;
    const n = Math.min(blockSize - inBlock, end - pos);
    out.push({ block, offset: inBlock, length: n, rangeOffset: pos - offset });
    pos += n;
  }
  return out;
}

/**
 * The reverse of splitRange: the volume range that contiguous, ascending segments cover. Throws
 * on a gap, an overlap, a segment crossing its block, or an inconsistent rangeOffset.
 */
export function coveredRange(segments: readonly Segment[], blockSize = DEFAULT_BLOCK_SIZE): ByteRange {
  checkBlockSize(blockSize);
  if (segments.length === 0) return { offset: 0, length: 0 };
  const start = segments[0].block * blockSize + segments[0].offset;
  let pos = start;
  for (const [i, s] of segments.entries()) {
    if (!Number.isSafeInteger(s.block) || s.block < 0) throw new RangeError(`segment ${i}: bad block index ${s.block}`);
    if (s.length <= 0 || s.offset < 0 || s.offset + s.length > blockSize) {
      throw new RangeError(`segment ${i} (offset ${s.offset}, length ${s.length}) does not lie inside one block of ${blockSize}`);
    }
    const at = s.block * blockSize + s.offset;
    if (at !== pos) throw new RangeError(`segment ${i} starts at ${at}, expected ${pos} (${at > pos ? 'gap' : 'overlap'})`);
    if (s.rangeOffset !== pos - start) throw new RangeError(`segment ${i} has rangeOffset ${s.rangeOffset}, expected ${pos - start}`);
    pos += s.length;
  }
  return { offset: start, length: pos - start };
}

/** Inclusive first/last block a non-empty range touches; null for an empty range. */
export function blockSpan(offset: number, length: number, blockSize = DEFAULT_BLOCK_SIZE): { first: number; last: number } | null {
  checkBlockSize(blockSize);
  checkRange(offset, length);
  if (length === 0) return null;
  return { first: Math.floor(offset / blockSize), last: Math.floor((offset + length - 1) / blockSize) };
}

/** The indexes of the blocks a range touches, ascending. */
export function blocksTouched(offset: number, length: number, blockSize = DEFAULT_BLOCK_SIZE): number[] {
  const span = blockSpan(offset, length, blockSize);
  if (!span) return [];
  return Array.from({ length: span.last - span.first + 1 }, (_, i) => span.first + i);
}

/** True when the segment covers its whole block (a write that needs no read of the old data). */
export const coversBlock = (s: Segment, blockSize = DEFAULT_BLOCK_SIZE): boolean => s.offset === 0 && s.length === blockSize;
