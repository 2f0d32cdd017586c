import type { Command } from 'commander';
import { edgeCommands } from './commands/edge.js';
import { hostCommands } from './commands/host.js';
import { initCommands } from './commands/init.js';
import { netCommands } from './commands/net.js';
import { imageCommands, requestCommands } from './commands/request.js';
import { tenantCommands } from './commands/tenant.js';
import { vmCommands } from './commands/vm.js';
import { volCommands } from './commands/vol.js';
import { zoneCommands } from './commands/zone.js';

/** The client commands: each one thin call of the REST API (/v1). */
export function clientCommands(program: Command): void {
  vmCommands(program);
  netCommands(program);
  volCommands(program);
  imageCommands(program);
  requestCommands(program);
  hostCommands(program);
  zoneCommands(program);
  edgeCommands(program);
  tenantCommands(program);
  initCommands(program);
  program.addHelpText('after', `
Client commands (vm, net, vol, image, request, host, zone, edge, tenant, init, quota, comment) talk to a
controller's REST API. They find it and their API user in, first to last:
  --url, --user, --key               flags of the command
  KUMO_URL, KUMO_USER, KUMO_KEY      environment
  DATA/credentials.json              written by \`kumo up\` (--data DIR, default ./data;
                                     --as admin|tenant picks its user, default admin)
Add --output json for the API's JSON, e.g. \`kumo vm list --output json\`.`);
}
