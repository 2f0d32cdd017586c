#!/usr/bin/env python3
"""Bad input as Python's stock xmlrpc.client sends it. After every case the script makes one valid
call and records whether the server still answered it. Prints one JSON report: for each case the
fault code, the HTTP status (ProtocolError) or the exception, plus "servingAfter".
Environment: as haas_scenario.py.
"""
import json
import os
import sys
import urllib.parse
import xmlrpc.client

BASE = os.environ["KUMO_RPC_URL"]


def proxy(user, key):
    u = urllib.parse.urlsplit(BASE)
    if user is None:
        return xmlrpc.client.ServerProxy(BASE)
    cred = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(key, safe='')}"
    return xmlrpc.client.ServerProxy(f"{u.scheme}://{cred}@{u.netloc}{u.path}")


TENANT = (os.environ["KUMO_TENANT_USER"], os.environ["KUMO_TENANT_KEY"])
ADMIN = (os.environ["KUMO_ADMIN_USER"], os.environ["KUMO_ADMIN_KEY"])


def outcome(fn):
    try:
        return {"returned": fn()}
    except xmlrpc.client.Fault as f:
        return {"code": f.faultCode, "message": f.faultString[:300]}
    except xmlrpc.client.ProtocolError as e:
        return {"http": e.errcode}
    except Exception as e:  # a broken pipe or reset is a finding too, not a crash of the script
        return {"exception": f"{type(e).__name__}: {e}"[:300]}


def serving():
    # A fresh proxy each time: a case may leave its own connection unusable, the server must not be.
    try:
        return isinstance(proxy(*TENANT).getVmList(), list)
    except Exception as e:
        return f"{type(e).__name__}: {e}"[:300]


def main():
    t = proxy(*TENANT)
    a = proxy(*ADMIN)
    vm = t.allocateVm({"type": "be.small", "name": "py-bad-input"})
    cases = {
        "wrongType.getVmInfo(int)": lambda: t.getVmInfo(42),
        "wrongType.allocateVm(string)": lambda: t.allocateVm("be.small"),
        "wrongType.powerOffVm(force=string)": lambda: t.powerOffVm(vm, "yes"),
        "wrongType.systemDiskGiB(double)": lambda: t.allocateVm({"type": "be.small", "systemDiskGiB": 10.5}),
        "wrongCount.getVmInfo()": lambda: t.getVmInfo(),
        "wrongCount.getVmInfo(a,b)": lambda: t.getVmInfo(vm, vm),
        "wrongCount.getVmList(x)": lambda: t.getVmList("extra"),
        "unknownMember.allocateVm": lambda: t.allocateVm({"type": "be.small", "colour": "blue"}),
        "unknownMember.createTenant.quota": lambda: a.createTenant({"name": "py-bad", "quota": {"vms": 1, "gpus": 2}}),
        "unknownMethod": lambda: t.noSuchMethod(),
        "string1MB.allocateVm.name": lambda: t.allocateVm({"type": "be.small", "name": "n" * 1_000_000}),
        "string1MB.setResourceComment": lambda: t.setResourceComment(vm, "c" * 1_000_000),
        "negative.systemDiskGiB": lambda: t.allocateVm({"type": "be.small", "systemDiskGiB": -10}),
        "negative.allocateVolume.sizeGiB": lambda: t.allocateVolume({"sizeGiB": -1}),
        "negative.waitRequest.timeout": lambda: t.waitRequest("req-000000000000", -1),
        "body5MiB": lambda: t.getVmInfo("x" * (5 << 20)),
        "noCredentials": lambda: proxy(None, None).getVmList(),
        "wrongKey": lambda: proxy(TENANT[0], "not-the-key").getVmList(),
        "keyOfAnotherUser": lambda: proxy(TENANT[0], ADMIN[1]).getVmList(),
    }
    report = {}
    for name, fn in cases.items():
        report[name] = outcome(fn)
        report[name]["servingAfter"] = serving()
    report["vmsNamedBadly"] = [v["name"] for v in t.getVmList() if len(v["name"]) > 63]
    t.deallocateVm(vm)
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
