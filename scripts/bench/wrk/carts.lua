-- carts: every request reserves a cart of <lines> lines, one unit each, over the SKUs
-- C-0 .. C-<count - 1> (cartSkuCount and cartLines in workload.ts). Cart n holds the SKUs
-- n, n + count/lines, n + 2 count/lines, ... (mod count), as cartSkus() in workload.ts does:
-- distinct, spread over the range, and shared with the carts that start near them.
-- wrk -s carts.lua <url> -- <key prefix> <sku count> <lines>
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local bench = dofile(here .. "common.lua")
bench.install()

local sku_count
local stride
local skus = {}
local next_cart = 0

function init(args)
  bench.init(args)
  sku_count = assert(tonumber(args[2]), "carts.lua needs the SKU count after the key prefix")
  local lines = assert(tonumber(args[3]), "carts.lua needs the lines per cart after the SKU count")
  stride = math.floor(sku_count / lines)
  for k = 1, lines do skus[k] = "" end
  -- Threads start at different carts, so two threads do not walk the same products in step.
  next_cart = (thread_index - 1) * 7919 % sku_count
end

function request()
  for k = 1, #skus do skus[k] = "C-" .. (next_cart + (k - 1) * stride) % sku_count end
  next_cart = (next_cart + 1) % sku_count
  return bench.cart(skus)
end
