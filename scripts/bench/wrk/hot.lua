-- hot: every request reserves one unit of the one product HOT.
-- wrk -s hot.lua <url> -- <key prefix>
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local bench = dofile(here .. "common.lua")
bench.install()

function request()
  return bench.reserve("HOT")
end
