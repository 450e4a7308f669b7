-- mixed: per 10 operations, 7 reserves over M-0 .. M-<count - 1>, 2 purchases and 1 cancel of
-- reservations this thread made earlier. With none to finish yet, a GET /health/live instead
-- (as the autocannon path does).
-- wrk -s mixed.lua <url> -- <key prefix> <sku count>
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local bench = dofile(here .. "common.lua")
bench.install()

-- wrk's response() has no connection or request identity, so ids are kept per thread, and a
-- purchase may finish a reservation another connection of the same thread made: any is fine.
local ids_max = 100000
local ids = {}
local ids_count = 0
local sku_count
local next_sku = 0
local operation = 0

function init(args)
  bench.init(args)
  sku_count = assert(tonumber(args[2]), "mixed.lua needs the SKU count after the key prefix")
end

local function take_id()
  if ids_count == 0 then return nil end
  local id = ids[ids_count]
  ids[ids_count] = nil
  ids_count = ids_count - 1
  return id
end

local function finish_or_filler(action)
  local id = take_id()
  if id == nil then return bench.filler() end
  return bench.finish(id, action)
end

function request()
  local k = operation % 10
  operation = operation + 1
  if k < 7 then
    local sku = "M-" .. next_sku
    next_sku = (next_sku + 1) % sku_count
    return bench.reserve(sku)
  elseif k < 9 then
    return finish_or_filler("purchase")
  else
    return finish_or_filler("cancel")
  end
end

function response(status, headers, body)
  bench.response(status, headers, body)
  if status == 201 and ids_count < ids_max then
    local id = string.match(body, '"id":"([^"]+)"')
    if id then
      ids_count = ids_count + 1
      ids[ids_count] = id
    end
  end
end
