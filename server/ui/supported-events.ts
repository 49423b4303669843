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
  { name: 'ONTASKADD', en: 'A task was created', ru: 'Создана задача' },
  { name: 'ONTASKUPDATE', en: 'A task was changed', ru: 'Изменена задача' },
];
