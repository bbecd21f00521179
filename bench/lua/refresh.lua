-- Refresh-token rotation: wrk ... -s refresh.lua TOKEN_URL -- AUTHORIZATION POOL_FILE EXTRA
-- POOL_FILE holds one refresh token a line (one per connection, each from its own code flow).
-- request() pops a token and redeems it; response() pushes the rotated one from the reply, so
-- every token is used exactly once. EXTRA is appended to each form body (e.g. "&resource=...").
-- A 200 without a refresh_token counts in bench_bad (other replies are wrk status errors); either
-- way that chain ends. wrk calls request() once after init to check the script (the request
-- is never sent): that call must not take a token.
dofile((debug.getinfo(1, "S").source:match("^@(.-)lua/[^/]+$") or "") .. "report.lua")

local pool, auth, extra, checked = {}, nil, "", false
bench_counted, bench_bad = 0, 0

init = function(args)
  auth, extra = args[1], args[3] or ""
  for line in io.lines(args[2]) do
    if line ~= "" then pool[#pool + 1] = line end
  end
end

request = function()
  local token = checked and table.remove(pool) or "none"
  checked = true
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
  elseif status < 400 then
    bench_bad = bench_bad + 1
  end
end
