/** Monitoring, alerts and SLA control (issue 7). */
export { createAlertMonitor, type AlertMonitor, type AlertMonitorOptions } from './monitor.js';
export {
  alertDestinations,
  alertJobHandler,
  createAlertJobHandler,
  type AlertSenderOptions,
} from './send.js';
export {
  detectSlaBreaches,
  slaByPeriod,
  slaSummary,
  SLA_PERIODS,
  type SlaFigure,
  type SlaPeriod,
} from './sla.js';
export type { AlertChannel, AlertCheckReport, AlertPayload, AlertPhase } from './types.js';
