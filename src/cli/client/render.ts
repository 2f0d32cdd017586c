/** Text renderings for `--output table`: aligned columns for lists, key/value lines for one object. */

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** One cell: scalars as they are, structs as `k=v`, arrays joined; empty things as "-" so columns stay readable. */
export function cell(v: unknown): string {
  if (v === undefined || v === null || v === '') return '-';
  if (Array.isArray(v)) return v.length ? v.map((x) => (isObj(x) ? `{${cell(x)}}` : cell(x))).join(', ') : '-';
  if (isObj(v)) {
    const e = Object.entries(v);
    return e.length ? e.map(([k, x]) => `${k}=${member(x)}`).join(' ') : '-';
  }
  return String(v);
}

/** A value inside `k=v`: no spaces, so the pairs stay apart. */
function member(v: unknown): string {
  if (Array.isArray(v) && !v.some((x) => isObj(x) || Array.isArray(x))) return v.length ? v.map(cell).join(',') : '-';
  return isObj(v) || Array.isArray(v) ? JSON.stringify(v) : cell(v);
}

export function table(rows: Obj[], columns?: string[]): string {
  if (!rows.length) return '(none)\n';
  const cols = columns ?? [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cells = [cols.map((c) => c.toUpperCase()), ...rows.map((r) => cols.map((c) => cell(r[c])))];
  const width = cols.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(width[i]))).join('  ').trimEnd()).join('\n') + '\n';
}

/** Key/value lines; an array of structs (disks, nics, members) gets one compact line per element. */
export function keyValues(o: Obj): string {
  const width = Math.max(...Object.keys(o).map((k) => k.length));
  const lines: string[] = [];
  for (const [k, v] of Object.entries(o)) {
    const items = Array.isArray(v) && v.length && v.every(isObj) ? v.map(cell) : [cell(v)];
    items.forEach((item, i) => lines.push(`${(i ? '' : k).padEnd(width)}  ${item}`));
  }
  return lines.join('\n') + '\n';
}

/** Whatever an operation returned, as text. */
export function text(v: unknown, columns?: string[]): string {
  if (Array.isArray(v)) return v.every(isObj) ? table(v, columns) : v.map(cell).join('\n') + '\n';
  if (isObj(v)) {
    const keys = Object.keys(v);
    // A creation's `{vmId: "vm-…"}`: the bare id, so `VM=$(kumo vm create …)` works.
    if (keys.length === 1 && !isObj(v[keys[0]]) && !Array.isArray(v[keys[0]])) return `${cell(v[keys[0]])}\n`;
    return keys.length ? keyValues(v) : '';
  }
  return v === null || v === undefined ? '' : `${cell(v)}\n`;
}
