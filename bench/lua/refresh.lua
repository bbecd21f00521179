-- Refresh-token rotation: wrk ... -s refresh.lua TOKEN_URL -- AUTHORIZATION POOL_FILE EXTRA
-- POOL_FILE holds one refresh token a line (one per connection, each from its own code flow).
-- request() pops a token and redeems it; response() pushes the rotated one from the reply, so
-- every token is used exactly once. EXTRA is appended to each form body (e.g. "&resource=...").
-- A reply that is not 200 with a refresh_token counts in bench_bad (and its chain ends).
dofile(debug.getinfo(1, "S").source:match("^@(.*/)lua/") .. "report.lua")

local pool, auth, extra = {}, nil, ""
bench_counted, bench_bad = 0, 0

init = function(args)
  auth, extra = args[1], args[3] or ""
  for line in io.lines(args[2]) do
    if line ~= "" then pool[#pool + 1] = line end
  end
end

request = function()
  local token = table.remove(pool) or "pool-empty"
  return wrk.format("POST", nil, {
    ["Authorization"] = auth,
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, "grant_type=refresh_token&refresh_token=" .. token .. extra)
end

response = function(status, headers, body)
  local token = status == 200 and body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if token then
    pool[#pool + 1] = token
    bench_counted = bench_counted + 1
  else
    bench_bad = bench_bad + 1
  end
end
