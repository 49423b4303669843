/**
 * What Bitrix24 scopes events and methods need. `event.bind` looks an event up only in the
 * scopes the app's token has (plus the global one) and answers ERROR_EVENT_NOT_FOUND for
 * the rest; a method outside them answers `insufficient_scope` (core `rest` module
 * lib/api/event.php `eventBind`). The scope list is b24restdocs
 * api-reference/scopes/permissions.md.
 */

/** The scope an event is declared in, or null for the global events (ONAPP*, ONOFFLINEEVENT). */
export function scopeOfEvent(event: string): string | null {
  const e = event.toUpperCase();
  if (e.startsWith('ONCRM')) return 'crm';
  if (e.startsWith('ONTASK')) return 'task';
  if (e.startsWith('ONUSER')) return 'user';
  return null;
}

/** Scopes any one of which grants a method; null for the global ones (batch, event.*, app.info…). */
export function scopesOfMethod(method: string): readonly string[] | null {
  const m = method.toLowerCase();
  if (m.startsWith('crm.')) return ['crm'];
  if (m.startsWith('tasks.') || m.startsWith('task.')) return ['task'];
  if (m.startsWith('placement.')) return ['placement'];
  if (m === 'user.current' || m === 'user.get') return ['user', 'user_brief', 'user_basic'];
  if (m.startsWith('user.') && m !== 'user.admin' && m !== 'user.access') return ['user'];
  if (m.startsWith('im.')) return ['im'];
  if (m.startsWith('disk.')) return ['disk'];
  if (m.startsWith('lists.')) return ['lists'];
  if (m.startsWith('sonet_group.')) return ['sonet_group'];
  if (m.startsWith('entity.')) return ['entity'];
  return null;
}

/** Context roots a rule reads (`task.TITLE`, `deal.STAGE_ID`) and the scope their records need. */
export function scopeOfRoot(root: string): string | null {
  if (['deal', 'lead', 'contact', 'company', 'quote', 'invoice', 'activity', 'item'].includes(root))
    return 'crm';
  if (root === 'task') return 'task';
  return null;
}

/**
 * The scopes the app has on a portal: manifest.json's (what the app form grants), narrowed to
 * what the portal reported in its last token answer when it reported any.
 */
export function grantedScopes(manifestScopes: readonly string[], portalScope?: string | null) {
  const own = manifestScopes.map((s) => s.trim().toLowerCase()).filter(Boolean);
  const reported = (portalScope ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  return reported.length > 0 ? own.filter((s) => reported.includes(s)) : own;
}

/** Why `need` is not enough, for an error message; undefined when one of `need` is granted. */
export function missingScope(
  need: readonly string[] | string | null,
  granted: readonly string[],
): string | undefined {
  if (need === null) return undefined;
  const list = typeof need === 'string' ? [need] : need;
  if (list.some((s) => granted.includes(s))) return undefined;
  return `needs the Bitrix24 scope "${list[0]}", which the app does not have (its scopes: ${granted.join(', ') || 'none'})`;
}
