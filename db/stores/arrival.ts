/**
 * Ids are handed out in arrival order, and `received_at` is the arrival time. Two instances
 * or a slow group commit can store an arrival a little after later ones, by at most this
 * margin: an event received this long before a moment (after it) was stored before (after)
 * every event received at that moment, so its id bounds them (the event log's time ranges,
 * the oldest pending lookup).
 */
export const RANGE_ID_MARGIN_MS = 5 * 60_000;
