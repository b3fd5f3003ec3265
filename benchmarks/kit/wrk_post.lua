-- wrk script for benchmarks/ingest.py --generator wrk: unique, valid alerts, one per request.
-- The alert template (benchmarks/ingest.py, AlertBodies) comes from the file named by $TEMPLATE,
-- with the same markers and the same substitutions as the Python generator; $NONCE (six hex
-- digits) keeps the ids and indicators of one wrk invocation apart from every other's.

local template = assert(io.open(os.getenv("TEMPLATE"), "rb")):read("*a")
local nonce = os.getenv("NONCE")
local counter = 0
not_created = 0  -- a global of each thread's state, read by done() through thread:get
local threads = {}

setup = function(thread)
  table.insert(threads, thread)
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if os.getenv("TOKEN") ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
end

request = function()
  counter = counter + 1
  local tag = nonce .. "-" .. counter
  local ip = string.format("10.%d.%d.%d", bit.band(bit.rshift(counter, 16), 255),
                           bit.band(bit.rshift(counter, 8), 255), bit.band(counter, 255))
  local digest = nonce .. string.format("%058x", counter)
  local body = template:gsub("@ID@", tag):gsub("@IP@", ip):gsub("@HASH@", digest)
  return wrk.format(nil, nil, nil, body)
end

response = function(status, headers, body)
  if status >= 200 and status < 300 and not string.find(body, '"created"', 1, true) then
    not_created = not_created + 1
  end
end

done = function(summary, latency, requests)
  local errors = summary.errors
  local others = 0
  for _, thread in ipairs(threads) do
    others = others + thread:get("not_created")
  end
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "non2xx=%d connect=%d read=%d write=%d timeout=%d not_created=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, errors.status, errors.connect, errors.read,
    errors.write, errors.timeout, others))
end
