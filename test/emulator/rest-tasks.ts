import { fireInBackground, restOrigin } from './event-delivery.js';
import { isRecord } from './http-util.js';
import type { PhpValue } from './php-form.js';
import { param, paramString, RestError, type MethodHandler } from './rest-error.js';
import { TaskFieldError, taskKey, type Task } from './task-store.js';

/**
 * `tasks.task.*` (DOCS:api-reference/tasks/tasks-task-*.md). Answers wrap the record as
 * `{task}`; a task that does not exist (or is not visible) reads as an empty `result: []`
 * rather than an error. Task errors use numeric-looking codes (`0`, `100`) or `ERROR_CORE`.
 */

function taskId(params: Record<string, unknown>): string {
  const raw = param(params, 'taskId');
  if (raw === undefined || raw === null || raw === '') {
    throw new RestError(
      400,
      '100',
      'CTaskItem All parameters in the constructor must have real class type (internal error)',
    );
  }
  const s = String(raw);
  if (!/^\d+$/.test(s) || Number(s) <= 0) throw new RestError(400, '0', 'wrong task id');
  return String(Number(s));
}

function taskFields(params: Record<string, unknown>): Record<string, unknown> {
  const fields = param(params, 'fields');
  if (!isRecord(fields) || Object.keys(fields).length === 0) {
    throw new RestError(400, '100', 'Could not find value for parameter {fields} (internal error)');
  }
  return fields;
}

/**
 * `select` by upper-case names (`TITLE`), answered in camelCase. `*` or none is every field
 * *but* the user fields (`ufCrmTask`, the CRM records the task is bound to, and the
 * portal's own `UF_*`): those come only when some `UF_` name is in the select, and then `*`
 * brings all of them (CORE: tasks/lib/rest/controllers/task.php `prepareSelect`, whose valid
 * keys are `CTasks::getFieldsInfo($this->isUfExist($select))`; DOCS:
 * api-reference/tasks/tasks-task-get.md, "By default, it returns all fields except for
 * custom ones … To obtain system UF_CRM_TASK … specify them in SELECT").
 */
function project(task: Task, select: unknown): Task {
  const names = (Array.isArray(select) ? select : isRecord(select) ? Object.values(select) : [])
    .map((s) => String(s))
    .filter((s) => s.length > 0);
  if (names.length === 0 || names.includes('*')) {
    if (names.some((n) => n.startsWith('UF_'))) return { ...task };
    return Object.fromEntries(Object.entries(task).filter(([k]) => !/^uf[A-Z_]/.test(k))) as Task;
  }
  const out: Task = { id: task.id };
  for (const n of names) {
    const key = taskKey(n);
    if (key in task) out[key] = task[key];
  }
  return out;
}

const coreError = (e: unknown): never => {
  if (e instanceof TaskFieldError) throw new RestError(400, 'ERROR_CORE', e.message);
  throw e;
};

/**
 * ONTASKADD / ONTASKUPDATE data: only the ID on each side; a side that does not exist is the
 * string "undefined" (on-task-add.md, on-task-update.md examples).
 */
export function taskEventData(action: 'ADD' | 'UPDATE', id: string): PhpValue {
  return action === 'ADD'
    ? {
        FIELDS_BEFORE: 'undefined',
        FIELDS_AFTER: { ID: id },
        IS_ACCESSIBLE_BEFORE: 'N',
        IS_ACCESSIBLE_AFTER: 'undefined',
      }
    : {
        FIELDS_BEFORE: { ID: id },
        FIELDS_AFTER: { ID: id },
        IS_ACCESSIBLE_BEFORE: 'undefined',
        IS_ACCESSIBLE_AFTER: 'undefined',
      };
}

/**
 * ONTASKCOMMENTADD data as the core sends it with the task form with chat, on in every
 * portal now (CORE tasks classes/general/commentitem.php `onEventFilter`: when
 * `FormV2Feature::isOn()`, which lib/V2/FormV2Feature.php answers true, FIELDS_AFTER is
 * `['ID' => 0, 'MESSAGE_ID' => <the chat message>, 'TASK_ID' => <the task>]`;
 * DOCS:api-reference/tasks/comment-item/events-comment/on-task-comment-add.md, "tasks
 * 25.700.0"). Every comment's `ID` is 0.
 */
export function taskCommentAddData(taskId: string, messageId: string): PhpValue {
  return {
    FIELDS_BEFORE: 'undefined',
    FIELDS_AFTER: { ID: 0, MESSAGE_ID: Number(messageId), TASK_ID: Number(taskId) },
    IS_ACCESSIBLE_BEFORE: 'N',
    IS_ACCESSIBLE_AFTER: 'undefined',
  };
}

export const TASK_METHODS: Readonly<Record<string, MethodHandler>> = {
  // A task that does not exist, or that the user may not see, is `result: []`, not an error:
  // DOCS:api-reference/tasks/tasks-task-get.md ("Returns an empty array "result":[], if the
  // task does not exist or the user does not have access to the task"); the tasks module's
  // rest/controllers/task.php `getAction` catches the not-accessible exception and returns [].
  'tasks.task.get': (params, _c, portal) => {
    const task = portal.tasks.get(taskId(params));
    return { result: task ? { task: project(task, param(params, 'select')) } : [] };
  },
  'tasks.task.add': (params, call, portal) => {
    const fields = taskFields(params);
    if (paramString(fields, 'TITLE').trim() === '') {
      throw new RestError(400, 'ERROR_CORE', 'Task name is not specified<br>');
    }
    let task: Task;
    try {
      task = portal.tasks.add(fields, call.userId);
    } catch (e) {
      return coreError(e);
    }
    fireInBackground(
      portal,
      'ONTASKADD',
      taskEventData('ADD', task.id),
      call.userId,
      restOrigin(call),
    );
    return { result: { task: { ...task } } };
  },
  'tasks.task.update': (params, call, portal) => {
    const id = taskId(params);
    const fields = taskFields(params);
    let done: ReturnType<typeof portal.tasks.update>;
    try {
      done = portal.tasks.update(id, fields, call.userId);
    } catch (e) {
      return coreError(e);
    }
    if (!done) throw new RestError(400, '0', 'Action on the task is not allowed (internal error)');
    fireInBackground(
      portal,
      'ONTASKUPDATE',
      taskEventData('UPDATE', id),
      call.userId,
      restOrigin(call),
    );
    return { result: { task: { ...done.task } } };
  },
};
