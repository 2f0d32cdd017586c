/**
 * Linux interface names as the SDN devices use them (host uplinks, edge ports, gateway downlinks):
 * 1–15 bytes (IFNAMSIZ 16 with its NUL), no '/', ':' or whitespace, and not '.' or '..'. kumo also
 * keeps them to characters safe in `ip -batch` lines and nft rules.
 */
const IFNAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;

export const isInterfaceName = (s: string) => IFNAME.test(s);
