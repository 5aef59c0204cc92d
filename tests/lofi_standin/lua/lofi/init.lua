--- A stand-in for lofi.nvim (require("lofi")), for tests: its public surface and its
--- behaviour, written for this project. The backend runs as `{daemon_path, "--daemon"}`
--- and speaks JSON-RPC over stdio; its answers are read with vim.json.decode (so a u64
--- seed arrives as a float beyond 2^53, as in lofi.nvim). Notifications become events
--- as they arrive (generation_progress, generation_complete, generation_error);
--- generation_start is emitted from the answer to `generate`, with the prompt, the
--- duration and the seed the backend gives, as lofi.nvim does.
local M = {}

local events = { EVENTS = {
  GENERATION_START = "generation_start", GENERATION_PROGRESS = "generation_progress",
  GENERATION_COMPLETE = "generation_complete", GENERATION_ERROR = "generation_error",
  DOWNLOAD_PROGRESS = "download_progress",
} }
local handlers = {}

function events.on(event, callback)
  handlers[event] = handlers[event] or {}
  table.insert(handlers[event], callback)
  return function() events.off(event, callback) end
end

function events.off(event, callback)
  for i, h in ipairs(handlers[event] or {}) do
    if h == callback then return table.remove(handlers[event], i) end
  end
end

-- A failing handler is reported, and the others still run.
function events.emit(event, data)
  for _, h in ipairs(handlers[event] or {}) do
    local ok, err = pcall(h, data)
    if not ok then
      vim.notify(string.format("[lofi] Event handler error for %s: %s", event, err), vim.log.levels.WARN)
    end
  end
end

M.events = events
M.EVENTS = events.EVENTS

local state = { job = nil, next_id = 0, pending = {}, callbacks = {}, partial = "",
  generating = false, current = nil, config = {} }

function M.setup(opts) state.config = opts or {} end
function M.on(event, callback) return events.on(event, callback) end
function M.is_generating() return state.generating end
function M.current_track() return state.current end

local function on_message(line)
  local ok, msg = pcall(vim.json.decode, line)
  if not ok or type(msg) ~= "table" then return end
  if msg.id ~= nil and msg.id ~= vim.NIL then
    local cb = state.pending[msg.id]
    state.pending[msg.id] = nil
    if cb then
      if msg.error then cb(msg.error, nil) else cb(nil, msg.result) end
    end
    return
  end
  local params = msg.params
  if msg.method == "generation_complete" or msg.method == "generation_error" then
    state.generating, state.current = false, nil
    local cb = state.callbacks[params.track_id]
    state.callbacks[params.track_id] = nil
    if cb then
      vim.schedule(function()
        if msg.method == "generation_error" then cb({ code = params.code, message = params.message }, nil)
        else cb(nil, params) end
      end)
    end
  end
  if msg.method ~= nil and events.EVENTS[msg.method:upper()] ~= nil then
    events.emit(msg.method, params)
  end
end

local function start()
  if state.job ~= nil then return true end
  local path = state.config.daemon_path
  if path == nil or vim.fn.executable(path) ~= 1 then
    vim.notify("[lofi] Daemon binary not found", vim.log.levels.ERROR)
    return false
  end
  state.job = vim.fn.jobstart({ path, "--daemon" }, {
    stdin = "pipe",
    on_stdout = function(_, data)
      -- Lines may be cut across reads: keep the unfinished end for the next one.
      vim.schedule(function()
        data[1] = state.partial .. data[1]
        state.partial = table.remove(data)
        for _, line in ipairs(data) do
          if line ~= "" then on_message(line) end
        end
      end)
    end,
    on_exit = function() vim.schedule(function() state.job = nil end) end,
  })
  return state.job > 0
end

--- Generate a track: opts is a prompt or { prompt, duration_sec, seed, ... }.
function M.generate(opts, callback)
  if type(opts) == "string" then opts = { prompt = opts } end
  if type(opts) ~= "table" or type(opts.prompt) ~= "string" or opts.prompt == "" then
    if callback then vim.schedule(function() callback({ code = -32006, message = "Prompt is required" }, nil) end) end
    return false
  end
  if opts.duration_sec and (opts.duration_sec < 5 or opts.duration_sec > 120) then
    if callback then vim.schedule(function() callback({ code = -32005, message = "Duration must be between 5 and 120 seconds" }, nil) end) end
    return false
  end
  if not start() then return false end
  local params = { prompt = opts.prompt, duration_sec = opts.duration_sec or 30, seed = opts.seed,
    priority = opts.priority or "normal" }
  state.next_id = state.next_id + 1
  local id = state.next_id
  state.pending[id] = function(err, result)
    if err then
      if callback then callback(err, nil) end
      return
    end
    state.generating, state.current = true, result.track_id
    if callback then state.callbacks[result.track_id] = callback end
    events.emit(events.EVENTS.GENERATION_START, {
      track_id = result.track_id, prompt = opts.prompt, duration_sec = params.duration_sec,
      seed = result.seed, position = result.position, backend = result.backend,
    })
  end
  vim.fn.chansend(state.job, vim.json.encode({ jsonrpc = "2.0", id = id, method = "generate",
    params = params }) .. "\n")
  return true
end

function M.stop()
  if state.job ~= nil then vim.fn.chanclose(state.job, "stdin") end
end

-- :Lofi {prompt} [duration], as lofi.nvim parses it (a trailing number is seconds).
vim.api.nvim_create_user_command("Lofi", function(cmd)
  local prompt, duration = cmd.args, 10
  local last = cmd.args:match("(%d+)$")
  if last then
    duration = tonumber(last)
    prompt = cmd.args:sub(1, -(#last + 2))
    if prompt == "" then prompt, duration = cmd.args, 10 end
  end
  M.generate({ prompt = prompt, duration_sec = duration })
end, { nargs = "*" })
M.on("generation_error", function(data) vim.notify("[lofi] Error: " .. data.message, vim.log.levels.ERROR) end)

return M
