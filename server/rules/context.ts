import type { Entity, EventInfo } from './model.js';
import type { TemplateContext } from './templates.js';

/** What a finished step offers to later ones as `{{steps.<name>.…}}`. */
export interface StepOutput {
  /** The parsed response body (HTTP JSON, Bitrix24 `result`, Telegram `result`, …). */
  response: unknown;
  /** HTTP status where there is one. */
  status?: number;
}

export interface ContextInput {
  event: EventInfo;
  /** The event's record as loaded over REST; absent for delete events. */
  entity?: Entity;
  /** Related records loaded on demand, by root name: `{ contact, company }`. */
  related?: Readonly<Record<string, Entity | undefined>>;
  steps?: Readonly<Record<string, StepOutput>>;
  portal?: { domain: string; memberId: string };
}

/** Lower-case names a condition field or template path may start with. */
export const CONTEXT_ROOTS = [
  'event',
  'entity',
  'deal',
  'lead',
  'contact',
  'company',
  'quote',
  'invoice',
  'item',
  'task',
  'activity',
  'steps',
  'portal',
] as const;

/** Related records the processor can load for a deal/lead (by `CONTACT_ID`, `COMPANY_ID`). */
export const RELATED_ROOTS = ['contact', 'company'] as const;

/**
 * The context root the event's record also appears under: `deal` for a deal, `item` for a
 * smart-process item (`dynamic:<id>`), the type itself otherwise.
 */
export function entityRoot(
  entityType: string | null | undefined,
  eventName: string,
): string | undefined {
  const type = entityType ?? entityTypeOfEvent(eventName);
  if (!type) return undefined;
  if (type.startsWith('dynamic')) return 'item';
  return type;
}

/**
 * `ONCRMDEALUPDATE` → `deal`; `ONTASKADD` → `task`; `ONCRMINVOICESETSTATUS` → `invoice` (an
 * old invoice's status change, FIELDS[ID] the invoice's: CORE crm classes/general/
 * restservice_invoice.php `CCrmInvoiceRestService::processEvent`); unknown families → undefined.
 */
export function entityTypeOfEvent(eventName: string): string | undefined {
  const name = eventName.toUpperCase();
  if (name === 'ONCRMINVOICESETSTATUS') return 'invoice';
  // A deal moved to another pipeline: FIELDS[ID] is the deal's (DOCS: api-reference/crm/deals/
  // events/on-crm-deal-move-to-category.md), stored and read as a deal.
  if (name === 'ONCRMDEALMOVETOCATEGORY') return 'deal';
  const m =
    /^ON(CRM)?(DEAL|LEAD|CONTACT|COMPANY|QUOTE|INVOICE|ACTIVITY|DYNAMICITEM|TASK)(ADD|UPDATE|DELETE)/.exec(
      name,
    );
  if (!m) return undefined;
  return m[2] === 'DYNAMICITEM' ? 'dynamic' : m[2]?.toLowerCase();
}

/** Builds the context templates and conditions read. */
export function buildTemplateContext(input: ContextInput): TemplateContext {
  const ctx: Record<string, unknown> = {
    event: { ...input.event },
    steps: { ...(input.steps ?? {}) },
  };
  if (input.portal) ctx.portal = { ...input.portal };
  for (const [root, record] of Object.entries(input.related ?? {})) {
    if (record !== undefined) ctx[root] = record;
  }
  if (input.entity !== undefined) {
    ctx.entity = input.entity;
    const root = entityRoot(input.event.entityType, input.event.name);
    if (root) ctx[root] = input.entity;
  }
  return ctx;
}
