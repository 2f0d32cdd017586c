/**
 * At most `n` calls of `fn` at a time; the rest wait their turn in order. For fan-outs that would
 * otherwise open a connection per caller at once (a boot storm's metadata misses).
 */
export function limited<A extends unknown[], T>(n: number, fn: (...args: A) => Promise<T>): (...args: A) => Promise<T> {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async (...args: A) => {
    if (running >= n) await new Promise<void>((go) => waiting.push(go));
    else running++;
    try {
      return await fn(...args);
    } finally {
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  };
}
