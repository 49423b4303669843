import type { PauseReason } from '../../db/stores/portals.js';
import type { FailedEvent } from '../../db/stores/alerts.js';
import {
  DESTINATIONS_NAMED,
  type AlertPhase,
  type OpenDestination,
  type Scope,
  type Text,
} from './types.js';
import { destinationName } from '../lib/destination-name.js';

/** The alert texts of messages.ts in Russian, for portals whose language is Russian. */

const PREFIX: Record<AlertPhase, string> = {
  firing: 'ТРЕВОГА',
  reminder: 'НАПОМИНАНИЕ',
  recovered: 'ВОССТАНОВЛЕНО',
  digest: 'СВОДКА',
};

/** Russian plural: 1 событие, 2 события, 5 событий, 21 событие. */
function plural(n: number | string, one: string, few: string, many: string): string {
  const k = Math.abs(Number.parseInt(String(n), 10)) % 100;
  const d = k % 10;
  const word = k > 10 && k < 20 ? many : d === 1 ? one : d >= 2 && d <= 4 ? few : many;
  return `${n} ${word}`;
}

const events = (n: number | string) => plural(n, 'событие', 'события', 'событий');

/** `95 с`, `12 мин`, `3 ч 5 мин`. */
function age(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} с`;
  const m = Math.floor(s / 60);
  if (m < 120) return `${m} мин`;
  return `${Math.floor(m / 60)} ч ${m % 60} мин`;
}

function compose(phase: AlertPhase, title: string, lines: string[], dashboard: string): Text {
  return {
    subject: `[b24hooks] ${PREFIX[phase]}: ${title}`,
    text: [`b24hooks ${PREFIX[phase]}: ${title}`, '', ...lines, '', `Сводка: ${dashboard}`].join(
      '\n',
    ),
  };
}

export function backlogText(
  phase: AlertPhase,
  scope: Scope,
  f: { backlog: number; threshold: number; recoverBelow: number; oldestPendingSeconds: number },
  dashboard: string,
): Text {
  if (phase === 'recovered') {
    return compose(
      phase,
      `очередь на ${scope.label} снова ${f.backlog}`,
      [
        `Очередь (необработанные события) на ${scope.label} уменьшилась до ${f.backlog}, ниже ${f.recoverBelow} (80 % порога ${f.threshold}).`,
      ],
      dashboard,
    );
  }
  return compose(
    phase,
    `в очереди ${events(f.backlog)} на ${scope.label}`,
    [
      `В очереди ${events(f.backlog)} (получены, обрабатываются, ждут проверки или повтора) на ${scope.label}; порог ${f.threshold}.`,
      `Самое старое ждёт ${age(f.oldestPendingSeconds)}.`,
      ...(phase === 'reminder' ? ['Очередь всё ещё выше порога.'] : []),
    ],
    dashboard,
  );
}

export function failedDigestText(
  scope: Scope,
  failed: readonly FailedEvent[],
  truncated: boolean,
  dashboard: string,
): Text {
  const byKey = new Map<string, number>();
  for (const e of failed) {
    for (const rule of e.rules.length ? e.rules : ['(без правила)']) {
      const k = `${rule} / ${e.event}`;
      byKey.set(k, (byKey.get(k) ?? 0) + 1);
    }
  }
  const counts = [...byKey.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `  ${k}: ${n}`);
  const last = failed
    .slice(0, 5)
    .map(
      (e) =>
        `  #${e.id} ${e.event}${e.entityId ? ` ${e.entityType ?? ''} ${e.entityId}` : ''}: ${(e.lastError ?? 'ошибка не записана').slice(0, 300)}`,
    );
  const n = `${failed.length}${truncated ? '+' : ''}`;
  return compose(
    'digest',
    `${events(n)} с окончательной ошибкой на ${scope.label}`,
    [
      `${events(n)} завершились ошибкой (все попытки использованы) на ${scope.label}. По правилам и событиям:`,
      ...counts,
      'Последние ошибки:',
      ...last,
      'Когда причина устранена, повторите их: `b24hooks replay --status failed`.',
    ],
    dashboard,
  );
}

export function reauthText(
  phase: AlertPhase,
  scope: Scope,
  dashboard: string,
  pauseReason?: PauseReason | null,
): Text {
  if (phase === 'recovered') {
    return compose(
      phase,
      `${scope.label} снова авторизован`,
      [`У портала ${scope.label} снова рабочие токены; отложенные события обрабатываются.`],
      dashboard,
    );
  }
  if (pauseReason) {
    return compose(
      phase,
      `${scope.label} приостановлен (${pauseReason})`,
      [
        pauseReason === 'payment_required'
          ? `Битрикс24 отказал приложению на ${scope.label}: PAYMENT_REQUIRED (подписка или тариф портала закончились). Его события сохранены и ждут.`
          : `Сервер OAuth отказался обновить токены ${scope.label}: invalid_client (приложение удалено с портала, или изменились B24_CLIENT_ID / B24_CLIENT_SECRET). Его события сохранены и ждут.`,
        'Приложение повторяет попытку каждые 10 минут и продолжит само, как только Битрикс24 снова его примет.',
      ],
      dashboard,
    );
  }
  return compose(
    phase,
    `${scope.label} требует повторной авторизации`,
    [
      `Портал ${scope.label} отклонил токены приложения (статус needs_reauth). Его события сохранены и ждут.`,
      'Администратору портала нужно один раз открыть приложение (или переустановить его), чтобы авторизовать снова.',
    ],
    dashboard,
  );
}

export function driftText(
  phase: AlertPhase,
  scope: Scope,
  missing: readonly string[],
  dashboard: string,
): Text {
  if (phase === 'recovered') {
    return compose(
      phase,
      `подписки на события на ${scope.label} снова полные`,
      [`Все нужные события привязаны на ${scope.label}.`],
      dashboard,
    );
  }
  return compose(
    phase,
    `на ${scope.label} не хватает подписок: ${missing.length}`,
    [
      `Не привязаны на ${scope.label}: ${missing.join(', ')}.`,
      'Эти события не будут приходить; синхронизируйте события на странице подписок.',
    ],
    dashboard,
  );
}

export function slaText(
  phase: AlertPhase,
  scope: Scope,
  f: { events: number; byRule: Array<{ rule: string; events: number }>; oldestSeconds: number },
  dashboard: string,
): Text {
  if (phase === 'recovered') {
    return compose(
      phase,
      `на ${scope.label} нет событий с нарушенным SLA`,
      [`Все события на ${scope.label}, превысившие SLA своего правила, обработаны.`],
      dashboard,
    );
  }
  return compose(
    phase,
    `нарушение SLA: ${events(f.events)} на ${scope.label}`,
    [
      `${events(f.events)} на ${scope.label} не обработаны дольше slaSeconds своего правила:`,
      ...f.byRule.map((r) => `  ${r.rule}: ${r.events}`),
      `Самое старое получено ${age(f.oldestSeconds)} назад.`,
    ],
    dashboard,
  );
}

export function destinationText(
  phase: AlertPhase,
  list: readonly OpenDestination[],
  dashboard: string,
  scope: Scope,
): Text {
  const one = list.length === 1 ? list[0] : undefined;
  if (phase === 'recovered') {
    const what = one ? destinationName(one.destination) : `адресатам шагов на ${scope.label}`;
    return compose(
      phase,
      one
        ? `${destinationName(one.destination)} снова доступен`
        : `адресаты шагов на ${scope.label} снова доступны`,
      [`Шаги к ${what} снова выполняются; ждавшие события обрабатываются.`],
      dashboard,
    );
  }
  const waiting = list.reduce((n, d) => n + d.waitingJobs, 0);
  const lastOf = (d: OpenDestination) =>
    d.lastError ? ` (последняя: ${d.lastError.replace(/\s+/g, ' ').slice(0, 300)})` : '';
  const failures = (n: number) => plural(n, 'ошибка', 'ошибки', 'ошибок');
  if (one) {
    return compose(
      phase,
      `${destinationName(one.destination)} недоступен, ждут ${events(one.waitingJobs)}`,
      [
        `${destinationName(one.destination)}: ${failures(one.failures)} подряд${lastOf(one)}.`,
        `${events(one.waitingJobs)} ждут его, не тратя попыток; после паузы пробный запрос проверит его снова.`,
      ],
      dashboard,
    );
  }
  const more = list.length - DESTINATIONS_NAMED;
  return compose(
    phase,
    `на ${scope.label} недоступны адресаты шагов (${list.length}), ждут ${events(waiting)}`,
    [
      ...list
        .slice(0, DESTINATIONS_NAMED)
        .map(
          (d) =>
            `  ${destinationName(d.destination)}: ${failures(d.failures)} подряд, ждут ${events(d.waitingJobs)}${lastOf(d)}`,
        ),
      ...(more > 0 ? [`  и ещё ${more}`] : []),
      'Их события ждут, не тратя попыток; после паузы пробный запрос проверит каждого снова.',
    ],
    dashboard,
  );
}
