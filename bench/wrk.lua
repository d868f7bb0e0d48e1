-- wrk script of bench/bench.py: rotates through header sets read from a file, and prints a
-- JSON summary line at the end.
--
--   wrk -t2 -c64 -d10s --latency -s bench/wrk.lua http://127.0.0.1:PORT/bench/index.html -- SETS HOST
--
-- SETS: one header set per line, headers separated by TAB, each "Name: value"; an empty file
-- or no argument sends no extra header. HOST (optional) is the Host header of every request:
-- the servers are reached on 127.0.0.1 but named localhost, as in the sign-in (mod_auth_openidc
-- refuses a session cookie played against another host than it was issued for). Every request is formatted once in init() (the same
-- cost for the client whatever the case: one set or thousands), and each thread starts at a
-- different offset so the threads do not walk the sets in lockstep.

local sets = {}
local idx = 1

local host = nil

local function split_headers(line)
  local h = {}
  if host then h["Host"] = host end
  for field in string.gmatch(line, "[^\t]+") do
    local name, value = string.match(field, "^([^:]+):%s*(.*)$")
    if name then h[name] = value end
  end
  return h
end

local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  local path = args[1]
  if args[2] and args[2] ~= "" then host = args[2] end
  if path and path ~= "" then
    local f = assert(io.open(path, "r"))
    for line in f:lines() do
      if line ~= "" then
        sets[#sets + 1] = wrk.format(nil, nil, split_headers(line))
      end
    end
    f:close()
  end
  if #sets == 0 then
    sets[1] = wrk.format(nil, nil, split_headers(""))
  end
  local id = tonumber(id) or 0
  idx = ((id * 7919) % #sets) + 1
end

function request()
  local r = sets[idx]
  idx = idx + 1
  if idx > #sets then idx = 1 end
  return r
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
