import type { Knex } from 'knex';

/**
 * First schema. Timestamps are integer milliseconds since the epoch (bigint), which sorts
 * and compares the same way on SQLite and PostgreSQL.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('portals', (t) => {
    t.increments('id').primary();
    t.string('member_id', 64).notNullable().unique();
    /** Portal host, e.g. `acme.bitrix24.com` (bound to member_id at install). */
    t.string('domain', 255).notNullable();
    t.string('client_endpoint', 512).nullable();
    t.string('server_endpoint', 512).nullable();
    t.string('scope', 1024).nullable();
    /** Bitrix24 plan letter from the install (`L`, `F`, `D`, `T`, `P`), informational. */
    t.string('plan', 8).nullable();
    /** installed | needs_reauth | uninstalled (as `npx b24hooks portals` shows it). */
    t.string('status', 32).notNullable().defaultTo('installed');
    /** oauth | webhook */
    t.string('auth_mode', 16).notNullable().defaultTo('oauth');
    t.text('access_token_enc').nullable();
    t.text('refresh_token_enc').nullable();
    t.bigInteger('token_expires_at').nullable();
    /** HMAC of application_token: only ever compared, never sent anywhere. */
    t.string('application_token_digest', 64).nullable();
    /** Inbound webhook URL for REST calls in webhook mode (encrypted, it holds a secret). */
    t.text('webhook_url_enc').nullable();
    t.integer('installed_by_user_id').nullable();
    t.string('app_version', 32).nullable();
    t.text('events_bound').nullable();
    t.bigInteger('installed_at').nullable();
    t.bigInteger('uninstalled_at').nullable();
    t.bigInteger('updated_at').notNullable();
  });

  await knex.schema.createTable('events', (t) => {
    t.bigIncrements('id').primary();
    t.integer('portal_id').nullable().references('id').inTable('portals');
    t.string('member_id', 64).nullable();
    t.string('event', 64).notNullable();
    t.string('event_handler_id', 32).nullable();
    /** deal, lead, contact, company, task, dynamic:<entityTypeId>, app … */
    t.string('entity_type', 32).nullable();
    t.string('entity_id', 32).nullable();
    /** Bitrix24's `ts` (unix seconds when the portal queued it). */
    t.bigInteger('ts').nullable();
    /** The delivery with every token masked. */
    t.text('body').nullable();
    /**
     * Delivered tokens, encrypted, kept only while the event is `unverified` (they are needed
     * to verify it once the portal's application token is known), then erased.
     */
    t.text('auth_enc').nullable();
    /** Identical deliveries share it: sha256(member, event, data, ts). */
    t.string('dedupe_key', 64).nullable().unique();
    t.integer('duplicates').notNullable().defaultTo(0);
    /** received | processing | processed | failed | skipped | rejected | unverified */
    t.string('status', 16).notNullable();
    t.string('reject_reason', 64).nullable();
    /** online | offline | reconcile | replay */
    t.string('source', 16).notNullable().defaultTo('online');
    t.integer('attempts').notNullable().defaultTo(0);
    t.text('last_error').nullable();
    t.bigInteger('received_at').notNullable();
    t.bigInteger('processing_started_at').nullable();
    t.bigInteger('processed_at').nullable();
    t.string('remote_addr', 64).nullable();
    t.index(['received_at'], 'events_received_at');
    t.index(['portal_id', 'received_at'], 'events_portal_received');
    t.index(['status', 'received_at'], 'events_status_received');
    t.index(['portal_id', 'entity_type', 'entity_id', 'received_at'], 'events_entity');
  });

  await knex.schema.createTable('jobs', (t) => {
    t.bigIncrements('id').primary();
    t.string('type', 32).notNullable();
    t.bigInteger('event_id').nullable().references('id').inTable('events');
    t.integer('portal_id').nullable().references('id').inTable('portals');
    /** Jobs with the same key run one at a time, in id order (per-entity ordering). */
    t.string('entity_key', 128).nullable();
    t.text('payload').nullable();
    /** pending | running | done | dead */
    t.string('status', 16).notNullable().defaultTo('pending');
    t.integer('attempts').notNullable().defaultTo(0);
    t.integer('max_attempts').notNullable();
    t.bigInteger('run_at').notNullable();
    t.bigInteger('locked_at').nullable();
    t.string('locked_by', 64).nullable();
    t.text('last_error').nullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.index(['status', 'run_at'], 'jobs_due');
    t.index(['entity_key', 'status'], 'jobs_entity');
    t.index(['event_id'], 'jobs_event');
  });

  await knex.schema.createTable('action_runs', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('event_id').notNullable().references('id').inTable('events');
    t.string('rule_name', 255).notNullable();
    t.integer('step_index').notNullable();
    t.string('step_name', 255).nullable();
    t.string('action_type', 32).notNullable();
    /** (event, rule, step): a step that succeeded is never run again unless asked. */
    t.string('idempotency_key', 128).notNullable().unique();
    /** running | succeeded | failed | skipped */
    t.string('status', 16).notNullable();
    t.integer('attempts').notNullable().defaultTo(0);
    t.text('request_summary').nullable();
    t.text('response_summary').nullable();
    t.text('output').nullable();
    t.text('error').nullable();
    t.bigInteger('started_at').notNullable();
    t.bigInteger('finished_at').nullable();
    t.index(['event_id'], 'action_runs_event');
  });

  /** Per-portal settings (events, rules, alert channels); scope `default` = app-wide. */
  await knex.schema.createTable('settings', (t) => {
    t.string('scope', 64).notNullable();
    t.string('key', 64).notNullable();
    t.text('value').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.primary(['scope', 'key']);
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['settings', 'action_runs', 'jobs', 'events', 'portals']) {
    await knex.schema.dropTableIfExists(table);
  }
}
