/**
 * Orderings for compiled configs. Strings compare by UTF-16 code unit (`<`), never localeCompare:
 * the output must be byte-identical on every controller whatever its locale.
 */

export const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
export const byNumber = (a: number, b: number): number => a - b;

/** A new array: sorted, duplicates dropped. */
export function sortedUnique<T extends string | number>(xs: Iterable<T>): T[] {
  const out = [...new Set(xs)];
  if (out.length > 1) out.sort((typeof out[0] === 'number' ? byNumber : byText) as (a: T, b: T) => number);
  return out;
}

/** a − b and b − a of two sorted, duplicate-free arrays, in one merge walk. */
export function sortedDelta<T extends string | number>(a: readonly T[], b: readonly T[]): { added: T[]; removed: T[] } {
  const added: T[] = [], removed: T[] = [];
  let i = 0, j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i] < b[j])) removed.push(a[i++]);
    else if (i >= a.length || b[j] < a[i]) added.push(b[j++]);
    else { i++; j++; }
  }
  return { added, removed };
}
