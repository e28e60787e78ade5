-- wrk script: helpdesk-code requests through the REST API with an API token,
-- spread over USERS users (each has one token and a mobile number on file in
-- the bench vault), each a call-back verification as the default policy asks:
-- both steps confirmed, evidence, and a ticket id that matches its pattern.
local users = tonumber(os.getenv("USERS") or "1000")
local token = os.getenv("TOKEN") or error("set TOKEN to an API token with the helpdesk.code scope")
local path = os.getenv("API_PATH") or "/api/v1/helpdesk/code"
local n = 0
local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }

request = function()
  n = n + 1
  local body
  if path == "/api/v1/helpdesk/code" and os.getenv("OLD_API") then
    -- Builds from before the verification protocol took a free-text verified_by.
    body = string.format('{"user":"user%07d@contoso.com","verified_by":"wrk","ticket":"BENCH-%07d"}',
      (n % users) + 1, n)
  elseif path == "/api/v1/helpdesk/code" then
    body = string.format('{"user":"user%07d@contoso.com","ticket":"BENCH-%07d","verifications":'
      .. '[{"method":"call-back","confirmed":[true,true],'
      .. '"evidence":"called the mobile on file, the user answered"}]}',
      (n % users) + 1, n)
  else
    body = '{"secret":"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ","past":1,"future":1,"verifier":"entra"}'
  end
  return wrk.format("POST", path, headers, body)
end
