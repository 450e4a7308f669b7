import { v7 } from 'uuid';

/**
 * A new reservation's id: a time-ordered UUID (version 7, RFC 9562). Ids made later sort later,
 * so a reservation's row and its events' index entries are appended at the right edge of their
 * B-trees instead of landing on a random page of a table that holds millions: random (version 4)
 * ids cost every insert a page that is likely not in memory once the tables outgrow the cache.
 * The milliseconds in the id say when the request was answered, which the reservation shows anyway.
 */
export const newReservationId = (): string => v7();
