/**
 * Block object ids: 128 random bits, written as 32 lowercase hex digits. On the storage node
 * wire they travel as 16 raw bytes; on disk they name the object's file.
 */
import { randomBytes } from 'node:crypto';

export const OBJECT_ID = /^[0-9a-f]{32}$/;
export const OBJECT_ID_BYTES = 16;

export const isObjectId = (s: unknown): s is string => typeof s === 'string' && OBJECT_ID.test(s);

export function newObjectId(): string {
  return randomBytes(OBJECT_ID_BYTES).toString('hex');
}
