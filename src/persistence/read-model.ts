import type { ReadModel } from '../engine/read-ports.ts';
import type { Reservation } from '../engine/types.ts';
import { guarded, type DatabasePool } from './database.ts';
import { appliedMigrations } from './migrate.ts';
import { reservationFromRow, type ReservationRow } from './pg-store.ts';
import * as reservations from './sql/reservations.ts';
import * as stats from './sql/stats.ts';

/** The engine's ReadModel over PostgreSQL: reads that go straight to the database. */
export class PgReadModel implements ReadModel {
  constructor(private readonly pool: DatabasePool) {}

  /** Every line of a reservation, in the order the client sent them (empty: no such reservation). */
  getReservationLines(id: string): Promise<Reservation[]> {
    return guarded('get reservation', async () => {
      const { rows } = await this.pool.query<ReservationRow>({
        name: 'select_reservation',
        text: reservations.selectReservation,
        values: [id],
      });
      return rows.map(reservationFromRow);
    });
  }

  countActiveReservations(): Promise<number> {
    return guarded('count active reservations', async () => {
      const { rows } = await this.pool.query<{ active: number }>({
        name: 'count_active_reservations',
        text: stats.countActiveReservations,
      });
      return rows[0]!.active;
    });
  }

  async ready(expectedMigrations: readonly string[]): Promise<boolean> {
    try {
      const applied = await appliedMigrations((sql) => this.pool.query<{ name: string }>(sql));
      return applied !== null && expectedMigrations.every((m) => applied.includes(m));
    } catch {
      return false;
    }
  }
}
