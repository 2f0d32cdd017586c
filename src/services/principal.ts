import { Fault, KumoError } from '../core/errors.js';

/** Who is calling: every service method takes one and scopes what it reads and writes by it. */
export interface Principal { userId: string; userName: string; tenantId: string; admin: boolean }

/** The controller itself, for reconcilers and the request engine. */
export const SYSTEM: Principal = { userId: 'system', userName: 'system', tenantId: 'tenant-system', admin: true };

export function requireAdmin(p: Principal): void {
  if (!p.admin) throw new KumoError(Fault.AUTHORIZATION, 'this method is for administrators');
}

/** A tenant sees its own rows; an admin sees every tenant's. Others' rows read as "not found". */
export const visible = (p: Principal, tenantId: string | null) => p.admin || tenantId === null || tenantId === p.tenantId;
