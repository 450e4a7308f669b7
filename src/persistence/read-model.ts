import type pg from 'pg';
import type { Reservation } from '../engine/types.ts';
import { guarded } from './database.ts';
import { EventLog } from './event-log.ts';
import { appliedMigrations } from './migrate.ts';
import { reservationFromRow } from './pg-store.ts';
import * as reservations from './sql/reservations.ts';
import * as stats from './sql/stats.ts';

/** Reads that go straight to the database (they change nothing and need no actor). */
export class ReadModel {
  /** Reads of the audit log, over the same pool. */
  readonly events: EventLog;

  constructor(private readonly pool: pg.Pool) {
    this.events = new EventLog(pool);
  }

  /** Every line of a reservation, in the order the client sent them (empty: no such reservation). */
  getReservationLines(id: string): Promise<Reservation[]> {
    return guarded('get reservation', async () => {
      const { rows } = await this.pool.query({ name: 'select_reservation', text: reservations.selectReservation, values: [id] });
      return rows.map(reservationFromRow);
    });
  }

  /** Active reservations of every product, as committed (true across instances). */
  countActiveReservations(): Promise<number> {
    return guarded('count active reservations', async () => {
      const { rows } = await this.pool.query<{ active: number }>({ name: 'count_active_reservations', text: stats.countActiveReservations });
      return rows[0]!.active;
    });
  }

  /** True when the database answers and has every migration this build knows. */
  async ready(expectedMigrations: readonly string[]): Promise<boolean> {
    try {
      const applied = await appliedMigrations((sql) => this.pool.query(sql));
      return applied !== null && expectedMigrations.every((m) => applied.includes(m));
    } catch {
      return false;
    }
  }
}
