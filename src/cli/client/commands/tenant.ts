import { InvalidArgumentError, type Command } from 'commander';
import { act, group } from '../command.js';

type Limits = Record<string, number>;

/** `vms=10,vcpus=40` → {vms: 10, vcpus: 40}. */
function quota(v: string): Limits {
  const out: Limits = {};
  for (const part of v.split(',').filter(Boolean)) {
    const m = /^\s*(\w+)\s*=\s*(\d+)\s*$/.exec(part);
    if (!m) throw new InvalidArgumentError(`expected KEY=INTEGER[,KEY=INTEGER…], got ${JSON.stringify(part)}`);
    out[m[1]] = Number(m[2]);
  }
  return out;
}

/** One row per resource, used next to its limit: easier to read than two maps. */
const usageRows = (q: { quota: Limits; usage: Limits }) =>
  [...new Set([...Object.keys(q.quota), ...Object.keys(q.usage)])].map((resource) => ({ resource, used: q.usage[resource] ?? 0, limit: q.quota[resource] ?? null }));

export function tenantCommands(program: Command): void {
  const tenant = group(program, 'tenant', 'tenants (admin): contracts with quotas, and their API users');
  tenant.command('list').description('list the tenants with what each uses of its quota (used/limit)')
    .action(act(async (c) => {
      const list = await c.call('getTenantList') as { tenantId: string; name: string; quota: Limits; usage: Limits }[];
      if (c.json) return c.print(list);
      c.print(list.map((t) => ({
        tenantId: t.tenantId, name: t.name,
        ...Object.fromEntries(usageRows(t).map((r) => [r.resource, `${r.used}/${r.limit ?? '-'}`])),
      })));
    }));
  tenant.command('create').description('create a tenant (prints its id)').argument('<name>', 'tenant name')
    .option('--quota <limits>', 'contract limits, e.g. vms=10,vcpus=40,memoryMiB=81920,volumes=20,volumeGiB=2000,networks=5,ipAddresses=8', quota)
    .action(act(async (c, [name], o) => c.print(await c.call('createTenant', { tenant: { name, quota: o.quota } }))));
  tenant.command('add-user').description('create an API user of a tenant and print its key (shown only this once)').argument('<tenant>', 'tenant id (tenant-…)')
    .action(act(async (c, [tenantId]) => c.print(await c.call('createApiUser', { tenantId }))));

  const q = group(program, 'quota', 'your tenant\'s contract limits and what it uses now');
  q.action(act(async (c) => {
    const body = await c.call('getQuota') as { quota: Limits; usage: Limits };
    c.print(c.json ? body : usageRows(body));
  }));

  const comment = group(program, 'comment', 'free-text comments on any resource (VM, network, volume, …)');
  comment.command('get').description('print the comment on a resource').argument('<id>', 'resource id')
    .action(act(async (c, [resourceId]) => {
      const body = await c.call('getResourceComment', { resourceId }) as { comment: string };
      if (c.json) c.print(body); else if (body.comment) process.stdout.write(`${body.comment.replace(/\n$/, '')}\n`);
    }));
  comment.command('set').description('set the comment on a resource; without TEXT it is cleared, with "-" read from stdin')
    .argument('<id>', 'resource id').argument('[text]', 'the comment')
    .action(act(async (c, [resourceId, text]) => {
      const comment = text === '-' ? await stdin() : text ?? '';
      await c.call('setResourceComment', { resourceId, comment });
      c.done(comment ? `comment on ${resourceId} set` : `comment on ${resourceId} cleared`);
    }));
}

async function stdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
