import { formatBitrixDate } from './crm-store.js';

/**
 * A task as `tasks.task.get` returns it: camelCase keys, every scalar a string, `id` included
 * (DOCS:api-reference/tasks/tasks-task-get.md, fields.md). Callers write fields in upper case
 * (`TITLE`, `RESPONSIBLE_ID`, `STATUS`); camelCase is accepted too.
 */
export type Task = Record<string, unknown> & { id: string };

/**
 * A task field's REST name: the tasks controllers answer through the engine's converter,
 * plain snake_case to camelCase (CORE: main/lib/engine/response/converter.php
 * `OUTPUT_JSON_FORMAT`, main/lib/text/stringhelper.php `snake2camel`): `RESPONSIBLE_ID` →
 * `responsibleId`, `UF_CRM_TASK` → `ufCrmTask` (tasks-task-get.md's example). Not the CRM
 * items' rule (item-store.ts `camelKey`, which gave `ufCrm_TASK`). camelCase stays.
 */
export function taskKey(key: string): string {
  if (/[a-z]/.test(key)) return key;
  return key.toLowerCase().replace(/_+([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

/**
 * `status`: 2 pending, 3 in progress, 4 awaiting control, 5 completed, 6 deferred
 * (1 "new" is legacy and still accepted). Anything else is `ERROR_CORE` "Invalid status".
 */
export const TASK_STATUSES: ReadonlySet<string> = new Set(['1', '2', '3', '4', '5', '6']);

export interface TaskStore {
  readonly tasks: ReadonlyMap<string, Task>;
  add(fields: Record<string, unknown>, userId: number): Task;
  update(
    id: string,
    fields: Record<string, unknown>,
    userId: number,
  ): { task: Task; changed: boolean } | undefined;
  get(id: string): Task | undefined;
}

/** Thrown for a field value the portal refuses (mapped to `ERROR_CORE` by the REST layer). */
export class TaskFieldError extends Error {}

const stringify = (v: unknown): unknown =>
  v === null || v === undefined
    ? null
    : Array.isArray(v)
      ? v.map((x) => String(x))
      : typeof v === 'object'
        ? v
        : String(v);

function defaults(id: string, userId: number, date: string): Record<string, unknown> {
  const user = String(userId);
  return {
    id,
    parentId: null,
    title: `Task #${id}`,
    description: '',
    mark: null,
    priority: '1',
    multitask: 'N',
    notViewed: 'N',
    replicate: 'N',
    stageId: '0',
    createdBy: user,
    createdDate: date,
    responsibleId: user,
    changedBy: user,
    changedDate: date,
    statusChangedBy: user,
    statusChangedDate: date,
    closedBy: '0',
    closedDate: null,
    activityDate: date,
    dateStart: null,
    deadline: null,
    startDatePlan: null,
    endDatePlan: null,
    xmlId: null,
    commentsCount: '0',
    allowChangeDeadline: 'N',
    allowTimeTracking: 'N',
    taskControl: 'N',
    addInReport: 'N',
    timeEstimate: '0',
    matchWorkTime: 'N',
    siteId: 's1',
    subordinate: 'N',
    isMuted: 'N',
    isPinned: 'N',
    descriptionInBbcode: 'Y',
    status: '2',
    durationPlan: '0',
    durationType: 'days',
    favorite: 'N',
    groupId: '0',
    auditors: [],
    accomplices: [],
    ufCrmTask: [],
  };
}

export function createTaskStore(now: () => number): TaskStore {
  const tasks = new Map<string, Task>();
  let lastId = 0;

  const apply = (task: Task, fields: Record<string, unknown>, userId: number): boolean => {
    let changed = false;
    const statusBefore = task['status'];
    for (const [rawKey, raw] of Object.entries(fields)) {
      const key = taskKey(rawKey);
      if (key === 'id') continue;
      const value = stringify(raw);
      if (key === 'status' && !TASK_STATUSES.has(String(value))) {
        throw new TaskFieldError('Invalid status<br>');
      }
      if (JSON.stringify(task[key]) === JSON.stringify(value)) continue;
      task[key] = value;
      changed = true;
    }
    if (task['status'] !== statusBefore) {
      const date = formatBitrixDate(now());
      task['statusChangedBy'] = String(userId);
      task['statusChangedDate'] = date;
      const done = task['status'] === '5';
      task['closedBy'] = done ? String(userId) : '0';
      task['closedDate'] = done ? date : null;
    }
    return changed;
  };

  return {
    tasks,
    add(fields, userId) {
      const id = String(lastId + 1);
      const task = defaults(id, userId, formatBitrixDate(now())) as Task;
      apply(task, fields, userId);
      lastId += 1;
      tasks.set(id, task);
      return task;
    },
    update(id, fields, userId) {
      const task = tasks.get(id);
      if (!task) return undefined;
      const draft = { ...task };
      const changed = apply(draft, fields, userId);
      if (changed) {
        draft['changedBy'] = String(userId);
        draft['changedDate'] = formatBitrixDate(now());
        Object.assign(task, draft);
      }
      return { task, changed };
    },
    get(id) {
      return tasks.get(id);
    },
  };
}
