-- spread: reservations cycle over the SKUs S-0 .. S-<count - 1> (spreadSkuCount in scenarios.ts).
-- wrk -s spread.lua <url> -- <key prefix> <sku count>
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local bench = dofile(here .. "common.lua")
bench.install()

local sku_count
local next_sku = 0

function init(args)
  bench.init(args)
  sku_count = assert(tonumber(args[2]), "spread.lua needs the SKU count after the key prefix")
  -- Threads start at different SKUs, so two threads do not walk the same products in step.
  next_sku = (thread_index - 1) * 7919 % sku_count
end

function request()
  local sku = "S-" .. next_sku
  next_sku = (next_sku + 1) % sku_count
  return bench.reserve(sku)
end
