/** VmMetadata between controller and agent: JSON, with the user-data bytes in base64. */
import type { VmMetadata } from './types.js';

export type MetadataBody = Omit<VmMetadata, 'userData'> & { userData: string | null };

export const toWire = (md: VmMetadata): MetadataBody => ({ ...md, userData: md.userData?.toString('base64') ?? null });
export const fromWire = (b: MetadataBody): VmMetadata => ({ ...b, userData: b.userData === null ? null : Buffer.from(b.userData, 'base64') });
