/** The value, or undefined when it fails or takes longer than `ms` (the wait never holds the process). */
export function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    timer.unref();
    p.then(
      (v) => resolve(v),
      () => resolve(undefined),
    ).finally(() => clearTimeout(timer));
  });
}
