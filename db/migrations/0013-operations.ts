import type { Knex } from 'knex';

/**
 * Operations: the key check that lets a start with the wrong
 * TOKEN_ENCRYPTION_KEY refuse to run, and the row `/readyz` writes to prove the database
 * takes writes.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('key_check', (t) => {
    /** Always 1: one key per database. */
    t.integer('id').primary();
    /**
     * A known marker and the key of the keyed digests (application tokens), encrypted with
     * TOKEN_ENCRYPTION_KEY: decrypting it proves the key; rotate-key re-encrypts it.
     */
    t.text('value_enc').notNullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('rotated_at').nullable();
  });
  await knex.schema.createTable('probes', (t) => {
    t.string('name', 64).primary();
    /** Milliseconds since the epoch of the last successful probe write. */
    t.bigInteger('at').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('probes');
  await knex.schema.dropTableIfExists('key_check');
}
