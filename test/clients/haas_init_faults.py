#!/usr/bin/env python3
"""The init API and user-data as Python's stock xmlrpc.client sees them: bad input gets a fault
(code and message in the report), a valid call on a stopped VM returns a request that ends
succeeded with the change stored for the next boot. Prints one JSON report.
Environment: as haas_scenario.py.
"""
import base64
import json
import os
import sys
import urllib.parse
import xmlrpc.client

BASE = os.environ["KUMO_RPC_URL"]
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl py@kumo"


def proxy():
    u = urllib.parse.urlsplit(BASE)
    user, key = os.environ["KUMO_TENANT_USER"], os.environ["KUMO_TENANT_KEY"]
    cred = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(key, safe='')}"
    return xmlrpc.client.ServerProxy(f"{u.scheme}://{cred}@{u.netloc}{u.path}")


def outcome(fn):
    try:
        return {"returned": fn()}
    except xmlrpc.client.Fault as f:
        return {"code": f.faultCode, "message": f.faultString[:300]}
    except Exception as e:
        return {"exception": f"{type(e).__name__}: {e}"[:300]}


def main():
    t = proxy()
    vm = t.allocateVm({"type": "be.small", "name": "py-init"})
    b64 = lambda s: base64.b64encode(s.encode()).decode()
    cases = {
        "userData.64KiB+1": lambda: t.allocateVm({"type": "be.small", "userData": "x" * (64 * 1024 + 1)}),
        "writeFile.notWhitelisted": lambda: t.writeFile(vm, "/etc/shadow", b64("root::0:0:::::\n")),
        "writeFile.dotdot": lambda: t.writeFile(vm, "/etc/kumo/../shadow", b64("x")),
        "writeFile.notBase64": lambda: t.writeFile(vm, "/etc/motd", "not base64!"),
        "writeFile.tooLarge": lambda: t.writeFile(vm, "/etc/motd", b64("m" * (64 * 1024 + 1))),
        "setSshKey.malformed": lambda: t.setSshKey(vm, "root", "ssh-ed25519 bm90IGEga2V5"),
        "setSshKey.badUser": lambda: t.setSshKey(vm, "Root User", KEY),
        "setIpAddress.noPrefix": lambda: t.setIpAddress(vm, 0, "10.0.0.5"),
        "setIpAddress.noSuchNic": lambda: t.setIpAddress(vm, 7, "10.0.0.5/24"),
        "setPassword.empty": lambda: t.setPassword(vm, "root", ""),
        "setNetwork.badGateway": lambda: t.setNetwork(vm, {"gateway": "10.0.0.300"}),
        "setNetwork.unknownMember": lambda: t.setNetwork(vm, {"gw": "10.0.0.1"}),
    }
    report = {name: outcome(fn) for name, fn in cases.items()}
    ok = t.allocateVm({"type": "be.small", "userData": "#!/bin/sh\necho hi\n" + "#" * (64 * 1024 - 18)})
    report["userData.64KiB"] = {"returned": ok}
    req = t.writeFile(vm, "/etc/motd", b64("hello from python\n"))
    report["writeFile.stopped"] = t.waitRequest(req, 30)
    t.deallocateVm(vm)
    t.deallocateVm(ok)
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
