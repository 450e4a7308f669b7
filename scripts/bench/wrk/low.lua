-- low: reservations of HOT at a steady offered rate, for the latency of an ordinary day.
-- wrk -s low.lua <url> -- <key prefix> <requests per second for this thread>
--
-- wrk has no rate limit of its own, but calls delay() before every request of every connection
-- (also the first). Each call takes the next free send slot of this thread's schedule, one slot
-- every 1/rate seconds, so the connections together offer the rate as long as they are enough to
-- carry it. When a stall held every connection, the slots it missed are sent at once afterwards
-- (at most catch_up_us_max of them), as real clients would have kept arriving; without that a
-- 0.6 s stall cost 15% of the offered requests. wrk starts timing a request when it is written,
-- after its delay, so the latency is the service's at that rate.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local bench = dofile(here .. "common.lua")
bench.install()

local interval_us
local next_slot_us = nil
-- Missed slots older than this are dropped rather than sent: a long outage is not replayed.
local catch_up_us_max = 1000000

function init(args)
  bench.init(args)
  local rate = assert(tonumber(args[2]), "low.lua needs the request rate after the key prefix")
  interval_us = 1000000 / rate
end

function delay()
  local now = bench.now_us()
  if next_slot_us == nil or next_slot_us < now - catch_up_us_max then next_slot_us = now end
  local wait_us = math.max(0, next_slot_us - now)
  next_slot_us = next_slot_us + interval_us
  -- wrk truncates to whole milliseconds; the schedule, not the rounding, keeps the average rate.
  return wait_us / 1000
end

function request()
  return bench.reserve("HOT")
end
