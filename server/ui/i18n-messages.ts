import type { UiUser } from './session.js';

/**
 * Messages the app composes in English (validation with its JSON path, condition reasons of
 * a dry run or a stored match, template errors, map warnings, refusals) shown on a Russian
 * page. The data inside them — quoted values, `{{templates}}`, `$.json.paths`, field and
 * event names — stays as written; the English phrases around it are replaced, longest first.
 * A message with no known phrase is shown as it is (it came from elsewhere, e.g. a remote
 * system's error).
 */
const RU_PHRASES: ReadonlyArray<readonly [string, string]> = [
  // validation (server/rules/validate.ts, schema.ts)
  ['; it is missing', '; значение отсутствует'],
  ['expected a unique rule name; ', 'название правила должно быть уникальным; '],
  [' is also the name of ', ' — так уже называется '],
  [
    ' already exists (names that differ only in capitals count as one); open it from the rules page to change it, or choose another name',
    ' уже есть (названия, которые различаются только заглавными буквами, считаются одним); чтобы его изменить, откройте его на странице правил или выберите другое название',
  ],
  [
    '; names that differ only in capitals count as one)',
    '; названия, которые различаются только заглавными буквами, считаются одним)',
  ],
  [
    'expected a unique step name within the rule; ',
    'название шага должно быть уникальным в правиле; ',
  ],
  [' is used twice', ' встречается дважды'],
  [' expects an earlier step named ', ' ждёт более ранний шаг с названием '],
  [' in this rule; earlier steps: ', ' в этом правиле; более ранние шаги: '],
  ['none with a name', 'без названий'],
  ['the map is ', 'карта правил занимает '],
  [' KB; at most ', ' КБ; хранится не больше '],
  [
    ' KB is kept: remove rules, or shorten their templates',
    ' КБ: удалите правила или сократите их шаблоны',
  ],
  // "Send this step once" without a record (server/ui/pages/rule-builder-try.ts)
  ['This step reads ', 'Этот шаг читает '],
  [': give the ID of a record to send it with.', ': укажите ID записи, с которой его отправить.'],
  // the rule builder's save (server/ui/pages/rule-builder-page.ts)
  ['a rule named ', 'правило с названием '],
  [
    ' already exists; open it from the rules page to change it, or choose another name',
    ' уже есть; чтобы его изменить, откройте его на странице правил или выберите другое название',
  ],
  ['expected a field name or path such as ', 'ожидается поле или путь, например '],
  [
    'expected a Telegram chat: a number like -1001234567890 or @channel_name',
    'ожидается чат Telegram: число вроде -1001234567890 или @channel_name',
  ],
  [
    'expected one operator: equals, in, changed or becomes; got none',
    'ожидается один оператор: "equals", "in", "changed" или "becomes"; нет ни одного',
  ],
  [
    'expected one operator: equals, in, changed or becomes; got ',
    'ожидается один оператор: "equals", "in", "changed" или "becomes"; указаны ',
  ],
  [
    'expected a step name of letters, digits, _ or - (no spaces)',
    'название шага: буквы, цифры, _ или - (без пробелов)',
  ],
  [
    'expected an http(s) URL without spaces (a space inside a URL is written %20)',
    'ожидается адрес http(s) без пробелов (пробел внутри адреса пишется как %20)',
  ],
  ['expected at least 1 second', 'ожидается не меньше 1 секунды'],
  ['expected at most 30 days (2592000 seconds)', 'ожидается не больше 30 дней (2592000 секунд)'],
  ['expected a rule name of at most ', 'название правила — не больше '],
  [' characters', ' символов'],
  ['expected an http(s) URL, starting with ', 'ожидается адрес http(s), начинающийся с '],
  [' (or ', ' (или '],
  ['expected an http(s) URL', 'ожидается адрес http(s)'],
  [
    'expected a port an HTTP request can use: this one is reserved for another protocol (such as SMTP, SSH or X11), so the request would never be sent; use the port the service answers HTTP on (usually 443 or none)',
    'этот порт не подходит: он закреплён за другим протоколом (SMTP, SSH, X11 и т. п.), и запрос к нему не отправляется; укажите порт, на котором сервис отвечает по HTTP (обычно 443, или не указывайте порт вовсе)',
  ],
  [
    'expected a header name of letters, digits and - (no spaces)',
    'ожидается имя заголовка из латинских букв, цифр и - (без пробелов)',
  ],
  ['expected a secret of at least 8 characters', 'секрет должен быть не короче 8 символов'],
  [
    'expected text or html (or both); got neither',
    'нужен "text" или "html" (или оба); нет ни одного',
  ],
  ['expected a REST method name such as ', 'ожидается метод REST, например '],
  // a timeline comment step (server/rules/validate.ts timelineCommentChecks)
  [' in lower case: ', ' строчными буквами: '],
  [' does not take ', ' не принимает '],
  [' (Bitrix24 CRM 23.100.0 and later)', ' (Битрикс24, CRM 23.100.0 и новее)'],
  ['expected an object with ', 'ожидается объект с '],
  ['crm.timeline.comment.add needs ', 'crm.timeline.comment.add требует '],
  ['expected an event name such as ', 'ожидается событие, например '],
  [
    'expected a string, number, boolean or null',
    'ожидается строка, число, логическое значение или "null"',
  ],
  ['required; it is empty', 'обязательное поле; оно пустое'],
  ['it is empty; ', 'оно пустое; '],
  ['expected at least one; the list is empty', 'нужен хотя бы один; список пуст'],
  ['not valid JSON: ', 'это не JSON: '],
  ['expected true', 'ожидается "true"'],
  ['expected record', 'ожидается объект'],
  ['expected type to be one of ', 'ожидается "type" — одно из '],
  [
    'expected an environment variable name such as ',
    'ожидается имя переменной окружения, например ',
  ],
  [
    '} (an environment variable listed in ACTION_SECRET_ENV)',
    '} (переменная окружения из списка ACTION_SECRET_ENV)',
  ],
  [', got an object', ', получено: объект'],
  [', got a list of ', ', получено: список из '],
  // secrets of steps (server/rules/secret-fields.ts)
  [
    ' stands for a stored secret, but none is stored here for this rule and step; type the value or use {',
    ' обозначает сохранённый секрет, но для этого правила и шага секрет не сохранён; введите значение или используйте {',
  ],
  [
    " keeps the default map's credential only for the request the default map sends, and this step's body, headers or signing secret differ from it; type the value or use {",
    ' сохраняет секрет карты по умолчанию только для запроса, который отправляет карта по умолчанию, а у этого шага тело, заголовки или ключ подписи другие; введите значение или используйте {',
  ],
  ['environment variable ', 'переменная окружения '],
  [
    ' is not listed in ACTION_SECRET_ENV (the operator lists the variables rules may use)',
    ' не входит в ACTION_SECRET_ENV (переменные, доступные правилам, перечисляет оператор)',
  ],
  // scopes (server/rules/scopes.ts, server/bitrix/scopes.ts)
  ['reading deal records', 'чтение сделок'],
  ['reading lead records', 'чтение лидов'],
  ['reading contact records', 'чтение контактов'],
  ['reading company records', 'чтение компаний'],
  ['reading quote records', 'чтение предложений'],
  ['reading invoice records', 'чтение счетов'],
  ['reading activity records', 'чтение дел'],
  ['reading item records', 'чтение элементов смарт-процесса'],
  ['reading task records', 'чтение задач'],
  [' needs the Bitrix24 scope ', ': нужно право Битрикс24 '],
  [', which the app does not have (its scopes: ', ', которого у приложения нет (его права: '],
  [
    ', which the app does not have (its scopes: none)',
    ', которого у приложения нет (у него нет никаких прав)',
  ],
  ['unknown key ', 'неизвестный ключ '],
  ['unknown filter ', 'неизвестный фильтр '],
  [' (filters: ', ' (фильтры: '],
  [' or contact.PHONE', ' или contact.PHONE'],
  [' takes no argument', ' не принимает аргумент'],
  [
    'not a path (expected names and indexes joined by dots, e.g. ',
    'это не путь (ожидаются имена и индексы через точку, например ',
  ],
  [' to be one of ', ' — одно из '],
  [' to have >=', ' длиной не меньше '],
  [' to have <=', ' длиной не больше '],
  [' characters', ' символов'],
  [' items', ' элементов'],
  [' to be >=', ' не меньше '],
  [' to be <=', ' не больше '],
  [' to be >', ' больше '],
  [' to be <', ' меньше '],
  ['expected int', 'ожидается целое число'],
  [', got float', ', получено дробное число'],
  ['expected string', 'ожидается строка'],
  ['expected number', 'ожидается число'],
  ['expected boolean', 'ожидается логическое значение'],
  ['expected object', 'ожидается объект'],
  ['expected array', 'ожидается список'],
  [', got string ', ', получено: строка '],
  [', got number ', ', получено: число '],
  [', got boolean ', ', получено: логическое значение '],
  ['expected ', 'ожидается '],
  [', got ', ', получено '],
  ['a list of ', 'список из '],
  ['an object', 'объект'],
  ['nothing', 'ничего'],
  ['one of ', 'одно из '],
  // template errors (server/rules/templates.ts)
  ['template ', 'шаблон '],
  ['no step output is available here', 'здесь нет результатов шагов'],
  [' is not available for this event', ' недоступно для этого события'],
  ['no earlier step named ', 'нет более раннего шага '],
  [' has run', ''],
  [' is a list, ', ' — список, '],
  [' is not an index', ' — не индекс'],
  [' has no item ', ' не содержит элемента '],
  [' (it has ', ' (всего '],
  [' is empty (null)', ' пусто (null)'],
  [' (empty list)', ' (пустой список)'],
  [' has no ', ' не содержит '],
  [' is not a date', ' — не дата'],
  [' is not an amount', ' — не сумма'],
  ['the step grows past ', 'здесь шаг превышает '],
  [
    ' characters here (a large value written many times?); a step may hold at most ',
    ' символов (большое значение повторено много раз?); шаг может содержать не больше ',
  ],
  // condition reasons (server/rules/conditions.ts, transitions.ts)
  ['rule is disabled', 'правило выключено'],
  ['not triggered by ', 'не запускается событием '],
  [', no conditions', ', без условий'],
  [
    ' but its earlier value is unknown (first sighting on ',
    ', но прежнее значение неизвестно (впервые в ',
  ],
  [' earlier value is unknown (first sighting on ', ': прежнее значение неизвестно (впервые в '],
  // The builder's words for the two conditions (rb.js.op.*), not the JSON keys.
  [
    '; becomes needs a seen change)',
    '; условие «становится» срабатывает только на изменении, которое приложение увидело)',
  ],
  [
    '; changed needs a seen change)',
    '; условие «изменяется» срабатывает только на изменении, которое приложение увидело)',
  ],
  [' is empty on the new record', ' пусто в новой записи'],
  [' (new record)', ' (новая запись)'],
  // After a field's name, whose gender varies (Стадия, Сумма, Ответственный): no verb
  // that agrees with it.
  [' (assumed just changed to it)', ' (считаем, что значение только что стало таким)'],
  [' (assumed just changed)', ' (считаем, что значение только что изменилось)'],
  [' was already ', ': уже '],
  [' became ', ': теперь '],
  [' (was ', ' (было '],
  [' changed from ', ': изменение с '],
  [' unchanged ', ': без изменений '],
  [' set to ', ' задано: '],
  [', not one of ', ', не из '],
  [', one of ', ', одно из '],
  [', not ', ', а не '],
  [' is ', ' = '],
  [' to ', ' на '],
  ['empty', 'пусто'],
  ['(on: ', '(on: '],
  // notes of stored matches (server/processing/process-event.ts)
  [
    'loop guard: this change was made by the rule itself',
    'защита от петли: это изменение сделало само правило',
  ],
  ['loop guard: ', 'защита от петли: '],
  // the stale-trigger guard (server/processing/run-steps.ts): the rule's conditions no longer
  // hold on a fresh read before its steps ran
  ['stale trigger: ', 'условия уже не выполняются: '],
  ['stale trigger, ', 'условия уже не выполняются: '],
  [' chained writes by our own rules (limit ', ' записей подряд нашими правилами (предел '],
  ['portal is not installed', 'приложение не установлено на портале'],
  [' no longer exists', ' больше не существует'],
  ['nothing to run', 'нечего выполнять'],
  // an event's own note when it ends skipped or processed (process-event.ts)
  ['no rule matched', 'ни одно правило не подошло'],
  ['no rule to run (', 'нет правил для запуска ('],
  ['rule no longer in the map', 'правила больше нет в карте событий'],
  [': skipped', ': пропущено'],
  ['superseded by a later install', 'отменено: приложение установлено заново'],
  // a lifecycle event of a portal that uninstalled the app meanwhile (install/lifecycle.ts)
  ['portal is uninstalled', 'приложение удалено с портала'],
  ['install withdrawn: ', 'установка отозвана: '],
  ['the OAuth server names another member_id', 'OAuth-сервер называет другой member_id'],
  ['the OAuth server names another portal address', 'OAuth-сервер называет другой адрес портала'],
  // map warnings (server/rules/check-map.ts)
  [' listens to ', ' слушает '],
  [', step ', ', шаг '],
  // a Telegram text whose markup the Bot API refuses (server/rules/check-map.ts)
  [': Telegram will refuse its text as ', ': Telegram не примет текст в режиме '],
  ['; every message of this step would fail', '; ни одно сообщение этого шага не отправится'],
  // a step of a channel the server has not set up (server/rules/check-map.ts)
  [
    ': Telegram is not set up on this server (TELEGRAM_BOT_TOKEN)',
    ': Telegram на этом сервере не настроен (TELEGRAM_BOT_TOKEN)',
  ],
  [
    ': e-mail is not set up on this server (SMTP_URL)',
    ': почта на этом сервере не настроена (SMTP_URL)',
  ],
  [
    ': SMS is not set up on this server (SMS_PROVIDER)',
    ': SMS на этом сервере не настроены (SMS_PROVIDER)',
  ],
  [
    ", so this step fails every time the rule runs; ask the app's operator to set it up, or remove the step",
    ', поэтому этот шаг не выполнится ни разу; попросите администратора сервера приложения настроить его или удалите шаг',
  ],
  [
    ': the step names no chat, and this portal has no alert chat of its own (Alerts page)',
    ': в шаге не указан чат, а своего чата для оповещений у портала нет (страница «Оповещения»)',
  ],
  [
    ", so this step fails every time the rule runs; name a chat in the step, or set the portal's alert chat",
    ', поэтому этот шаг не выполнится ни разу; укажите чат в шаге или задайте чат оповещений портала',
  ],
  // a step's timeoutMs beyond the server's limit (server/rules/check-map.ts)
  [' waits up to ', ' ждёт ответа до '],
  [
    ' s for an answer, but this server ends a step after ',
    ' с, но этот сервер прерывает шаг через ',
  ],
  [' s (STEP_TIMEOUT_MAX_SECONDS)', ' с (STEP_TIMEOUT_MAX_SECONDS)'],
  [
    ' has no closing braces, so it is sent as written; close it as in ',
    ' без закрывающих скобок, поэтому отправится как написано; закройте, как в ',
  ],
  // a field the portal's records do not have (server/rules/field-check.ts)
  [' reads ', ' читает '],
  [', a value no rule has', ', а такого значения у правила нет'],
  [": this rule's events (", ': события этого правила ('],
  [') bring no ', ') не приносят записи '],
  [', so the step fails every time', ', поэтому шаг будет завершаться ошибкой каждый раз'],
  [": the portal's deals have no field ", ': у сделок портала нет поля '],
  [": the portal's contacts have no field ", ': у контактов портала нет поля '],
  [": the portal's companies have no field ", ': у компаний портала нет поля '],
  [": the portal's activities have no field ", ': у дел портала нет поля '],
  [": the portal's quotes have no field ", ': у предложений портала нет поля '],
  [": the portal's invoices have no field ", ': у счетов портала нет поля '],
  ['; did you mean ', '; возможно, имелось в виду '],
  // a condition value its field's type never takes (server/rules/field-check.ts)
  [' holds a number and never equals ', ' — число и никогда не равно '],
  [' holds Y or N and never equals ', ' — Y или N и никогда не равно '],
  [
    " is never empty, and the condition's value is empty (nothing chosen): the rule never matches",
    ' никогда не бывает пустым, а значение условия пустое (ничего не выбрано): правило не сработает',
  ],
  [' holds a number, but ', ' — число, а '],
  [
    ' is written as text, which equals only the same text; write it without quotes (',
    ' записано как текст и равно только такому же тексту; чтобы сравнивать числа, напишите без кавычек (',
  ],
  [') to compare numbers', ')'],
  [' (for ', ' (вместо '],
  [
    ', which are not subscribed (Subscriptions); it will not fire until the portal is subscribed to them',
    ', а на них нет подписки (Подписки); правило не сработает, пока портал на них не подписан',
  ],
  [
    ', which is not subscribed (Subscriptions); it will not fire until the portal is subscribed to it',
    ', а на него нет подписки (Подписки); правило не сработает, пока портал на него не подписан',
  ],
  // a change compared with no ADD event subscribed (server/rules/check-map.ts)
  [': the first change of a new record (', ': первое изменение новой записи ('],
  [') is skipped by its conditions on changes of ', ') не пройдёт его условия на изменение '],
  [', because the portal is not subscribed to ', ', потому что портал не подписан на '],
  [
    ' (Subscriptions), where a record is first seen; subscribe to it',
    ' (Подписки), где запись видна впервые; подпишитесь на него',
  ],
  [' has an SLA of ', ' имеет SLA '],
  [
    ' s after it arrives (EVENT_SETTLE_MS); every event will be late',
    ' с после получения (EVENT_SETTLE_MS); каждое событие опоздает',
  ],
  [' s, but an event is first read ', ' с, но событие читается не раньше чем через '],
  [
    'more pairs of rules on one trigger write the same field than the ',
    'пар правил, которые на одном событии записывают одно и то же поле, больше, чем ',
  ],
  [
    ' listed with their rules; the rest are listed once those are put right',
    ' показанных у правил; остальные будут показаны, когда эти исправят',
  ],
  [
    " exports of this portal's log are running; try again when one of them ends.",
    ' выгрузки журнала этого портала уже идут; попробуйте снова, когда одна из них закончится.',
  ],
  [' both run on ', ' оба срабатывают на '],
  [' and both write ', ' и оба записывают '],
  ['; the later write wins', '; останется последняя запись'],
  [' and its step ', ', и его шаг '],
  [
    " can trigger that event again; the loop guard skips the app's own writes, but make sure the conditions cannot re-match",
    ' может снова вызвать это событие; защита от петли пропускает записи приложения, но проверьте, что условия не сработают повторно',
  ],
  [
    ' can trigger each other in a cycle through their bitrix steps',
    ' могут вызывать друг друга по кругу через шаги bitrix',
  ],
  [
    ' was saved before a check it does not pass; changes to it are saved once this is corrected: ',
    ' сохранено до проверки, которую оно не проходит; изменения в нём сохранятся, когда это будет исправлено: ',
  ],
  ['rules ', 'правила '],
  ['rule ', 'правило '],
  [' and ', ' и '],
  // Try it: dry runs and test sends (server/ui/pages/rule-builder-try.ts, rules-page.ts)
  [
    'Give an event name (e.g. ONCRMDEALUPDATE) and a record ID (a number).',
    'Укажите событие (например, ONCRMDEALUPDATE) и ID записи (число).',
  ],
  [' does not exist on the portal.', ': такой записи на портале нет.'],
  ['No such step.', 'Такого шага нет.'],
  // configuration errors of steps (server/actions/)
  ['telegram step: ', 'шаг Telegram: '],
  ['email step: ', 'шаг E-mail: '],
  ['sms step: ', 'шаг SMS: '],
  [
    "no chatId in the step, and this portal has no alert chat of its own (set one on the app's Alerts page)",
    'в шаге нет chatId, а у портала нет своего чата оповещений (задайте его на странице «Оповещения»)',
  ],
  [
    "the chat is the server's alert chat (TELEGRAM_CHAT_ID), which rules may not post to",
    'это чат оповещений сервера (TELEGRAM_CHAT_ID), правилам туда писать нельзя',
  ],
  [' is not a phone number', ' — не номер телефона'],
  [' is not set (generic, twilio or smsru)', ' не задан (generic, twilio или smsru)'],
  [' is not set', ' не задан'],
  // refusals and error pages (server/ui/context.ts, pages)
  ['Only portal administrators can do this.', 'Это могут делать только администраторы портала.'],
  [
    "Only the portal's administrators can open this page or do this.",
    'Открыть эту страницу или сделать это могут только администраторы портала.',
  ],
  [
    'Bitrix24 does not confirm that you are an administrator of this portal (the rights were withdrawn, or your authorization in Bitrix24 has ended), and only administrators can do this. Reopen the application from Bitrix24: if you are an administrator there, you can do it again.',
    'Битрикс24 не подтверждает, что вы администратор этого портала (права отозваны или ваша авторизация в Битрикс24 закончилась), а это могут делать только администраторы. Откройте приложение заново из Битрикс24: если вы там администратор, вы сможете сделать это снова.',
  ],
  [
    'Bitrix24 could not confirm your administrator rights just now. Send it again in a moment.',
    'Битрикс24 не смог сейчас подтвердить ваши права администратора. Отправьте ещё раз чуть позже.',
  ],
  ['The form has expired. Reopen the application.', 'Форма устарела. Откройте приложение заново.'],
  ['Open this application from Bitrix24.', 'Откройте это приложение из Битрикс24.'],
  // frame entry refusals (server/ui/frame-entry.ts), shown in the frame or deal tab
  // the installer page (server/install/install-request.ts, install-portal.ts)
  [
    'This server is not set up to accept installs: set B24_CLIENT_ID and B24_CLIENT_SECRET (the client id and secret from the Bitrix24 application form) and restart it. Only for a local demo, B24_INSECURE_DEV_INSTALL=1 accepts installs without that proof.',
    'Этот сервер не настроен принимать установки: задайте B24_CLIENT_ID и B24_CLIENT_SECRET (код и ключ приложения из его формы в Битрикс24) и перезапустите его. Только для локальной демонстрации B24_INSECURE_DEV_INSTALL=1 принимает установки без этой проверки.',
  ],
  [' is missing or malformed', ' не передан или искажён'],
  [' is malformed', ' искажён'],
  [' is missing', ' не передан'],
  [' must be a portal host name', ' должен быть именем хоста портала'],
  [
    'This portal address is not allowed (B24_PORTAL_HOSTS).',
    'Адрес этого портала не разрешён (B24_PORTAL_HOSTS).',
  ],
  [
    'This OAuth server is not allowed (B24_OAUTH_SERVERS).',
    'Этот сервер авторизации не разрешён (B24_OAUTH_SERVERS).',
  ],
  ['The client endpoint is not on the portal domain.', 'Адрес REST портала не на его домене.'],
  ['The authorization belongs to another application.', 'Авторизация выдана другому приложению.'],
  [
    'Only a portal administrator can install this application.',
    'Установить это приложение может только администратор портала.',
  ],
  ['The authorization belongs to another portal.', 'Авторизация выдана другому порталу.'],
  [
    'The OAuth server did not confirm the authorization.',
    'Сервер авторизации не подтвердил авторизацию.',
  ],
  [
    "Bitrix24 refused this app's credentials for this portal: the app may not be installed here, or its operator should check B24_CLIENT_ID and B24_CLIENT_SECRET.",
    'Битрикс24 не принял данные этого приложения для портала: возможно, приложение здесь не установлено, или оператору приложения нужно проверить B24_CLIENT_ID и B24_CLIENT_SECRET.',
  ],
  [
    'The Bitrix24 authorization server is not answering. Please try again in a few minutes.',
    'Сервер авторизации Битрикс24 не отвечает. Попробуйте через несколько минут.',
  ],
  ['member_id is missing.', 'Не передан member_id.'],
  ['AUTH_ID is missing or malformed.', 'AUTH_ID не передан или искажён.'],
  [
    'The application is not installed on this portal.',
    'Приложение не установлено на этом портале.',
  ],
  [
    'The portal did not confirm the authorization.',
    'Портал не подтвердил авторизацию. Откройте приложение заново.',
  ],
  [
    'This portal is registered under another address.',
    'Этот портал зарегистрирован под другим адресом.',
  ],
  [
    'The portal is not answering. Please try again shortly.',
    'Портал не отвечает. Попробуйте ещё раз чуть позже.',
  ],
  [
    'The portal is busy or not answering. Please try again in a minute.',
    'Портал занят или не отвечает. Попробуйте ещё раз через минуту.',
  ],
  ['The portal did not name the user.', 'Портал не назвал пользователя.'],
  [
    'Send the form as application/x-www-form-urlencoded.',
    'Отправьте форму как application/x-www-form-urlencoded.',
  ],
  [' events.', ' событий.'],
  ['Not found', 'Не найдено'],
  ['Internal error', 'Внутренняя ошибка'],
  [
    'Telegram chat id: a number like -1001234567890 or @channel_name',
    'ID чата Telegram: число вроде -1001234567890 или "@channel_name"',
  ],
  ['E-mail: an address like ops@example.com', 'E-mail: адрес вроде ops@example.com'],
  [
    'E-mail: not a public mail domain (the server sends mail inside its own network only to domains listed in ACTION_PRIVATE_HOSTS)',
    'E-mail: это не публичный почтовый домен (внутри своей сети сервер пишет только на домены из ACTION_PRIVATE_HOSTS)',
  ],
  // linking a Telegram chat (server/ui/telegram-link.ts, processing/telegram-chats.ts)
  [
    'this chat is used by another portal of this app; use a chat of your own, or link this one below if it is yours',
    'этот чат использует другой портал приложения; укажите свой чат или, если этот чат ваш, привяжите его ниже',
  ],
  [
    ' is used by another portal of this app; post to a chat of your own (add the bot there), or link this one on the Alerts page if it is yours',
    ' использует другой портал приложения; пишите в свой чат (добавьте туда бота) или, если этот чат ваш, привяжите его на странице «Оповещения»',
  ],
  [
    "this is the server's alert chat; use a chat of your own",
    'это чат оповещений сервера; укажите свой чат',
  ],
  [
    'Telegram is not configured on this server (TELEGRAM_BOT_TOKEN).',
    'Telegram на этом сервере не настроен (TELEGRAM_BOT_TOKEN).',
  ],
  ['this chat is already linked to this portal', 'этот чат уже привязан к этому порталу'],
  [
    ' is a public chat, where anyone can read a code: it cannot be linked (the first portal to post there holds it); link a private group or channel',
    ' — публичный чат, код в нём может прочитать кто угодно: его нельзя привязать (он за порталом, который написал туда первым); привяжите закрытую группу или канал',
  ],
  [
    'a code was sent to this chat less than 10 minutes ago: type that one, or ask again later',
    'код в этот чат отправлен меньше 10 минут назад: введите его или запросите новый позже',
  ],
  [
    'the code sent to this chat less than 10 minutes ago was typed wrong too often: ask for a new one later',
    'код, отправленный в этот чат меньше 10 минут назад, слишком часто вводили неверно: запросите новый позже',
  ],
  ['Telegram did not deliver the code to chat ', 'Telegram не доставил код в чат '],
  ['; is the bot a member?', '; бот добавлен в чат?'],
  // Telegram's description inside the parentheses is quoted: its words stay as they are.
  [' not found (', ' не найден ('],
  ['Telegram did not accept the code: HTTP ', 'Telegram не принял код: HTTP '],
  ['; try again later', '; попробуйте позже'],
  ['Telegram did not answer (', 'Telegram не ответил ('],
  [
    'the code has expired or was never sent: ask for a new one',
    'код устарел или не отправлялся: запросите новый',
  ],
  ['too many wrong codes: ask for a new one', 'слишком много неверных кодов: запросите новый'],
  [
    'too many codes asked for in 10 minutes: try again later',
    'за 10 минут запрошено слишком много кодов: попробуйте позже',
  ],
  ['wrong code; tries left: ', 'неверный код; осталось попыток: '],
  ['telegram: chat ', 'telegram: чат '],
  ['hours: one of ', 'часы: одно из '],
];

/** Data the phrases never touch: quoted strings, templates, JSON paths. */
const PROTECTED = /("(?:[^"\\]|\\.)*"|\{\{[^{}]*\}\}|\$(?:\.[\w$]+|\[[^\]]*\])*)/;

const SORTED = [...RU_PHRASES].sort((a, b) => b[0].length - a[0].length);

const WORD_CHAR = /[A-Za-z0-9_]/;

function translatePlain(text: string): string {
  let out = '';
  let i = 0;
  outer: while (i < text.length) {
    // A phrase that starts a word starts at one: "expected" is not the end of "Unexpected".
    const inWord = i > 0 && WORD_CHAR.test(text[i - 1]!);
    for (const [en, ru] of SORTED) {
      if (inWord && WORD_CHAR.test(en[0]!)) continue;
      if (text.startsWith(en, i)) {
        out += ru;
        i += en.length;
        continue outer;
      }
    }
    out += text[i];
    i++;
  }
  return out;
}

/** The message in the page's language (see above); English pages get it unchanged. */
export function translateMessage(message: string, lang: UiUser['lang']): string {
  if (lang !== 'ru' || !message) return message;
  return message
    .split(PROTECTED)
    .map((part, i) => (i % 2 === 1 ? part : translatePlain(part)))
    .join('');
}

/**
 * The app's own words around an error (server/queue/destinations.ts, actions/http-call.ts,
 * processing/read-entities.ts), in Russian; what a remote system said stays as it came. Not
 * the phrase list: its short phrases (' is ', ' to ') would rewrite a remote English text.
 */
/** The kinds of address a step may not reach (server/lib/address-policy.ts), in Russian. */
const ADDRESS_KINDS_RU: ReadonlyArray<readonly [string, string]> = [
  ['a loopback address', 'петлевой адрес'],
  ['a private address', 'частный адрес'],
  ['a carrier-grade NAT address', 'адрес CGNAT'],
  ['a unique-local address', 'уникальный локальный адрес'],
  ['a link-local address', 'локальный адрес канала'],
  ['a multicast address', 'групповой адрес'],
  ['an unspecified address', 'неопределённый адрес'],
  ['the broadcast address', 'широковещательный адрес'],
  ['a reserved address', 'зарезервированный адрес'],
];
const literalRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Each pattern starts where a match can only begin at a few places: at the start, after
 * ": ", at a literal word, or, for a leading `(\S+)`, only where a run of non-space
 * characters begins (`(?<!\S)`). Unanchored, `(\S+) is …` tried every position of a long
 * run and read the rest of it each time: a step URL of 2,000 characters in 50 log rows held
 * the main thread, and every portal's deliveries, about 3 s per Russian page view (a review).
 */
export const RU_ERRORS: ReadonlyArray<readonly [RegExp, string]> = [
  // A step refused for where it would connect (http-call.ts, email.ts): the kind of address
  // was English on Russian pages (a review). "refused:" itself, after the port's own rule.
  ...ADDRESS_KINDS_RU.flatMap(([en, ru]): Array<readonly [RegExp, string]> => [
    [
      new RegExp(`(?<!\\S)(\\S+) is ${literalRe(en)} \\(not in ACTION_PRIVATE_HOSTS\\)`),
      `$1 — ${ru} (нет в ACTION_PRIVATE_HOSTS)`,
    ],
    [
      new RegExp(`(?<!\\S)(\\S+) resolves to ${literalRe(en)} \\(not in ACTION_PRIVATE_HOSTS\\)`),
      `$1 указывает на ${ru} (нет в ACTION_PRIVATE_HOSTS)`,
    ],
    [
      new RegExp(
        `the mail server of (\\S+?)(?: \\((\\S+)\\))? is at ${literalRe(en)}, inside the server's network \\(not in ACTION_PRIVATE_HOSTS\\)`,
      ),
      `почтовый сервер $1 ($2) — ${ru}, внутри сети сервера (нет в ACTION_PRIVATE_HOSTS)`,
    ],
  ]),
  // The same without an exchanger of its own name (the domain's own address).
  [/(почтовый сервер \S+) \(\)/, '$1'],
  [
    /(^|: )email step: where mail for (\S+) goes could not be looked up \(([^)]*)\)/,
    '$1шаг e-mail: не удалось узнать, куда доставляется почта для $2 ($3); повторим позже',
  ],
  [
    /(^|: )([A-Z]+ \S+): Telegram's flood control \(429\), sent again in (\d+) s/,
    '$1$2: Telegram ограничил частоту отправки (429), повторим через $3 с',
  ],
  [
    /(^|: )portal (\S+) paused: the portal's Bitrix24 subscription does not allow the app \(PAYMENT_REQUIRED\): renew the plan/,
    '$1портал $2 приостановлен: подписка или тариф портала Битрикс24 не позволяют работать приложению (PAYMENT_REQUIRED); продлите тариф',
  ],
  [
    /(^|: )portal (\S+) paused: the OAuth server does not know the app on this portal \(invalid_client\): was it removed, or B24_CLIENT_ID\/SECRET changed\?/,
    '$1портал $2 приостановлен: сервер OAuth не знает приложение на этом портале (invalid_client): его удалили, или изменились B24_CLIENT_ID/SECRET?',
  ],
  [
    /(^|: )destination (.+?) is down \(circuit open after (\d+) failures\)/,
    '$1$2 не отвечает: отправка приостановлена после сбоев подряд ($3)',
  ],
  [/(^|: )destination (.+?) has (\d+) requests under way/, '$1к $2 уже идут запросы ($3)'],
  [
    /(^|: )waiting (\d+) ms for the portal's REST budget/,
    '$1ждём $2 мс: лимит REST-запросов портала',
  ],
  [
    /(^|: )waiting (\d+) ms: this portal's steps filled in more than ([\d.]+) MB a second \(PORTAL_STEP_MB_PER_SECOND\)/,
    '$1ждём $2 мс: шаги этого портала заполнили больше $3 МБ в секунду (PORTAL_STEP_MB_PER_SECOND)',
  ],
  [/(^|: )([A-Z]+ \S+) timed out after (\d+) ms/, '$1$2: нет ответа за $3 мс'],
  [/(^|: )([A-Z]+ \S+|bitrix \S+) failed: /, '$1$2: ошибка: '],
  // failOnStatus: "HTTP 503 from POST https://…" (the remote system's text follows it). The
  // status first, as in English: a table cell clips the text, and a long URL before it hid it.
  [/(^|: )HTTP (\d{3}) from ([A-Z]+ \S+?)(: |$)/, '$1ответ HTTP $2 на $3$4'],
  // A step of a channel this server has not set up (server/actions/*.ts): seen in English on a
  // Russian log, event page and deal tab (found in a walk).
  [
    /(^|: )telegram step: TELEGRAM_BOT_TOKEN is not set/,
    '$1шаг Telegram: на сервере не настроен бот Telegram (TELEGRAM_BOT_TOKEN)',
  ],
  [
    /(^|: )email step: SMTP_URL is not set/,
    '$1шаг e-mail: на сервере не настроена отправка почты (SMTP_URL)',
  ],
  [
    /(^|: )sms step: SMS_PROVIDER is not set \(generic, twilio or smsru\)/,
    '$1шаг SMS: на сервере не настроена отправка SMS (SMS_PROVIDER: generic, twilio или smsru)',
  ],
  [
    /(^|: )telegram step: the chat is the server's alert chat \(TELEGRAM_CHAT_ID\), which rules may not post to/,
    '$1шаг Telegram: это чат оповещений сервера (TELEGRAM_CHAT_ID), правила в него не пишут',
  ],
  [
    /(^|: )telegram step: no chatId in the step, and this portal has no alert chat of its own \(set one on the app's Alerts page\)/,
    '$1шаг Telegram: в шаге не указан чат, а у портала нет своего чата оповещений (задайте его на странице «Оповещения»)',
  ],
  [
    /(^|: )telegram step: the server's alert chat \(TELEGRAM_CHAT_ID\) could not be looked up just now; tried again later/,
    '$1шаг Telegram: чат оповещений сервера (TELEGRAM_CHAT_ID) сейчас не удалось найти; повторим позже',
  ],
  [
    /(^|: )telegram step: no chatId in the step and TELEGRAM_CHAT_ID is not set/,
    '$1шаг Telegram: в шаге не указан чат, и TELEGRAM_CHAT_ID не задан',
  ],
  [
    /(^|: )email step refused: (\S+): (\S+) is not a public mail domain \(not in ACTION_PRIVATE_HOSTS\)/,
    '$1шаг e-mail отклонён: $2: $3 — не публичный почтовый домен (нет в ACTION_PRIVATE_HOSTS)',
  ],
  [/(^|: )email step refused: /, '$1шаг e-mail отклонён: '],
  // A step without a name is called by its place in the rule (run-steps.ts `step${i + 1}`).
  [/( \/ )step(\d+): /, '$1шаг $2: '],
  [
    /(^|: )([A-Z]+ \S+) refused: its port is reserved for another protocol \(such as SMTP, SSH or X11\), so no HTTP request is sent to it; use the port the service answers HTTP on/,
    '$1$2: порт закреплён за другим протоколом (SMTP, SSH, X11 и т. п.), запрос не отправлен; укажите порт, на котором сервис отвечает по HTTP',
  ],
  [/(^|: )([A-Z]+ \S+) refused: /, '$1$2: отклонено: '],
];

/** An error shown on a page (masked already): the app's own words in the user's language. */
export function translateError(text: string, lang: UiUser['lang']): string {
  if (lang !== 'ru' || !text) return text;
  let out = text;
  // The address kinds' patterns (18 of them) only where their words are.
  const address = text.includes('(not in ACTION_PRIVATE_HOSTS)');
  for (const [re, ru] of RU_ERRORS) {
    if (!address && re.source.includes('not in ACTION_PRIVATE_HOSTS')) continue;
    out = out.replace(re, ru);
  }
  // A placeholder that could not be filled in (rules/templates.ts TemplateError): the words
  // after it are the app's own ("contact has no PHOEN"), its data protected as in any message.
  // They stayed English in the log, the event page and the deal tab while "Send this step
  // once" said them in Russian (a walk).
  return out.replace(
    /(^|: )template (\{\{[^{}]*\}\}): (.*)$/s,
    (_m, lead: string, path: string, problem: string) =>
      `${lead}шаблон ${path}: ${translateMessage(problem, lang)}`,
  );
}

const ENTITY_RU: Readonly<Record<string, string>> = {
  deal: 'сделка',
  lead: 'лид',
  contact: 'контакт',
  company: 'компания',
  quote: 'предложение',
  dynamic: 'элемент',
  task: 'задача',
};

/** A literal string as a regular expression. */
export const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** What a proof job did about a token nothing proved (install/bindings.ts askForTokenTest). */
const TOKEN_TEST_RU: Readonly<Record<string, string>> = {
  'no test delivery needed': 'проверочная доставка не нужна',
  'a test delivery was asked for recently': 'проверочную доставку уже запрашивали недавно',
  'asking for a test delivery failed': 'запросить проверочную доставку не удалось',
  'asked the portal for a test delivery (ONAPPTEST)':
    'у портала запрошена проверочная доставка (ONAPPTEST)',
  'the install is not confirmed: only ONAPPINSTALL can prove it':
    'установка не подтверждена: её может подтвердить только ONAPPINSTALL',
};

/**
 * The note the app stores on an event it ends `skipped` or `processed` ("no rule matched",
 * "no rule to run (Rule: reason; …)", "deal 5 no longer exists"; process-event.ts), in the
 * page's language. The rule names in it are data: they are kept as written, never run
 * through the phrases (a rule "Send to ERP" stays so). Other statuses' errors come from
 * elsewhere (a remote system) and are not notes.
 */
export function translateNote(
  note: string,
  lang: UiUser['lang'],
  ruleNames: readonly string[],
): string {
  if (lang !== 'ru' || !note) return note;
  // The lifecycle job's notes (install/lifecycle.ts): figures and names inside.
  const proof = /^nothing proven; (\d+) rejected, (\d+) expired(?:; (.+))?$/.exec(note);
  if (proof) {
    const asked = proof[3] ? `; ${TOKEN_TEST_RU[proof[3]] ?? proof[3]}` : '';
    return `ничего не подтверждено: отклонено ${proof[1]}, просрочено ${proof[2]}${asked}`;
  }
  if (note === 'test delivery') return 'проверочная доставка';
  const proven = /^proven by event (\d+)$/.exec(note);
  if (proven) return `подтверждено событием ${proven[1]}`;
  const notLifecycle = /^(\S+) is not a lifecycle event$/.exec(note);
  if (notLifecycle) return `${notLifecycle[1]} — не событие жизненного цикла приложения`;
  const gone = /^([a-z]+)(:\d+)? (\S+) no longer exists$/.exec(note);
  if (gone && ENTITY_RU[gone[1]!])
    return `${ENTITY_RU[gone[1]!]}${gone[2] ?? ''} ${gone[3]} больше не существует`;
  const names = [...new Set(ruleNames)].filter(Boolean).sort((a, b) => b.length - a.length);
  if (names.length === 0) return translateMessage(note, lang);
  // A rule name opens each "Rule: reason" part: after "(" or "; ", before ": ".
  const re = new RegExp(`((?:^|\\(|; ))(${names.map(escapeRe).join('|')})(?=: )`, 'g');
  let out = '';
  let last = 0;
  for (const m of note.matchAll(re)) {
    const start = m.index + m[1]!.length;
    out += translateMessage(note.slice(last, start), lang) + m[2]!;
    last = start + m[2]!.length;
  }
  return out + translateMessage(note.slice(last), lang);
}
