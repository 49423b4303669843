import type { EntityDefinition } from './crm-store.js';
import type { CrmItem } from './types.js';

/**
 * Field sets modelled on the `crm.deal.get` / `crm.lead.get` / `crm.contact.get` /
 * `crm.company.get` doc examples (DOCS:api-reference/crm/*). Empty links follow what portals return: no contact
 * is `null`, no company is `"0"`.
 */

export const DEAL: EntityDefinition = {
  savedOnlyWhenChanged: true,
  defaults: (id, userId, date) => ({
    ID: id,
    TITLE: `Deal #${id}`,
    TYPE_ID: 'SALE',
    STAGE_ID: 'NEW',
    CATEGORY_ID: '0',
    STAGE_SEMANTIC_ID: 'P',
    IS_NEW: 'Y',
    PROBABILITY: null,
    CURRENCY_ID: 'USD',
    OPPORTUNITY: '0.00',
    IS_MANUAL_OPPORTUNITY: 'N',
    TAX_VALUE: '0.00',
    LEAD_ID: null,
    COMPANY_ID: '0',
    CONTACT_ID: null,
    QUOTE_ID: null,
    BEGINDATE: date,
    CLOSEDATE: null,
    ASSIGNED_BY_ID: String(userId),
    CREATED_BY_ID: String(userId),
    MODIFY_BY_ID: String(userId),
    DATE_CREATE: date,
    DATE_MODIFY: date,
    OPENED: 'Y',
    CLOSED: 'N',
    COMMENTS: null,
    SOURCE_ID: null,
    ORIGINATOR_ID: null,
    ORIGIN_ID: null,
  }),
  derive: (deal: CrmItem) => {
    const stage = String(deal['STAGE_ID'] ?? 'NEW');
    const bare = stage.includes(':') ? stage.slice(stage.indexOf(':') + 1) : stage;
    const semantic = bare === 'WON' ? 'S' : bare === 'LOSE' ? 'F' : 'P';
    deal['STAGE_SEMANTIC_ID'] = semantic;
    deal['CLOSED'] = semantic === 'P' ? 'N' : 'Y';
    deal['IS_NEW'] = bare === 'NEW' ? 'Y' : 'N';
  },
};

/**
 * A lead as `crm.lead.get` answers it (DOCS:api-reference/crm/leads/crm-lead-get.md): the
 * example's fields, `STATUS_SEMANTIC_ID` S for a converted lead, F for junk, else P (the same
 * page), `DATE_CLOSED` "" while it is open.
 */
export const LEAD: EntityDefinition = {
  savedOnlyWhenChanged: true,
  defaults: (id, userId, date) => ({
    ID: id,
    TITLE: `Lead #${id}`,
    HONORIFIC: null,
    NAME: '',
    SECOND_NAME: null,
    LAST_NAME: null,
    COMPANY_TITLE: null,
    COMPANY_ID: null,
    CONTACT_ID: null,
    IS_RETURN_CUSTOMER: 'N',
    BIRTHDATE: '',
    SOURCE_ID: null,
    SOURCE_DESCRIPTION: null,
    STATUS_ID: 'NEW',
    STATUS_DESCRIPTION: null,
    POST: null,
    COMMENTS: null,
    CURRENCY_ID: 'USD',
    OPPORTUNITY: '0.00',
    IS_MANUAL_OPPORTUNITY: 'N',
    HAS_PHONE: 'N',
    HAS_EMAIL: 'N',
    HAS_IMOL: 'N',
    ASSIGNED_BY_ID: String(userId),
    CREATED_BY_ID: String(userId),
    MODIFY_BY_ID: String(userId),
    DATE_CREATE: date,
    DATE_MODIFY: date,
    DATE_CLOSED: '',
    STATUS_SEMANTIC_ID: 'P',
    OPENED: 'Y',
    ORIGINATOR_ID: null,
    ORIGIN_ID: null,
    MOVED_BY_ID: String(userId),
    MOVED_TIME: date,
    UTM_SOURCE: null,
    UTM_MEDIUM: null,
    UTM_CAMPAIGN: null,
    UTM_CONTENT: null,
    UTM_TERM: null,
  }),
  derive: (lead: CrmItem) => {
    const status = String(lead['STATUS_ID'] ?? 'NEW');
    lead['STATUS_SEMANTIC_ID'] = status === 'CONVERTED' ? 'S' : status === 'JUNK' ? 'F' : 'P';
    if (lead['STATUS_SEMANTIC_ID'] === 'P') lead['DATE_CLOSED'] = '';
    else if (!lead['DATE_CLOSED']) lead['DATE_CLOSED'] = lead['DATE_MODIFY'];
  },
};

/** Activity types `crm.activity.add` accepts, with their providers (CCrmActivityType). */
const ACTIVITY_PROVIDERS: Record<string, [string, string]> = {
  '1': ['CRM_MEETING', 'MEETING'],
  '2': ['VOXIMPLANT_CALL', 'CALL'],
  '4': ['CRM_EMAIL', 'EMAIL'],
};
export const ACTIVITY_TYPES: readonly string[] = Object.keys(ACTIVITY_PROVIDERS);

/**
 * An activity as `crm.activity.get` answers it
 * (DOCS:api-reference/crm/timeline/activities/activity-base/crm-activity-get.md): the
 * example's fields (no COMMUNICATIONS); STATUS 2 when COMPLETED is Y, else 1; the provider
 * of its type; LAST_UPDATED and EDITOR_ID where other records have DATE_MODIFY and
 * MODIFY_BY_ID.
 */
export const ACTIVITY: EntityDefinition = {
  defaults: (id, userId, date) => ({
    ID: id,
    OWNER_ID: null,
    OWNER_TYPE_ID: null,
    TYPE_ID: '2',
    PROVIDER_ID: 'VOXIMPLANT_CALL',
    PROVIDER_TYPE_ID: 'CALL',
    PROVIDER_GROUP_ID: null,
    ASSOCIATED_ENTITY_ID: '0',
    SUBJECT: '',
    CREATED: date,
    LAST_UPDATED: date,
    START_TIME: date,
    END_TIME: date,
    DEADLINE: date,
    COMPLETED: 'N',
    STATUS: '1',
    RESPONSIBLE_ID: String(userId),
    PRIORITY: '2',
    NOTIFY_TYPE: '1',
    NOTIFY_VALUE: '15',
    DESCRIPTION: '',
    DESCRIPTION_TYPE: '1',
    DIRECTION: '2',
    LOCATION: '',
    SETTINGS: [],
    ORIGINATOR_ID: null,
    ORIGIN_ID: null,
    AUTHOR_ID: String(userId),
    EDITOR_ID: String(userId),
    PROVIDER_PARAMS: [],
    PROVIDER_DATA: null,
    RESULT_MARK: '0',
    RESULT_VALUE: null,
    RESULT_SUM: null,
    RESULT_CURRENCY_ID: null,
    RESULT_STATUS: '0',
    RESULT_STREAM: '0',
    RESULT_SOURCE_ID: null,
    AUTOCOMPLETE_RULE: '0',
  }),
  derive: (activity: CrmItem) => {
    const [provider, providerType] = ACTIVITY_PROVIDERS[String(activity['TYPE_ID'])] ?? [];
    if (provider) activity['PROVIDER_ID'] = provider;
    if (providerType) activity['PROVIDER_TYPE_ID'] = providerType;
    activity['STATUS'] = activity['COMPLETED'] === 'Y' ? '2' : '1';
    delete activity['COMMUNICATIONS'];
    if (activity['DATE_MODIFY'] !== undefined) activity['LAST_UPDATED'] = activity['DATE_MODIFY'];
    if (activity['MODIFY_BY_ID'] !== undefined) activity['EDITOR_ID'] = activity['MODIFY_BY_ID'];
    delete activity['DATE_MODIFY'];
    delete activity['MODIFY_BY_ID'];
  },
};

export const CONTACT: EntityDefinition = {
  savedOnlyWhenChanged: true,
  defaults: (id, userId, date) => ({
    ID: id,
    HONORIFIC: null,
    NAME: '',
    SECOND_NAME: null,
    LAST_NAME: '',
    TYPE_ID: 'CLIENT',
    SOURCE_ID: null,
    COMPANY_ID: null,
    POST: null,
    COMMENTS: null,
    OPENED: 'Y',
    EXPORT: 'Y',
    HAS_PHONE: 'N',
    HAS_EMAIL: 'N',
    HAS_IMOL: 'N',
    ASSIGNED_BY_ID: String(userId),
    CREATED_BY_ID: String(userId),
    MODIFY_BY_ID: String(userId),
    DATE_CREATE: date,
    DATE_MODIFY: date,
  }),
};

export const COMPANY: EntityDefinition = {
  savedOnlyWhenChanged: true,
  defaults: (id, userId, date) => ({
    ID: id,
    TITLE: `Company #${id}`,
    COMPANY_TYPE: 'CUSTOMER',
    INDUSTRY: null,
    REVENUE: null,
    CURRENCY_ID: 'USD',
    COMMENTS: null,
    OPENED: 'Y',
    HAS_PHONE: 'N',
    HAS_EMAIL: 'N',
    HAS_IMOL: 'N',
    ASSIGNED_BY_ID: String(userId),
    CREATED_BY_ID: String(userId),
    MODIFY_BY_ID: String(userId),
    DATE_CREATE: date,
    DATE_MODIFY: date,
  }),
};
