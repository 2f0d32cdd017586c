import { randomBytes } from 'node:crypto';

/** Resource id kinds of the contract: every id is `<kind>-<12 hex>`. */
export type IdKind = 'vm' | 'net' | 'vol' | 'img' | 'req' | 'host' | 'zone' | 'node' | 'tenant' | 'user' | 'evt' | 'edge';

export const newId = (kind: IdKind): string => `${kind}-${randomBytes(6).toString('hex')}`;

export const kindOf = (id: string): string => id.slice(0, Math.max(0, id.indexOf('-')));
