/** Monitoring, alerts and SLA control. */
export { createAlertMonitor, type AlertMonitor, type AlertMonitorOptions } from './monitor.js';
export {
  alertDestinations,
  alertJobHandler,
  createAlertJobHandler,
  type AlertSenderOptions,
} from './send.js';
export {
  detectSlaBreaches,
  LATE_SETTLE_MS,
  slaByPeriod,
  slaSummary,
  SLA_PERIODS,
  type LateSearchMemory,
  type LateSearchState,
  type SlaFigure,
  type SlaPeriod,
} from './sla.js';
export type { AlertChannel, AlertCheckReport, AlertPayload, AlertPhase } from './types.js';
