/** How each kind of destination key reads: `http:erp.example#7` is the host `erp.example`. */
const NAMED: Readonly<Record<string, (where: string) => string>> = {
  http: (host) => host,
  rest: (domain) => `Bitrix24 ${domain}`,
  telegram: (host) => `Telegram (${host})`,
  smtp: (host) => `SMTP ${host}`,
  sms: (host) => `SMS ${host}`,
};

/**
 * A destination as people read it (pages, alerts, errors, the CLI's table): the host, or the
 * channel and its host, without the `#<portal id>` that keeps one portal's host apart from
 * another's (an internal id) and without the key's kind (`http:127.0.0.1:4555` read as a
 * broken URL, and a portal's alerts said `http:erp.example#7`: a walk). The whole key stays in
 * `status --json`, `/metrics` and the alert state.
 */
export const destinationName = (key: string): string => {
  const at = key.indexOf(':');
  const where = key.slice(at + 1).replace(/#\d+$/, '');
  const named = at > 0 ? NAMED[key.slice(0, at)] : undefined;
  return named ? named(where) : key.replace(/#\d+$/, '');
};
