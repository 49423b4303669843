import type { Lang } from '../lib/lang.js';

/** Events the subscriptions page offers, with what they mean (the event pages of
 * https://apidocs.bitrix24.com/api-reference/events/events.html). */
export const SUPPORTED_EVENTS: ReadonlyArray<{ name: string; en: string; ru: string }> = [
  { name: 'ONCRMDEALADD', en: 'A deal was created', ru: 'Создана сделка' },
  { name: 'ONCRMDEALUPDATE', en: 'A deal was changed', ru: 'Изменена сделка' },
  { name: 'ONCRMDEALDELETE', en: 'A deal was deleted', ru: 'Удалена сделка' },
  { name: 'ONCRMLEADADD', en: 'A lead was created', ru: 'Создан лид' },
  { name: 'ONCRMLEADUPDATE', en: 'A lead was changed', ru: 'Изменён лид' },
  { name: 'ONCRMCONTACTADD', en: 'A contact was created', ru: 'Создан контакт' },
  { name: 'ONCRMCONTACTUPDATE', en: 'A contact was changed', ru: 'Изменён контакт' },
  { name: 'ONCRMCOMPANYADD', en: 'A company was created', ru: 'Создана компания' },
  { name: 'ONCRMCOMPANYUPDATE', en: 'A company was changed', ru: 'Изменена компания' },
  { name: 'ONCRMACTIVITYADD', en: 'An activity was created', ru: 'Создано дело' },
  { name: 'ONCRMACTIVITYUPDATE', en: 'An activity was changed', ru: 'Изменено дело' },
  { name: 'ONCRMQUOTEADD', en: 'A quote was created', ru: 'Создано предложение' },
  { name: 'ONCRMQUOTEUPDATE', en: 'A quote was changed', ru: 'Изменено предложение' },
  { name: 'ONTASKADD', en: 'A task was created', ru: 'Создана задача' },
  { name: 'ONTASKUPDATE', en: 'A task was changed', ru: 'Изменена задача' },
];

/**
 * Events not offered on the subscriptions page (an operator binds them through B24_EVENTS)
 * whose meaning the log and the deal tab still say: a call made in a deal and then deleted
 * shows in the deal's tab as "An activity was deleted", not as a code alone.
 */
export const NAMED_EVENTS: ReadonlyArray<{ name: string; en: string; ru: string }> = [
  ...SUPPORTED_EVENTS,
  {
    name: 'ONCRMDEALMOVETOCATEGORY',
    en: 'A deal moved to another pipeline',
    ru: 'Сделка перенесена в другую воронку',
  },
  { name: 'ONCRMLEADDELETE', en: 'A lead was deleted', ru: 'Удалён лид' },
  { name: 'ONCRMCONTACTDELETE', en: 'A contact was deleted', ru: 'Удалён контакт' },
  { name: 'ONCRMCOMPANYDELETE', en: 'A company was deleted', ru: 'Удалена компания' },
  { name: 'ONCRMACTIVITYDELETE', en: 'An activity was deleted', ru: 'Удалено дело' },
  { name: 'ONCRMQUOTEDELETE', en: 'A quote was deleted', ru: 'Удалено предложение' },
  { name: 'ONCRMINVOICEADD', en: 'An invoice was created', ru: 'Создан счёт' },
  { name: 'ONCRMINVOICEUPDATE', en: 'An invoice was changed', ru: 'Изменён счёт' },
  { name: 'ONCRMINVOICESETSTATUS', en: 'An invoice’s status was set', ru: 'Задан статус счёта' },
  { name: 'ONCRMINVOICEDELETE', en: 'An invoice was deleted', ru: 'Удалён счёт' },
  { name: 'ONCRMDYNAMICITEMADD', en: 'An item was created', ru: 'Создан элемент' },
  { name: 'ONCRMDYNAMICITEMUPDATE', en: 'An item was changed', ru: 'Изменён элемент' },
  { name: 'ONCRMDYNAMICITEMDELETE', en: 'An item was deleted', ru: 'Удалён элемент' },
  { name: 'ONTASKDELETE', en: 'A task was deleted', ru: 'Удалена задача' },
  // The app's own (the log shows them when "show service events" is ticked).
  { name: 'ONAPPINSTALL', en: 'The app was installed', ru: 'Приложение установлено' },
  { name: 'ONAPPUPDATE', en: 'The app was updated', ru: 'Приложение обновлено' },
  { name: 'ONAPPUNINSTALL', en: 'The app was uninstalled', ru: 'Приложение удалено' },
  { name: 'ONAPPTEST', en: 'A test delivery', ru: 'Проверочная доставка' },
  { name: 'ONOFFLINEEVENT', en: 'Changes are waiting to be read', ru: 'Изменения ждут чтения' },
];

const NAMED = new Map(NAMED_EVENTS.map((e) => [e.name, e]));

/**
 * What an event means to a CRM manager ("A deal was changed"), in `lang`: a smart process's
 * own events (ONCRMDYNAMICITEMUPDATE_128) mean what the general ones do. Undefined for an
 * event the app has no words for, which pages then show by its code alone.
 */
export function eventMeaning(name: string, lang: Lang): string | undefined {
  const upper = name.toUpperCase();
  const general = /^(ONCRMDYNAMICITEM(?:ADD|UPDATE|DELETE))_\d+$/.exec(upper)?.[1];
  return NAMED.get(general ?? upper)?.[lang];
}
