/**
 * Runs a database write again while SQLite reports the database busy or locked: the main
 * thread's connection waits only briefly for a lock (the intake writer, on its own thread,
 * comes first), and a reconcile or recovered event must not be dropped for that.
 */
export async function whileBusy<T>(write: () => Promise<T>, attempts = 6): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await write();
    } catch (e) {
      const code = String((e as { code?: unknown } | null)?.code ?? '');
      if (i >= attempts || !/^SQLITE_(BUSY|LOCKED)/.test(code)) throw e;
      await new Promise((r) => setTimeout(r, 50 * 2 ** (i - 1)));
    }
  }
}
