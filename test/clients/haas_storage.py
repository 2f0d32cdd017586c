#!/usr/bin/env python3
"""The HaaS storage methods through Python's stock xmlrpc.client: storage nodes, a volume's
locations, addVolumeLocation / removeVolumeLocation as async requests, and their faults.

Environment: KUMO_RPC_URL, KUMO_ADMIN_USER/KEY, KUMO_TENANT_USER/KEY as for haas_scenario.py, and
KUMO_VOLUME (a volume of the tenant holding data on one node) and KUMO_NEW_NODE (another node).
Prints one JSON report of what it saw; the node test judges it.
"""
import json
import os
import urllib.parse
import xmlrpc.client

BASE = os.environ["KUMO_RPC_URL"]


def proxy(user, key):
    u = urllib.parse.urlsplit(BASE)
    cred = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(key, safe='')}"
    return xmlrpc.client.ServerProxy(f"{u.scheme}://{cred}@{u.netloc}{u.path}")


def fault_of(fn, *args):
    try:
        return {"returned": fn(*args)}
    except xmlrpc.client.Fault as f:
        return {"code": f.faultCode, "message": f.faultString}


def main():
    admin = proxy(os.environ["KUMO_ADMIN_USER"], os.environ["KUMO_ADMIN_KEY"])
    tenant = proxy(os.environ["KUMO_TENANT_USER"], os.environ["KUMO_TENANT_KEY"])
    vol, new = os.environ["KUMO_VOLUME"], os.environ["KUMO_NEW_NODE"]
    r = {"nodes": admin.getStorageNodeList(), "tenantNodes": fault_of(tenant.getStorageNodeList)}
    r["before"] = tenant.getVolumeInfo(vol)
    old = r["before"]["locations"][0]["nodeId"]
    r["removeOnly"] = fault_of(tenant.removeVolumeLocation, vol, old)
    r["addUnknown"] = fault_of(tenant.addVolumeLocation, vol, "node-000000000000")
    r["addExisting"] = fault_of(tenant.addVolumeLocation, vol, old)
    add = tenant.addVolumeLocation(vol, new)
    r["added"] = tenant.waitRequest(add, 60)
    r["withBoth"] = tenant.getVolumeInfo(vol)
    r["removed"] = tenant.waitRequest(tenant.removeVolumeLocation(vol, old), 60)
    r["after"] = tenant.getVolumeInfo(vol)
    r["removeLast"] = fault_of(tenant.removeVolumeLocation, vol, new)
    print(json.dumps({"old": old, **r}))


if __name__ == "__main__":
    main()
