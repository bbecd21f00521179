-- Authorization-code + PKCE flows with a live session:
--   wrk ... -s flow.lua BASE_URL -- AUTHORIZE_PATH COOKIE TOKEN_PATH AUTHORIZATION BODY_TAIL
-- A connection with no code waiting sends GET AUTHORIZE_PATH with the session cookie; the
-- session has consented already, so the reply is a 303 to the client with a code, which
-- response() queues. The next request redeems a queued code at TOKEN_PATH:
-- "grant_type=authorization_code&code=CODE" .. BODY_TAIL (the PKCE verifier, redirect_uri...).
-- bench_counted = token responses 200 with an access_token (flows); a 2xx/3xx reply that is
-- neither counts in bench_bad (4xx/5xx are wrk status errors).
dofile((debug.getinfo(1, "S").source:match("^@(.-)lua/[^/]+$") or "") .. "report.lua")

local codes = {}
local authorize, token, tail
bench_counted, bench_bad = 0, 0

init = function(args)
  authorize = wrk.format("GET", args[1], { ["Cookie"] = args[2] })
  token = { path = args[3], headers = {
    ["Authorization"] = args[4],
    ["Content-Type"] = "application/x-www-form-urlencoded",
  } }
  tail = args[5]
end

request = function()
  local code = table.remove(codes)
  if code == nil then return authorize end
  return wrk.format("POST", token.path, token.headers,
    "grant_type=authorization_code&code=" .. code .. tail)
end

response = function(status, headers, body)
  if status == 303 or status == 302 then
    local location = headers["location"] or headers["Location"] or ""
    local code = location:match("[?&]code=([^&]+)")
    if code then codes[#codes + 1] = code else bench_bad = bench_bad + 1 end
  elseif status == 200 and body:find('"access_token"', 1, true) then
    bench_counted = bench_counted + 1
  elseif status < 400 then
    bench_bad = bench_bad + 1
  end
end
