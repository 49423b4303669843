import type { Knex } from 'knex';

/**
 * Renewals of users' token pairs shared across instances (migration 0027,
 * server/ui/user-renewal.ts). A row per spent refresh token: leased while one instance renews
 * it, then holding the new pair, encrypted, for the others.
 */
const TABLE = 'user_token_renewals';

/** What a claim found: the renewal is this holder's to make, made (its pair), or under way. */
export type RenewalClaim =
  { kind: 'mine' } | { kind: 'renewed'; pairEnc: string } | { kind: 'busy' };

/**
 * Takes the renewal of `spent` for `holder` unless another holds a live lease on it or it is
 * done. A row older than `keepSince` (its sessions are gone) counts as absent and is removed,
 * with every other such row (by index: `created_at`).
 */
export async function claimUserRenewal(
  db: Knex,
  r: {
    spent: string;
    memberId: string;
    holder: string;
    nowMs: number;
    leaseUntil: number;
    createdAt: number;
    keepSince: number;
  },
): Promise<RenewalClaim> {
  await db(TABLE).where('created_at', '<', r.keepSince).delete();
  await db(TABLE)
    .insert({
      spent: r.spent,
      member_id: r.memberId,
      holder: r.holder,
      lease_until: r.leaseUntil,
      pair_enc: null,
      created_at: r.createdAt,
    })
    .onConflict('spent')
    .ignore();
  const taken = await db(TABLE)
    .where({ spent: r.spent })
    .whereNull('pair_enc')
    .andWhere((q) =>
      q.whereNull('lease_until').orWhere('lease_until', '<', r.nowMs).orWhere('holder', r.holder),
    )
    .update({ holder: r.holder, lease_until: r.leaseUntil });
  if (Number(taken) === 1) return { kind: 'mine' };
  const pairEnc = await findUserRenewal(db, r.spent);
  return pairEnc === undefined ? { kind: 'busy' } : { kind: 'renewed', pairEnc };
}

/** The pair that replaced `spent`, encrypted, if a renewal stored one. */
export async function findUserRenewal(db: Knex, spent: string): Promise<string | undefined> {
  const row = (await db(TABLE).where({ spent }).first('pair_enc')) as
    { pair_enc: string | null } | undefined;
  return row?.pair_enc ?? undefined;
}

/** Keeps the new pair of `holder`'s renewal for the other instances, ending the lease. */
export async function storeUserRenewal(
  db: Knex,
  spent: string,
  holder: string,
  pairEnc: string,
): Promise<void> {
  await db(TABLE)
    .where({ spent, holder })
    .update({ pair_enc: pairEnc, holder: null, lease_until: null });
}

/** A renewal that failed: the row goes, so that the next asking may try (or fail) itself. */
export async function dropUserRenewal(db: Knex, spent: string, holder: string): Promise<void> {
  await db(TABLE).where({ spent, holder }).whereNull('pair_enc').delete();
}
