import type { VmReport, VmSpec, StopOptions } from '../compute/driver.js';
import type { AgentRegistration } from '../services/hosts.js';

/**
 * The controller ↔ agent wire contract, in one place for both sides. Agent operations are
 * idempotent: the controller may repeat any of them after a timeout or a restart.
 */
export const AGENT_PATHS = {
  start: (hostId: string, vmId: string) => `/agent/v1/hosts/${hostId}/vms/${vmId}/start`,
  stop: (hostId: string, vmId: string) => `/agent/v1/hosts/${hostId}/vms/${vmId}/stop`,
  reset: (hostId: string, vmId: string) => `/agent/v1/hosts/${hostId}/vms/${vmId}/reset`,
  list: (hostId: string) => `/agent/v1/hosts/${hostId}/vms`,
} as const;

export const CONTROLLER_PATHS = { register: '/v1/agent/register', heartbeat: '/v1/agent/heartbeat', exit: '/v1/agent/vm-exit' } as const;

export type StartBody = VmSpec;
export type StopBody = StopOptions;
export type RegisterBody = AgentRegistration;
export interface RegisterReply { nodeToken: string; hosts: { name: string; hostId: string }[] }
export interface HeartbeatBody { hosts: { hostId: string; vms: VmReport[] }[] }
export interface ExitBody { hostId: string; vmId: string; reason: 'shutdown' | 'crash' }
export interface AgentFault { error: string }
