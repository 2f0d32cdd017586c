import { Type } from '@sinclair/typebox';
import { CONSOLE_MAX_TAIL } from '../../agent/console-client.js';
import { consoles } from '../../services/console.js';
import { op } from './types.js';
import { VmId } from './schemas.js';

/** JSON and XML-RPC carry text; the exact bytes are at GET /v1/vms/{vmId}/console/raw (api/console.ts). */
export const consoleOperations = [
  op({
    name: 'getVmConsole', tag: 'VMs',
    summary: 'The last output of the VM\'s serial console, up to 1 MiB (kumo addition). Invalid UTF-8 becomes U+FFFD and control '
      + 'characters their control pictures (ESC → U+241B); GET /v1/vms/{vmId}/console/raw gives the exact bytes as text/plain, '
      + 'and the websocket /v1/vms/{vmId}/console/ws the live console',
    params: [{ name: 'vmId', schema: VmId }, { name: 'bytes', schema: Type.Integer({ minimum: 1, maximum: CONSOLE_MAX_TAIL, description: 'how much of the end (default 1 MiB)' }), optional: true }],
    result: Type.String({ description: 'console output' }),
    rest: { method: 'GET', path: '/v1/vms/{vmId}/console', wrap: 'console' },
    run: (s, p, a) => consoles(s).text(p, a.vmId, a.bytes),
  }),
];
