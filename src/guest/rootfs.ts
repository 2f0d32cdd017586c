/**
 * The root filesystem image: a staged directory turned into ext4 with `mke2fs -d` (no loop mount,
 * no root needed). The image file is made sparse with truncate first; mke2fs only writes metadata.
 */
import { chmod, copyFile, lstat, mkdir, readdir, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { AGENT, AGENT_PATH, UDHCPC_SCRIPT, UDHCPC_SCRIPT_PATH } from './agent.js';
import { appletTarget, type Busybox } from './busybox.js';
import { run } from './exec.js';
import { ACPI_POWER_BUTTON, COUNTER, FUNCTIONS, INITTAB, RC_BOOT, RC_SHUTDOWN } from './scripts.js';

/**
 * Pinned ext4 features instead of the host's /etc/mke2fs.conf: a newer e2fsprogs may default to
 * features (orphan_file, …) the guest kernel does not know, and the image should not depend on it.
 * The Debian image (debian/build.ts) uses the same.
 */
export const MKE2FS_CONF = `[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384

[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
`;

export interface RootfsOptions {
  busybox: Busybox;
  /** image file to create (replaced) */
  out: string;
  sizeMiB: number;
  /** scratch directory (created and removed) */
  workDir: string;
  /** written to /etc/kumo/release.json */
  release: Record<string, unknown>;
}

async function put(root: string, path: string, data: string | Buffer, mode = 0o644): Promise<void> {
  const p = join(root, path);
  await mkdir(dirname(p), { recursive: true });
  await writeFile(p, data);
  await chmod(p, mode); // explicit: the builder's umask must not leak into the image
}

/** Stages the guest's files under `root`. */
export async function stageRootfs(root: string, busybox: Busybox, release: Record<string, unknown>): Promise<void> {
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc/kumo/boot.d', 'dev', 'proc', 'sys', 'run', 'mnt', 'var/lib/kumo', 'var/log']) {
    await mkdir(join(root, d), { recursive: true });
  }
  await mkdir(join(root, 'tmp'));
  await chmod(join(root, 'tmp'), 0o1777);
  await mkdir(join(root, 'root'));
  await chmod(join(root, 'root'), 0o700);
  await symlink('../run', join(root, 'var/run'));

  await copyFile(busybox.binary, join(root, 'bin/busybox'));
  await chmod(join(root, 'bin/busybox'), 0o755);
  for (const a of busybox.applets) {
    if (a === 'linuxrc') continue;
    await mkdir(join(root, dirname(a)), { recursive: true });
    await symlink(appletTarget(a), join(root, a));
  }

  await put(root, 'etc/inittab', INITTAB);
  await put(root, 'etc/kumo/functions', FUNCTIONS);
  await put(root, 'etc/kumo/rc.boot', RC_BOOT, 0o755);
  await put(root, 'etc/kumo/rc.shutdown', RC_SHUTDOWN, 0o755);
  await put(root, 'etc/acpi/PWRF/00000080', ACPI_POWER_BUTTON, 0o755);
  await put(root, 'usr/bin/kumo-counter', COUNTER, 0o755);
  await put(root, AGENT_PATH.slice(1), AGENT, 0o755);
  await put(root, UDHCPC_SCRIPT_PATH.slice(1), UDHCPC_SCRIPT, 0o755);
  await put(root, 'etc/kumo/release.json', JSON.stringify(release, null, 2) + '\n');
  await put(root, 'etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n');
  await put(root, 'etc/shadow', 'root:*:19000:0:99999:7:::\n', 0o600);
  await put(root, 'etc/group', 'root:x:0:\ntty:x:5:\n');
  await put(root, 'etc/hosts', '127.0.0.1\tlocalhost\n');
  await put(root, 'etc/hostname', 'localhost\n');
  await put(root, 'etc/fstab', '/dev/vda\t/\text4\tdefaults\t0\t1\n');
  await put(root, 'etc/os-release', 'NAME="kumo tiny-linux"\nID=kumo-tiny\nPRETTY_NAME="kumo tiny-linux (busybox)"\n');
}

/** Every path under `root`, as guest paths (`/etc/inittab`), parents first. */
async function walk(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of (await readdir(join(root, rel), { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = `${rel}/${e.name}`;
    out.push(p);
    if (e.isDirectory()) out.push(...(await walk(root, p)));
  }
  return out;
}

/**
 * mke2fs -d copies the staged files' owners; a build by an ordinary user would leave the guest's
 * files owned by that uid. debugfs rewrites them to root in one pass (no mount, no privileges).
 */
async function chownToRoot(image: string, stage: string, workDir: string): Promise<void> {
  const paths: string[] = [];
  for (const p of await walk(stage)) {
    const st = await lstat(join(stage, p));
    if (st.uid !== 0 || st.gid !== 0) paths.push(p);
  }
  if (paths.length === 0) return;
  if (paths.some((p) => /[\s"\\]/.test(p))) throw new Error('staged guest paths must not contain blanks or quotes');
  const cmds = join(workDir, 'chown.debugfs');
  await writeFile(cmds, paths.flatMap((p) => [`set_inode_field ${p} uid 0`, `set_inode_field ${p} gid 0`]).join('\n') + '\n');
  const { stderr } = await run('debugfs', ['-w', '-f', cmds, image]);
  // debugfs reports failed commands on stderr but exits 0; its first line is a version banner.
  const errors = stderr.split('\n').filter((l) => l.trim() && !/^debugfs \d/.test(l));
  if (errors.length > 0) throw new Error(`debugfs chown failed: ${errors.slice(0, 3).join(' | ')}`);
}

export async function buildRootfs(opts: RootfsOptions): Promise<void> {
  const stage = join(opts.workDir, 'root');
  const conf = join(opts.workDir, 'mke2fs.conf');
  await rm(opts.workDir, { recursive: true, force: true });
  await mkdir(stage, { recursive: true });
  try {
    await stageRootfs(stage, opts.busybox, opts.release);
    await writeFile(conf, MKE2FS_CONF);
    await rm(opts.out, { force: true });
    await writeFile(opts.out, '');
    await truncate(opts.out, opts.sizeMiB * 1024 * 1024);
    await run('mke2fs', ['-q', '-F', '-t', 'ext4', '-L', 'kumo-root', '-E', 'root_owner=0:0', '-d', stage, opts.out], {
      env: { ...process.env, MKE2FS_CONFIG: conf },
    });
    await chownToRoot(opts.out, stage, opts.workDir);
  } finally {
    await rm(opts.workDir, { recursive: true, force: true });
  }
}
