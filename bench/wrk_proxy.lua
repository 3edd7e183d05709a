-- wrk script for bench/load.sh.
--
-- Usage:
--   wrk ... -s bench/wrk_proxy.lua http://127.0.0.1:PROXY/ -- http://127.0.0.1:ORIGIN/
--     sends absolute-form requests ("GET http://127.0.0.1:ORIGIN/ HTTP/1.1")
--     to the address on the command line, as a client of a forward proxy does.
--   wrk ... -s bench/wrk_proxy.lua http://127.0.0.1:PORT/
--     (no argument after --) sends ordinary origin-form requests ("GET /").
--
-- When the run ends, done() prints one machine-readable line:
--   WRKRESULT requests=N duration_us=N rps=F p50_us=N p99_us=N errors=N non2xx=N
-- Percentiles come from wrk's latency histogram, in microseconds.

function init(args)
  local target = args[1]
  if target ~= nil and target ~= "" then
    wrk.path = target
    -- The Host header names the origin, as it would for a real proxied call.
    local authority = string.match(target, "^%a+://([^/]+)")
    if authority ~= nil then
      wrk.headers["Host"] = authority
    end
  end
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local rps = 0
  if seconds > 0 then
    rps = summary.requests / seconds
  end
  local e = summary.errors
  local socket_errors = e.connect + e.read + e.write + e.timeout
  io.write(string.format(
      "WRKRESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d " ..
      "errors=%d non2xx=%d\n",
      summary.requests, summary.duration, rps,
      latency:percentile(50.0), latency:percentile(99.0),
      socket_errors, e.status))
end
