/**
 * Two VMs and a responder serving them the way the agent will: one listening port per VM, so
 * identify() knows the VM from the port the connection arrived on and from nothing else.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { metadataHandler, type MetadataResponder, type ResponderOptions } from '../../src/metadata/responder.js';
import type { VmMetadata } from '../../src/metadata/types.js';

export function vmA(over: Partial<VmMetadata> = {}): VmMetadata {
  return {
    vmId: '6f1c0a52-4b7e-4d2a-9a53-0c1d2e3f4a5b',
    name: 'web-1',
    hostname: 'web-1.tenant-a.kumo',
    zone: 'tokyo-1',
    tenantId: 'tenant-a',
    publicKeys: [
      { name: 'alice', key: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlice alice@laptop' },
      { name: 'ci', key: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICi ci@build' },
    ],
    meta: { role: 'web' },
    userData: Buffer.from('#!/bin/sh\necho hello from user-data\n'),
    vendorData: { kumo: { users: [], files: [], sshdConfig: 'PermitRootLogin no' } },
    network: {
      links: [{ id: 'port-a0', mac: '52:54:00:AA:00:01', mtu: 1450 }],
      networks: [{
        id: 'net-a0', link: 'port-a0', type: 'ipv4', ipAddress: '10.1.0.5', netmask: '255.255.255.0',
        routes: [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: '10.1.0.1' }],
      }],
      services: [{ type: 'dns', address: '10.1.0.2' }],
    },
    generation: 3,
    localIpv4: '10.1.0.5',
    ...over,
  };
}

export function vmB(): VmMetadata {
  return vmA({
    vmId: '0b0b0b0b-1111-4222-8333-444455556666', name: 'db-1', hostname: 'db-1.tenant-b.kumo', tenantId: 'tenant-b',
    publicKeys: [{ name: 'bob', key: 'ssh-rsa AAAAB3NzaC1yc2EBob bob@desk' }], meta: { secret: 'b-only' },
    userData: Buffer.from('#cloud-config\npassword: b-secret\n'), localIpv4: '10.2.0.9', generation: 7,
    network: {
      links: [{ id: 'port-b0', mac: '52:54:00:bb:00:01' }],
      networks: [{ id: 'net-b0', link: 'port-b0', type: 'ipv4_dhcp', routes: [] }],
      services: [],
    },
  });
}

export interface Served {
  responder: MetadataResponder;
  /** Port per VM id: connecting to it is "being" that VM. */
  port: Record<string, number>;
  vms: Map<string, VmMetadata>;
  applied: Array<[string, number]>;
  close(): Promise<void>;
}

export async function serve(vms: VmMetadata[], over: Partial<ResponderOptions> = {}): Promise<Served> {
  const byId = new Map(vms.map((v) => [v.vmId, v]));
  const byPort = new Map<number, string>();
  const applied: Array<[string, number]> = [];
  const responder = metadataHandler({
    identify: async (req) => byPort.get(req.socket.localPort ?? -1) ?? null,
    lookup: async (id) => byId.get(id) ?? null,
    secret: randomBytes(32),
    onApplied: (id, gen) => { applied.push([id, gen]); },
    ...over,
  });
  const servers: http.Server[] = [];
  const port: Record<string, number> = {};
  for (const vm of vms) {
    const server = http.createServer(responder.handle);
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const p = (server.address() as AddressInfo).port;
    byPort.set(p, vm.vmId);
    port[vm.vmId] = p;
    servers.push(server);
  }
  return {
    responder, port, vms: byId, applied,
    close: async () => {
      responder.close();
      for (const s of servers) {
        s.closeAllConnections();
        await new Promise((ok) => s.close(ok));
      }
    },
  };
}

export interface Got {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A raw request, so tests can send any header (Host included) and any method. */
export function request(port: number, method: string, path: string, headers: http.OutgoingHttpHeaders = {}, body?: Buffer | string): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

export const get = (port: number, path: string, headers: http.OutgoingHttpHeaders = {}): Promise<Got> => request(port, 'GET', path, headers);
