import { OPERATION_BY_NAME, type Operation } from '../../api/operations/index.js';
import type { Client } from './http.js';

const pathParams = (o: Operation) => new Set([...o.rest.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]));

/** The HTTP request for one operation, laid out the way api/rest/transport.ts gathers it back. */
export function restRequest(name: string, args: Record<string, unknown>) {
  const o = OPERATION_BY_NAME.get(name);
  if (!o) throw new Error(`unknown operation ${name}`);
  const inPath = pathParams(o);
  const path = o.rest.path.replace(/\{(\w+)\}/g, (_, k: string) => {
    if (args[k] === undefined) throw new Error(`${name}: ${k} is required`);
    return encodeURIComponent(String(args[k]));
  });
  const rest = o.params.filter((p) => !inPath.has(p.name));
  // A lone struct parameter is the whole body (or query); otherwise each parameter is a member.
  const payload = rest.length === 1 && rest[0].schema.type === 'object'
    ? args[rest[0].name] as Record<string, unknown> | undefined
    : rest.length ? Object.fromEntries(rest.map((p) => [p.name, args[p.name]])) : undefined;
  return o.rest.method === 'GET'
    ? { method: o.rest.method, path, query: payload }
    : { method: o.rest.method, path, body: payload };
}

/** Calls an operation of the API table by its XML-RPC name, e.g. `callOperation(c, 'getVmInfo', {vmId})`. */
export function callOperation(client: Client, name: string, args: Record<string, unknown> = {}, timeoutMs?: number): Promise<unknown> {
  return client.send({ ...restRequest(name, args), timeoutMs });
}
