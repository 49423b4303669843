/** The languages the app writes in. */
export type Lang = 'en' | 'ru';

/**
 * The app's language for a Bitrix24 language code (`LANG`, `LANGUAGE_ID`): Russian for ru
 * and the portals that usually read Russian (ua, by, kz), English otherwise.
 */
export function uiLang(lang: string | null | undefined): Lang {
  return ['ru', 'ua', 'by', 'kz'].includes((lang ?? '').toLowerCase()) ? 'ru' : 'en';
}
