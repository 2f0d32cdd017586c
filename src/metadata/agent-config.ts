/**
 * What kumo's guest agent long-polls for: the generation plus the same documents a cloud-init guest
 * reads at boot, so the tiny image's init parses one format whether it boots or is updated live.
 */
import { metaDataJson, networkDataJson } from './openstack.js';
import type { VmMetadata } from './types.js';

export interface AgentConfig {
  generation: number;
  meta_data: Record<string, unknown>;
  network_data: Record<string, unknown>;
  vendor_data: object;
}

export function agentConfig(md: VmMetadata): AgentConfig {
  return {
    generation: md.generation,
    meta_data: metaDataJson(md),
    network_data: networkDataJson(md),
    vendor_data: md.vendorData,
  };
}
