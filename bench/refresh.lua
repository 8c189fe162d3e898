-- Refresh-token rotation under load. Each token is used exactly once: a request
-- takes a token from this thread's queue and the response puts the new one back.
-- Threads split the tokens in TOKENS_FILE between them.
local tokens = {}
local thread_index = 0
local threads = {}

function setup(thread)
  thread:set("id", thread_index)
  thread_index = thread_index + 1
  table.insert(threads, thread)
end

function init(args)
  local count = tonumber(os.getenv("WRK_THREADS") or "2")
  local i = 0
  for line in io.lines(os.getenv("TOKENS_FILE")) do
    if i % count == id then table.insert(tokens, line) end
    i = i + 1
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

local calls = 0

function request()
  calls = calls + 1
  -- wrk builds one request in thread 0's state to check the script and never
  -- sends it; that call must not consume a token.
  if id == 0 and calls == 1 then
    return wrk.format(nil, "/v1/sessions/refresh", nil, '{"refresh_token":"unsent"}')
  end
  -- Running out would show up as 401 errors in the report.
  local token = table.remove(tokens, 1) or ""
  return wrk.format(nil, "/v1/sessions/refresh", nil, '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
  local token = string.match(body, '"refresh_token":"([^"]+)"')
  if token then table.insert(tokens, token) end
end
