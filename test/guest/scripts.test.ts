import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AGENT, UDHCPC_SCRIPT } from '../../src/guest/agent.js';
import { ACPI_POWER_BUTTON, COUNTER, FUNCTIONS, RC_BOOT, RC_SHUTDOWN, initramfsInit } from '../../src/guest/scripts.js';

const scripts = { FUNCTIONS, RC_BOOT, RC_SHUTDOWN, ACPI_POWER_BUTTON, COUNTER, init: initramfsInit(), AGENT, UDHCPC_SCRIPT };
const shells = [['sh', '-n'], ['busybox', 'sh', '-n']].filter(([cmd]) => spawnSync(cmd, ['-c', 'true']).status === 0);

test('guest scripts parse as POSIX/busybox shell', () => {
  assert.ok(shells.length > 0);
  for (const [name, text] of Object.entries(scripts)) {
    for (const [cmd, ...args] of shells) {
      const r = spawnSync(cmd, args, { input: text, encoding: 'utf8' });
      assert.equal(r.status, 0, `${name} under ${cmd}: ${r.stderr}`);
    }
    assert.ok(!text.includes('undefined'), `${name} has an interpolation slip`);
  }
});

test('kumo_vm_id prefers a plausible SMBIOS serial and falls back to kumo.vm=', { skip: spawnSync('busybox', ['true']).status !== 0 && 'no busybox' }, () => {
  // The helper, with its two inputs redirected to files we control.
  const dir = mkdtempSync(join(tmpdir(), 'kumo-vmid-'));
  const serial = join(dir, 'serial');
  const cmdline = join(dir, 'cmdline');
  const fn = FUNCTIONS.replaceAll('/sys/class/dmi/id/product_serial', serial).replaceAll('/proc/cmdline', cmdline);
  const vmId = (serialText: string | null, cmdlineText: string) => {
    rmSync(serial, { force: true });
    if (serialText !== null) writeFileSync(serial, serialText);
    writeFileSync(cmdline, cmdlineText);
    return spawnSync('busybox', ['sh', '-c', `${fn}\nkumo_vm_id`], { encoding: 'utf8' }).stdout.trim();
  };
  try {
    const cl = 'console=ttyS0 kumo.vm=vm-fromcmdline quiet\n';
    assert.equal(vmId('vm-0123456789ab\n', cl), 'vm-0123456789ab');
    assert.equal(vmId('Not Specified\n', cl), 'vm-fromcmdline');
    assert.equal(vmId('', cl), 'vm-fromcmdline');
    assert.equal(vmId(null, cl), 'vm-fromcmdline');
    assert.equal(vmId(null, 'console=ttyS0 kumo.vm=bad/id\n'), 'unknown');
    assert.equal(vmId(null, 'console=ttyS0\n'), 'unknown');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
