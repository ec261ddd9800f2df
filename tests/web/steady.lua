-- wrk script of the web-stack test (tests/it/web.rs): after every answer a
-- connection waits a random 0 to 2 x GAP_MS milliseconds (GAP_MS on
-- average), so a connection sends a steady 1000 / (GAP_MS + latency)
-- requests/s and the connections do not march in step (wrk's own timers
-- would otherwise send them in bursts, one request per connection at once).
local gap = tonumber(os.getenv("GAP_MS") or "10")
math.randomseed(os.time())
function delay()
    return math.random(0, 2 * gap)
end
