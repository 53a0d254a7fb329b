-- SPDX-License-Identifier: GPL-2.0-or-later
--
-- wrk script of the sessfs application benchmark (bench/run): every
-- request is GET /incr with the cookie of one of the sessions bench/run
-- logged in beforehand (a file of "NAME=VALUE" lines, the first script
-- argument).  Each thread walks the list from its own offset, so that
-- connections rarely hit the same session at once (PHP locks a session
-- for the whole request).  done() prints one line "WRKJSON {...}" with
-- requests, duration, latency percentiles and errors, non-2xx counted
-- here (wrk's own status error counts only >= 400).

local threads = {}

function setup(thread)
	thread:set("id", #threads)
	table.insert(threads, thread)
end

function init(args)
	cookies = {}
	for line in io.lines(args[1]) do
		if #line > 0 then
			table.insert(cookies, line)
		end
	end
	if #cookies == 0 then
		error("no cookies in " .. args[1])
	end
	nth = id * 7919
	non2xx = 0
end

function request()
	nth = nth + 1
	local cookie = cookies[nth % #cookies + 1]
	return wrk.format("GET", wrk.path, { ["Cookie"] = cookie })
end

function response(status, headers, body)
	if status < 200 or status > 299 then
		non2xx = non2xx + 1
	end
end

function done(summary, latency, requests)
	local bad = 0
	for _, t in ipairs(threads) do
		bad = bad + t:get("non2xx")
	end
	local e = summary.errors
	io.write(string.format(
		'WRKJSON {"requests": %d, "duration_us": %d, ' ..
		'"p50_us": %d, "p95_us": %d, "p99_us": %d, "mean_us": %.1f, ' ..
		'"max_us": %d, "non2xx": %d, "connect_errors": %d, ' ..
		'"read_errors": %d, "write_errors": %d, "timeouts": %d, ' ..
		'"status_errors": %d}\n',
		summary.requests, summary.duration,
		latency:percentile(50), latency:percentile(95),
		latency:percentile(99), latency.mean, latency.max, bad,
		e.connect, e.read, e.write, e.timeout, e.status))
end
