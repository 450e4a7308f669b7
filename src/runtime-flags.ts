/**
 * The V8 flags `secventory serve` runs with: `npm start` passes them, and so do the scripts that
 * start the server as its own process (bench, prove).
 *
 * `--max-semi-space-size` (MB): under load a request waits tens of milliseconds for its batch to
 * commit, so with V8's default young generation (16 MB semi-spaces) most of its objects survive a
 * young collection or two and are promoted, and the old generation then pays to collect them.
 * 32 MB lets them die young: on the hot benchmark (1,000 connections) the server spent about a
 * fifth less CPU per request (npm run bench, NODE_OPTIONS=--max-semi-space-size=0|32|64, two
 * rounds each), and RSS stayed under 300 MB. 64 MB saved little more and cost ~60 MB of RSS.
 */
export const serveNodeFlags: readonly string[] = ['--max-semi-space-size=32'];
