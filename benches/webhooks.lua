-- wrk script for benches/webhooks.rs: POSTs signed webhook bodies over and over.
--
--   wrk -t2 -c32 -d15s --latency http://127.0.0.1:PORT/webhooks/github \
--       -s benches/webhooks.lua -- BODIES_FILE EVENT MODE TAG
--
-- BODIES_FILE has one delivery per line: "<hex HMAC-SHA256 of the body> <body>" (compact
-- JSON, no newline inside). GitHub's signature covers only the body, so a body with a varying
-- X-GitHub-Delivery is a valid stream of distinct deliveries. MODE "fresh": requests cycle
-- through the bodies, each with a new delivery id (TAG-thread-counter), so each one is
-- recorded and enqueues its job. MODE "redeliver": the first body with the id TAG every
-- time (deliver it once beforehand): the redelivery path.
-- done() prints one line "WRK-JSON {...}" that the bench parses.

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  bodies = {}
  for line in io.lines(args[1]) do
    local sig, body = line:match("^(%x+) (.*)$")
    table.insert(bodies, { sig = "sha256=" .. sig, body = body })
  end
  assert(#bodies > 0, "no bodies in " .. args[1])
  local event, mode, tag = args[2], args[3], args[4]
  headers = {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "GitHub-Hookshot/bench",
    ["X-GitHub-Event"] = event,
    ["X-GitHub-Hook-ID"] = "1",
  }
  prefix = tag .. "-" .. tostring(tid) .. "-"
  counter = 0
  if mode == "redeliver" then
    headers["X-GitHub-Delivery"] = tag
    headers["X-Hub-Signature-256"] = bodies[1].sig
    fixed = wrk.format("POST", nil, headers, bodies[1].body)
  elseif mode ~= "fresh" then
    error("MODE must be fresh or redeliver, not " .. tostring(mode))
  end
end

function request()
  if fixed then
    return fixed
  end
  counter = counter + 1
  local b = bodies[(counter - 1) % #bodies + 1]
  headers["X-GitHub-Delivery"] = prefix .. counter
  headers["X-Hub-Signature-256"] = b.sig
  return wrk.format("POST", nil, headers, b.body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
