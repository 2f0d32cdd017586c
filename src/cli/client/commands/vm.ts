import { Option, type Command } from 'commander';
import { int } from '../../util.js';
import { text } from './init.js';
import { act, asyncOptions, group, type Ctx } from '../command.js';
import { CliError } from '../connection.js';
import { attach, printTail } from '../console.js';

export function vmCommands(program: Command): void {
  const vm = group(program, 'vm', 'virtual machines: create, power, change, migrate, delete');

  vm.command('list').description('list the VMs you can see')
    .action(act(async (c) => c.print(await c.call('getVmList'))));
  vm.command('show').description('show a VM with its disks and NICs').argument('<vm>', 'VM id (vm-…)')
    .action(act(async (c, [vmId]) => c.print(await c.call('getVmInfo', { vmId }))));
  vm.command('status').description('show power, status and the request now running on a VM').argument('<vm>', 'VM id')
    .action(act(async (c, [vmId]) => c.print(await c.call('getVmStatus', { vmId }))));
  vm.command('console').description('attach to the VM\'s serial console (Ctrl-] detaches); piped input is sent and the command ends once output settles')
    .argument('<vm>', 'VM id')
    .option('--tail', 'print the last output the console kept (up to 1 MiB) and exit')
    .action(act(async (c, [vmId], o) => {
      if (o.tail) return printTail(c.client.conn, vmId);
      // A websocket can only say "not found" after it opened; ask first so the usual fault line comes before any "Connected".
      await c.call('getVmConsole', { vmId, bytes: 1 });
      return attach(c.client.conn, vmId);
    }));
  vm.command('types').description('list the VM type catalog (vCPUs, memory, system disk, resource type)')
    .action(act(async (c) => c.print(await c.call('getVmTypeList'))));

  vm.command('create').description('reserve a VM and create its system volume; nothing runs until `kumo vm start` (prints the VM id)')
    .requiredOption('--type <type>', 'VM type from `kumo vm types`, e.g. be.small')
    .option('--name <name>', 'a name for the VM')
    .option('--zone <zone>', 'zone to place it in (id or name)')
    .addOption(new Option('--arch <arch>', 'CPU architecture').choices(['x86_64', 'i686']))
    .option('--disk <GiB>', 'system disk size in GiB (default: the type\'s)', int)
    .option('--user-data <file>', 'user-data for the guest, at most 64 KiB (- for stdin): a `#!` script runs once at first boot, `#cloud-config` goes to cloud-init untouched')
    .action(act(async (c, _, o) => c.print(await c.call('allocateVm', {
      vm: { type: o.type, name: o.name, zone: o.zone, architecture: o.arch, systemDiskGiB: o.disk, ...(o.userData ? { userData: await text(o.userData) } : {}) },
    }))));
  vm.command('delete').description('delete a stopped VM and its system volume; extra volumes are detached, not deleted').argument('<vm>', 'VM id')
    .action(act(async (c, [vmId]) => { await c.call('deallocateVm', { vmId }); c.done(`${vmId} deleted`); }));

  asyncOptions(vm.command('start').description('place the VM on a host if needed and boot it').argument('<vm>', 'VM id'))
    .action(act(async (c, [vmId]) => c.submit('powerOnVm', { vmId })));
  asyncOptions(vm.command('stop').description('shut the VM down (ACPI, forced off after the controller\'s grace time)').argument('<vm>', 'VM id')
    .option('--force', 'power off at once, like pulling the plug'))
    .action(act(async (c, [vmId], o) => c.submit('powerOffVm', { vmId, force: o.force === true })));
  asyncOptions(vm.command('reset').description('hard-reset a running VM').argument('<vm>', 'VM id'))
    .action(act(async (c, [vmId]) => c.submit('resetVm', { vmId })));
  asyncOptions(vm.command('migrate')
    .description('live-migrate a running VM without stopping it; the scheduler picks the host unless told. The dirty rate is measured first: '
      + 'a VM predicted not to converge is refused with the numbers. Progress shows each pre-copy pass; `kumo request cancel` rolls back')
    .argument('<vm>', 'VM id')
    .option('--host <host>', 'destination host id (host-…, admin)')
    .option('--zone <zone>', 'destination zone (default: the VM\'s current zone)')
    .option('--follow-storage', 'after a move to another zone, copy each volume to a storage node there and drop the far copies'))
    .action(act(async (c, [vmId], o) => c.submit('migrateVm', { vmId, target: { host: o.host, zone: o.zone, followStorage: o.followStorage === true ? true : undefined } })));
  asyncOptions(vm.command('restore').description('write an image onto the system volume of a stopped VM').argument('<vm>', 'VM id').argument('<image>', 'image id (img-…) or name, e.g. tiny-linux'))
    .action(act(async (c, [vmId, image]) => c.submit('restoreImage', { vmId, imageId: await imageId(c, image) })));

  vm.command('set-type').description('change the type of a stopped VM (capacity is checked at the next start)').argument('<vm>', 'VM id').argument('<type>', 'VM type')
    .action(act(async (c, [vmId, type]) => { await c.call('changeVmType', { vmId, type }); c.done(`${vmId} is now ${type}`); }));
  vm.command('set-arch').description('change the CPU architecture of a stopped VM').argument('<vm>', 'VM id').argument('<arch>', 'x86_64 or i686')
    .action(act(async (c, [vmId, architecture]) => { await c.call('changeVmArchitecture', { vmId, architecture }); c.done(`${vmId} is now ${architecture}`); }));
}

/** Users type image names (`tiny-linux`); the API takes ids. */
async function imageId(c: Ctx, image: string): Promise<string> {
  if (image.startsWith('img-')) return image;
  const found = (await c.call('getImageList') as { imageId: string; name: string }[]).filter((i) => i.name === image);
  if (found.length === 1) return found[0].imageId;
  throw new CliError(found.length ? `several images are named ${image}; use its id` : `no image named ${image}; kumo image list shows them`);
}
