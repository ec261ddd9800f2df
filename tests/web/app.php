<?php
// The PHP app of the web-stack test (tests/it/web.rs), as a real one would
// report to rapidscale: one StatsD datagram per request with fsockopen, a
// timer named http.requests (counted as one request, its value the latency
// in ms) and the DynamoDB read units the request consumed. nginx passes the
// StatsD port as the STATSD_PORT FastCGI parameter.
$port = (int) ($_SERVER['STATSD_PORT'] ?? 8125);
$units = 2;
echo "ok\n";
$ms = (microtime(true) - $_SERVER['REQUEST_TIME_FLOAT']) * 1000;
$s = @fsockopen('udp://127.0.0.1', $port);
if ($s !== false) {
    fwrite($s, sprintf("http.requests:%.3f|ms\nddb.consumed:%d|c|#table:posts,op:read", $ms, $units));
    fclose($s);
}
