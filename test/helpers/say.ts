const t0 = Date.now();

/** A progress line for long tests and benches, stamped with the seconds since this process began its work. */
export const say = (s: string): void => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${s}`);
