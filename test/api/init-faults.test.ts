/**
 * The init API's documented faults as Python's stock xmlrpc.client receives them (writeFile off the
 * whitelist, user-data over 64 KiB, malformed keys and addresses), and a valid call on a stopped VM
 * ending `succeeded` with the change stored for the next boot.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { Cloud } from '../helpers/cloud.js';
import { pythonEnv, runPython } from './support.js';

let cloud: Cloud;
before(async () => { cloud = await Cloud.up(); });
after(() => cloud.stop());

it('init API faults and a stored change, through Python\'s xmlrpc.client', async () => {
  const py = await runPython('haas_init_faults.py', pythonEnv(cloud.creds), 60_000);
  assert.equal(py.code, 0, py.stderr);
  const r = py.report;
  const fault = (name: string, message: RegExp) => {
    assert.equal(r[name].code, 5, `${name}: ${JSON.stringify(r[name])}`);
    assert.match(r[name].message, message, name);
  };
  fault('userData.64KiB+1', /65537 bytes; at most 65536 \(64 KiB\)/);
  fault('writeFile.notWhitelisted', /"\/etc\/shadow" is not on the operator's writeFile whitelist/);
  fault('writeFile.dotdot', /is not normalized/);
  fault('writeFile.notBase64', /content must be base64/);
  fault('writeFile.tooLarge', /65537 bytes; at most 65536/);
  fault('setSshKey.malformed', /not an OpenSSH public key/);
  fault('setSshKey.badUser', /user must be a Unix user name/);
  fault('setIpAddress.noPrefix', /address must be "ip\/prefix"/);
  assert.equal(r['setIpAddress.noSuchNic'].code, 3, JSON.stringify(r['setIpAddress.noSuchNic']));
  fault('setPassword.empty', /password must not be empty/);
  fault('setNetwork.badGateway', /gateway is not an IPv4 address/);
  assert.equal(r['setNetwork.unknownMember'].code, 5);
  assert.match(r['userData.64KiB'].returned, /^vm-/);
  const w = r['writeFile.stopped'];
  assert.equal(w.status, 'succeeded', JSON.stringify(w));
  assert.equal(w.result.stored, true);
  assert.match(w.result.message, /stored and applied at its next boot/);
});
