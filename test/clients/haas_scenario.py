#!/usr/bin/env python3
"""Drives kumo's HaaS XML-RPC API with Python's stock xmlrpc.client, a client nobody on kumo wrote.

Credentials come from the environment (KUMO_RPC_URL without credentials, KUMO_ADMIN_USER/KEY,
KUMO_TENANT_USER/KEY). Prints one JSON report on stdout; the node test asserts on its values, so this
script records what it saw rather than judging it. Anything unexpected (a fault where a value was
due) raises and ends the script with a traceback on stderr.
"""
import json
import os
import secrets
import sys
import time
import urllib.parse
import xmlrpc.client

BASE = os.environ["KUMO_RPC_URL"]


def proxy(user, key):
    # The form the contract promises to work: http://USER:KEY@host:port/RPC2.
    u = urllib.parse.urlsplit(BASE)
    cred = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(key, safe='')}"
    return xmlrpc.client.ServerProxy(f"{u.scheme}://{cred}@{u.netloc}{u.path}", allow_none=False)


def fault_of(fn, *args):
    """The fault a call raised, or what it returned when it did not fault."""
    try:
        return {"returned": fn(*args)}
    except xmlrpc.client.Fault as f:
        return {"code": f.faultCode, "message": f.faultString}


def poll_until_done(api, request_id, limit_s=20.0):
    """Polls getRequestIdInfo the way pre-waitRequest clients do; returns every status seen, in order."""
    seen = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        info = api.getRequestIdInfo(request_id)
        if not seen or seen[-1] != info["status"]:
            seen.append(info["status"])
        if info["status"] in ("succeeded", "failed", "cancelled"):
            return seen, info
        time.sleep(0.05)
    return seen, None


def new_tenant(admin, prefix, quota=None):
    spec = {"name": f"{prefix}-{secrets.token_hex(3)}"}
    if quota is not None:
        spec["quota"] = quota
    tenant_id = admin.createTenant(spec)
    user = admin.createApiUser(tenant_id)
    return tenant_id, proxy(user["user"], user["key"]), user


def main():
    admin = proxy(os.environ["KUMO_ADMIN_USER"], os.environ["KUMO_ADMIN_KEY"])
    tenant = proxy(os.environ["KUMO_TENANT_USER"], os.environ["KUMO_TENANT_KEY"])
    report = {}

    # --- the life of one VM -------------------------------------------------------------
    report["types"] = [t["type"] for t in tenant.getVmTypeList()]
    vm = tenant.allocateVm({"type": "be.small", "name": "py-scenario"})
    report["vmId"] = vm
    info = tenant.getVmInfo(vm)
    report["allocated"] = {"status": info["status"], "power": info["power"], "disks": len(info["disks"]),
                           "systemDiskSlot": info["disks"][0]["slot"] if info["disks"] else None}

    on = tenant.powerOnVm(vm)
    report["powerOn"] = {"requestId": on, "statusRightAfter": tenant.getVmStatus(vm)}
    seen, polled = poll_until_done(tenant, on)
    report["powerOn"]["polledStatuses"] = seen
    report["powerOn"]["polled"] = polled
    report["powerOn"]["waited"] = tenant.waitRequest(on, 10)
    report["statusAfterOn"] = tenant.getVmStatus(vm)

    # --- another tenant sees nothing of it ------------------------------------------------
    other_id, other, other_user = new_tenant(admin, "py-other")
    report["other"] = {
        "tenantId": other_id, "user": other_user["user"],
        "getVmInfo": fault_of(other.getVmInfo, vm),
        "getVmStatus": fault_of(other.getVmStatus, vm),
        "powerOffVm": fault_of(other.powerOffVm, vm),
        "getRequestIdInfo": fault_of(other.getRequestIdInfo, on),
        "listHasVm": any(v["vmId"] == vm for v in other.getVmList()),
        "adminListHasVm": any(v["vmId"] == vm for v in admin.getVmList()),
    }

    # --- tenant users may not call admin methods ------------------------------------------
    report["adminMethods"] = {
        "getHostList": fault_of(tenant.getHostList),
        "createTenant": fault_of(tenant.createTenant, {"name": "py-not-allowed"}),
        "putVmType": fault_of(tenant.putVmType, {"type": "py.nope", "vcpus": 1, "memoryMiB": 512,
                                                 "systemDiskGiB": 10, "resourceType": "best-effort"}),
    }

    # --- power off and give the slot back ---------------------------------------------------
    off = tenant.powerOffVm(vm)
    report["powerOff"] = {"requestId": off, "waited": tenant.waitRequest(off, 15)}
    report["statusAfterOff"] = tenant.getVmStatus(vm)
    report["deallocate"] = tenant.deallocateVm(vm)
    report["afterDeallocate"] = fault_of(tenant.getVmInfo, vm)

    # --- quota: a contract limit of one VM ----------------------------------------------------
    _, small, _ = new_tenant(admin, "py-quota", {"vms": 1})
    first = small.allocateVm({"type": "be.small"})
    report["quota"] = {"first": first, "second": fault_of(small.allocateVm, {"type": "be.small"}),
                       "vmsAfter": len(small.getVmList())}
    small.deallocateVm(first)

    # --- capacity: a guaranteed type bigger than any host ---------------------------------------
    hosts = admin.getHostList()
    vcpus = min(256, max(h["vcpus"] for h in hosts) + 1)
    memory = min(4194304, max(h["memoryMiB"] for h in hosts) * 2)
    huge = f"py.huge-{secrets.token_hex(2)}"
    report["capacity"] = {"hosts": len(hosts), "type": {"vcpus": vcpus, "memoryMiB": memory},
                          "putVmType": admin.putVmType({"type": huge, "vcpus": vcpus, "memoryMiB": memory,
                                                        "systemDiskGiB": 10, "resourceType": "guaranteed"})}
    # A quota far above the host, so the capacity check is what refuses.
    _, big, _ = new_tenant(admin, "py-cap", {"vcpus": 4000, "memoryMiB": 8388608})
    bigvm = big.allocateVm({"type": huge})
    report["capacity"]["powerOn"] = fault_of(big.powerOnVm, bigvm)
    report["capacity"]["statusAfter"] = big.getVmStatus(bigvm)
    report["capacity"]["deallocate"] = big.deallocateVm(bigvm)

    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
