-- What every Secventory wrk script shares: unique keys, per-status counts, our own latency
-- histogram, and one JSON line for scripts/bench/wrk-load.ts to read.
--
-- wrk runs one Lua state per thread (init, request, response, delay) and one more for setup and
-- done. Each state loads this file, so every module-level variable below is per thread. done()
-- can read a thread's globals only through thread:get(), which copies booleans, numbers,
-- strings and tables of those (script_copy_value in wrk's script.c); the counters are therefore
-- globals holding numbers or tables of numbers. wrk-load.ts checks the sum of the status counts
-- against wrk's own count of answers, so an aggregation that lost a thread cannot pass.
--
-- Latency is measured here, not taken from wrk: wrk 4.1 "corrects" its histogram for
-- coordinated omission before done() sees it (stats_correct adds synthetic samples), which
-- autocannon does not. Each request carries its key as x-request-id, which the server echoes on
-- every answer, so a response finds the time its request left.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } secventory_timespec;
  int clock_gettime(int clock_id, secventory_timespec *tp);
]]
local clock_monotonic = 1
local timespec = ffi.new("secventory_timespec")

local M = {}

--- Microseconds on the monotonic clock.
function M.now_us()
  ffi.C.clock_gettime(clock_monotonic, timespec)
  return tonumber(timespec.tv_sec) * 1000000 + tonumber(timespec.tv_nsec) / 1000
end

-- Requests in flight whose answer has not come: key -> send time. Bounded by sweeping out
-- entries older than the request timeout (an answer without x-request-id would leak one).
local pending = {}
local pending_sweep_every_requests = 10000
local pending_age_us_max = 30 * 1000000

-- Histogram buckets: 2^bucket_bits_per_octave per power of two, below 1% relative error.
local bucket_bits_per_octave = 7

-- The main state's view of the threads, for done().
local threads = {}

--- wrk setup(): numbers each thread, so keys are unique across threads.
function M.setup(thread)
  table.insert(threads, thread)
  thread:set("thread_index", #threads)
end

--- wrk init(args): args[0] is the URL, args[1] the per-run key prefix, args[2] the scenario's.
function M.init(args)
  M.key_prefix = assert(args[1], "pass a per-run key prefix after --") .. "-" .. tostring(thread_index) .. "-"
  M.args = args
  M.sequence = 0
  -- Globals, read by done() through thread:get().
  status_counts = {}
  latency_buckets = {}
  latency_us_max = 0
  latency_samples = 0
  answers_without_key = 0
  requests_lost = 0
  -- 201 reservations and 200 purchases or cancels: the answers that changed stock.
  stock_changes = 0
  -- GET /health/live sent because the mixed scenario had no reservation to finish yet.
  fillers = 0
end

local function sweep_pending(now)
  for key, sent_us in pairs(pending) do
    if now - sent_us > pending_age_us_max then
      pending[key] = nil
      requests_lost = requests_lost + 1
    end
  end
end

--- A fresh key, remembered with its send time. Call it once per request, right before sending.
function M.next_key()
  M.sequence = M.sequence + 1
  local key = M.key_prefix .. M.sequence
  local now = M.now_us()
  if M.sequence % pending_sweep_every_requests == 0 then sweep_pending(now) end
  pending[key] = now
  return key
end

local json_headers = { ["Content-Type"] = "application/json" }
local reserve_body = '{"quantity":1}'

--- POST /products/<sku>/reservations {"quantity":1} with a unique Idempotency-Key.
function M.reserve(sku)
  local key = M.next_key()
  json_headers["Idempotency-Key"] = key
  json_headers["X-Request-Id"] = key
  return wrk.format("POST", "/products/" .. sku .. "/reservations", json_headers, reserve_body)
end

-- The lines of the cart being sent, reused from request to request.
local cart_lines = {}

--- POST /reservations {"lines":[{"sku":...,"quantity":1}, ...]} with a unique Idempotency-Key:
--- a cart of one unit of each SKU given.
function M.cart(skus)
  local key = M.next_key()
  json_headers["Idempotency-Key"] = key
  json_headers["X-Request-Id"] = key
  for i, sku in ipairs(skus) do cart_lines[i] = '{"sku":"' .. sku .. '","quantity":1}' end
  local body = '{"lines":[' .. table.concat(cart_lines, ",", 1, #skus) .. ']}'
  return wrk.format("POST", "/reservations", json_headers, body)
end

local bare_headers = {}

--- POST /reservations/<id>/<action> (purchase or cancel), no body, like the autocannon path.
function M.finish(id, action)
  bare_headers["X-Request-Id"] = M.next_key()
  return wrk.format("POST", "/reservations/" .. id .. "/" .. action, bare_headers, nil)
end

--- GET /health/live: keeps a connection busy when there is nothing to finish.
function M.filler()
  fillers = fillers + 1
  bare_headers["X-Request-Id"] = M.next_key()
  return wrk.format("GET", "/health/live", bare_headers, nil)
end

local function record_latency(latency_us)
  if latency_us < 1 then latency_us = 1 end
  local _, exponent = math.frexp(latency_us)
  local width = 2 ^ math.max(0, exponent - 1 - bucket_bits_per_octave)
  local bucket = math.floor(latency_us / width) * width
  latency_buckets[bucket] = (latency_buckets[bucket] or 0) + 1
  latency_samples = latency_samples + 1
  if latency_us > latency_us_max then latency_us_max = latency_us end
end

--- wrk response(): counts the status, times the request, and says whether stock changed.
--- Returns true for a 201, or a 200 that carries a reservation (a purchase or a cancel; the
--- 200 of /health/live carries {"status":"live"} and no id).
function M.response(status, headers, body)
  status_counts[status] = (status_counts[status] or 0) + 1
  local key = headers["x-request-id"]
  local sent_us = key and pending[key]
  if sent_us then
    pending[key] = nil
    record_latency(M.now_us() - sent_us)
  else
    answers_without_key = answers_without_key + 1
  end
  local changed = status == 201 or (status == 200 and string.find(body, '"id":"', 1, true) ~= nil)
  if changed then stock_changes = stock_changes + 1 end
  return changed
end

local function merge_into(total, part)
  for k, n in pairs(part) do total[k] = (total[k] or 0) + n end
end

local function sum_of(thread_list, name)
  local s = 0
  for _, t in ipairs(thread_list) do s = s + (t:get(name) or 0) end
  return s
end

--- The bucket holding the p-th percentile of all samples, reported by its middle, in µs.
local function percentile_us(buckets, sorted, samples, p)
  if samples == 0 then return 0 end
  local rank = math.max(1, math.ceil(p / 100 * samples))
  local seen = 0
  for _, bucket in ipairs(sorted) do
    seen = seen + buckets[bucket]
    if seen >= rank then
      local _, exponent = math.frexp(math.max(bucket, 1))
      local width = 2 ^ math.max(0, exponent - 1 - bucket_bits_per_octave)
      return bucket + width / 2
    end
  end
  return sorted[#sorted]
end

local function json_object(t, format)
  local parts = {}
  for k, v in pairs(t) do table.insert(parts, string.format('"%s":' .. format, tostring(k), v)) end
  table.sort(parts)
  return "{" .. table.concat(parts, ",") .. "}"
end

--- wrk done(): one JSON line on stdout with every thread's figures added up.
function M.done(summary, latency, requests)
  local statuses, buckets = {}, {}
  for _, t in ipairs(threads) do
    merge_into(statuses, t:get("status_counts") or {})
    merge_into(buckets, t:get("latency_buckets") or {})
  end
  local sorted = {}
  for bucket in pairs(buckets) do table.insert(sorted, bucket) end
  table.sort(sorted)
  local samples = sum_of(threads, "latency_samples")
  local max_us = 0
  for _, t in ipairs(threads) do max_us = math.max(max_us, t:get("latency_us_max") or 0) end
  local e = summary.errors
  io.write(string.format(
    '{"threads":%d,"requests":%d,"durationUs":%d,"latencySamples":%d,"answersWithoutKey":%d,"requestsLost":%d,' ..
    '"stockChanges":%d,"fillers":%d,"latencyUs":{"p50":%.1f,"p99":%.1f,"p999":%.1f,"max":%.1f},' ..
    '"wrkCorrectedLatencyUs":{"p50":%d,"p99":%d,"p999":%d,"max":%d},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"statusCounts":%s}\n',
    #threads, summary.requests, summary.duration, samples, sum_of(threads, "answers_without_key"), sum_of(threads, "requests_lost"),
    sum_of(threads, "stock_changes"), sum_of(threads, "fillers"),
    percentile_us(buckets, sorted, samples, 50), percentile_us(buckets, sorted, samples, 99),
    percentile_us(buckets, sorted, samples, 99.9), max_us,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout, json_object(statuses, "%d")))
end

--- Installs the wrk globals every scenario shares; the scenario adds request (and delay).
function M.install()
  setup = M.setup
  init = M.init
  response = M.response
  done = M.done
end

return M
