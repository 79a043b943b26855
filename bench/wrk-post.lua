-- wrk script: POST a JSON body from the environment. BENCH_BODY is the body; when it contains
-- "%d", each request puts its own counter there (every request different: a cache miss).
-- BENCH_AUTH is an API key (sent as a bearer token); BENCH_HEADERS more headers, one
-- "Name: value" a line (the peer gateway's routing headers, bench/peers.py).
local body = os.getenv("BENCH_BODY")
local auth = os.getenv("BENCH_AUTH")
local extra = {}
for line in (os.getenv("BENCH_HEADERS") or ""):gmatch("[^\n]+") do
   local name, value = line:match("^%s*([^:]+):%s*(.-)%s*$")
   if name then extra[name] = value end
end
local counter = 0
local thread_id = 0
local unique = body:find("%%d") ~= nil

function setup(thread)
   thread_id = thread_id + 1
   thread:set("tid", thread_id)
end

function request()
   local b = body
   if unique then
      counter = counter + 1
      b = body:gsub("%%d", tostring(tid) .. "-" .. tostring(counter))
   end
   local headers = { ["Content-Type"] = "application/json" }
   if auth and auth ~= "" then headers["Authorization"] = "Bearer " .. auth end
   for name, value in pairs(extra) do headers[name] = value end
   return wrk.format("POST", nil, headers, b)
end
