--- lofi_vision: drive a running lofid (cozy animated lofi loops) from Neovim.
---
--- Talks to lofid's control socket (msgpack-RPC) through a libuv pipe and
--- vim.mpack, never through vim.rpcrequest: a request returns at once, its answer
--- comes back to a callback (through vim.schedule), and a request the daemon does
--- not answer fails after `timeout_ms` without the editor ever waiting. The same
--- pipe receives the daemon's events (see |lofi_vision.on()|). A channel from
--- sockconnect(rpc=true) could do neither: rpcrequest blocks with no limit, and
--- Neovim takes the daemon's notifications for calls of its own API.
---
--- When the daemon goes away every waiting request fails with a message, and the
--- next command connects again (and subscribes again to the events listened to).
---
--- With lofi.nvim installed (`require("lofi").on`), a finished track joins the
--- stream's audio, and the picture moves to its prompt's scene when the track begins
--- to sound there (lofid switches it; see |lofi_vision-lofi|).

local M = {}
local H = {}

local uv = vim.uv or vim.loop

--- Options, with their defaults. See |lofi_vision-config|.
M.config = {
  -- Path of lofid's control socket. nil: $XDG_RUNTIME_DIR/lofid/lofid.sock
  -- (or /tmp/lofid-<uid>/lofid/lofid.sock without XDG_RUNTIME_DIR), as lofid uses.
  socket = nil,
  -- Start a detached `lofid run` when a command finds no daemon answering.
  auto_start = false,
  -- Send lofi.nvim's finished tracks to lofid (the picture follows when they play).
  follow_lofi = true,
  -- The outputs a daemon started from Neovim plays to (each becomes `-o TARGET`).
  outputs = { "window" },
  -- The lofid executable (a name on $PATH or a path).
  lofid_cmd = "lofid",
  -- More arguments for a daemon started from Neovim, e.g. { "--fullscreen" }.
  run_args = {},
  -- Messages below this vim.log.levels value are not shown.
  notify_level = vim.log.levels.INFO,
  -- Milliseconds an answer from the daemon may take before the request fails.
  -- Nothing waits for it: the editor keeps going meanwhile.
  timeout_ms = 3000,
}

--- The events lofid sends (lofid/control/events.py names the same ones; a test
--- compares the two lists). |lofi_vision.on()| takes these, or "*" for all.
M.events = {
  "scene_changed", "loop_started", "crossfade", "loop_ready", "loop_rejected",
  "generation_started", "generation_progress", "generation_failed", "output_changed",
  "config_reloaded", "player_error", "error",
}

M.subcommands = { "start", "stop", "status", "scene", "prompt", "next", "pause", "resume", "open",
  "close" }

-- Scene words lofid knows (for completion of :LofiVision scene).
H.scene_words = {
  "study room", "coffee shop", "bedroom night", "rainy window", "balcony sunset",
  "library", "kitchen morning", "rooftop night", "rain", "snow", "fog", "storm",
  "morning", "golden hour", "sunset", "night", "winter", "spring", "summer", "autumn",
  "christmas",
}

-- ---------------------------------------------------------------------------------
-- Public API
-- ---------------------------------------------------------------------------------

--- Apply options, define :LofiVision and follow lofi.nvim.
---@param config table|nil
function M.setup(config)
  if vim.fn.has("nvim-0.9") ~= 1 then H.error("needs Neovim 0.9 or later") end
  config = H.setup_config(config)
  H.apply_config(config)
  H.create_user_commands()
  H.create_autocommands()
  if config.follow_lofi then M.follow_lofi() end
end

--- The socket path in use.
---@return string
function M.socket_path()
  return M.config.socket or H.default_socket()
end

--- Send `method(params)` to the daemon; `callback(err, result)` runs later on the
--- main loop (err is a string, or nil). Never waits.
---@param method string
---@param params table|nil  list of arguments
---@param callback function|nil
function M.request(method, params, callback)
  H.send({ kind = "request", method = method, params = params or {}, callback = callback })
end

--- Call `callback(payload)` (on the main loop) for each daemon event `event`
--- (one of M.events: scene_changed, crossfade, loop_ready, generation_progress,
--- output_changed, ..., or "*" for all; another name is an error). The subscription
--- is renewed on every reconnection.
---@param event string
---@param callback function
function M.on(event, callback)
  H.check_type("event", event, "string")
  H.check_type("callback", callback, "function")
  if event ~= "*" and not vim.tbl_contains(M.events, event) then
    -- A misspelt name would subscribe to nothing and never call back.
    H.error(string.format("unknown event %q; lofid sends: %s, or \"*\" for all", event,
      table.concat(M.events, ", ")))
  end
  local fresh = H.listeners[event] == nil
  H.listeners[event] = H.listeners[event] or {}
  table.insert(H.listeners[event], callback)
  -- Connects now if need be; without a daemon, the next connection subscribes.
  if fresh then M.request("subscribe", { { event } }, function() end) end
end

--- Start lofid (detached) unless one answers already.
function M.start(outputs)
  -- no_start: this asks whether one runs, so auto_start must not answer it.
  H.send({ kind = "request", method = "status", params = {}, no_start = true,
    callback = function(err)
      if err == nil then return H.notify("lofid is already running", vim.log.levels.INFO) end
      H.spawn(outputs)
    end })
end

--- Ask the daemon to stop.
function M.stop()
  H.send({ kind = "request", method = "shutdown", params = {}, no_start = true,
    callback = function(err)
      if err ~= nil then return H.notify(err, vim.log.levels.WARN) end
      H.notify("lofid is stopping", vim.log.levels.INFO)
    end })
end

--- Show the current scene, outputs and audio (vim.notify); `callback(status)` gets
--- the daemon's status table when given.
function M.status(callback)
  M.request("status", {}, function(err, status)
    if err ~= nil then
      local making = H.format_generating()
      return H.notify(err .. (making ~= "" and "\n" .. making or ""), vim.log.levels.WARN)
    end
    M.last_status = status
    H.notify(H.format_status(status), vim.log.levels.INFO)
    if callback then callback(status) end
  end)
end

--- Move the picture to a scene described in words ("rainy window, night").
function M.scene(text)
  H.check_text("scene", text)
  M.request("scene.set", { text }, H.reporter("scene"))
end

--- The prompt of a music track: the picture moves to its scene.
---@param opts table|nil  duration_sec, seed, track_id
function M.prompt(text, opts)
  H.check_text("prompt", text)
  M.request("audio.prompt", { text, H.as_map(opts) }, H.reporter("scene"))
end

--- A finished track (a WAV path) joins the stream's audio.
---@param opts table|nil  prompt, duration_sec, seed, track_id
function M.track(path, opts)
  H.check_text("track", path)
  M.request("audio.track", { path, H.as_map(opts) }, H.reporter("track"))
end

function M.next() M.request("next", {}, H.reporter()) end
function M.pause() M.request("pause", {}, H.reporter("paused")) end
function M.resume() M.request("resume", {}, H.reporter("playing")) end

--- Show the picture on `target` (default "window"; any target `lofid run -o` takes):
--- a running lofid adds it to its outputs, the others playing on; when none
--- answers, one is started with it.
---@param target string|nil
function M.open(target)
  target = target or "window"
  H.check_text("open", target)
  if target ~= "window" and target ~= "null" and not target:find("://", 1, true) then
    target = vim.fn.fnamemodify(vim.fn.expand(target), ":p")   -- lofid's cwd is not ours
  end
  H.send({ kind = "request", method = "output.add", params = { target }, no_start = true,
    on_no_daemon = function() H.spawn({ target }) end,
    callback = function(err, result)
      if err ~= nil then return H.notify(err, vim.log.levels.WARN) end
      H.notify("opened " .. tostring(result.name), vim.log.levels.INFO)
    end })
end

--- Stop one output of the running lofid (default "window"); a file is finalised.
---@param name string|nil  an output's name, as |:LofiVision| status lists them
function M.close(name)
  name = name or "window"
  H.check_text("close", name)
  H.send({ kind = "request", method = "output.remove", params = { name }, no_start = true,
    callback = function(err, result)
      if err ~= nil then return H.notify(err, vim.log.levels.WARN) end
      H.notify("closing " .. tostring(result.name), vim.log.levels.INFO)
    end })
end

--- Follow lofi.nvim: each finished track (generation_complete, with its WAV) is sent
--- to lofid once (by track_id) with its prompt; lofid plays it next and moves the
--- picture to the prompt's scene when the track begins to sound. Nothing else moves
--- the picture, so the events may come in any order: lofi.nvim's backend generates
--- before it answers, so generation_start comes after generation_complete.
--- generation_error is shown. Returns false when lofi.nvim is absent.
---@return boolean
function M.follow_lofi()
  local ok, lofi = pcall(require, "lofi")
  if not ok or type(lofi) ~= "table" or type(lofi.on) ~= "function" then return false end
  if H.following == lofi then return true end
  H.following = lofi
  H.watch_requests(lofi)
  local handlers = {
    generation_progress = H.on_progress, generation_start = H.on_start,
    generation_complete = H.on_complete, generation_error = H.on_error,
  }
  for event, handler in pairs(handlers) do
    lofi.on(event, function(payload)
      if type(payload) == "table" then handler(payload) end
    end)
  end
  return true
end

--- What lofi.nvim is making now, as far as this editor saw: a list of
--- { prompt, track_id, percent } (prompt or track_id may be unknown yet).
---@return table
function M.generating()
  local out = {}
  for _, job in pairs(H.gen.jobs) do
    table.insert(out, { prompt = job.prompt, track_id = job.track_id, percent = job.percent })
  end
  for _, ask in ipairs(H.gen.asked) do table.insert(out, { prompt = ask.prompt }) end
  return out
end

--- Close the connection (the daemon keeps running).
function M.disconnect()
  H.close_connection("disconnected")
end

-- ---------------------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------------------

H.default_config = vim.deepcopy(M.config)
H.listeners = {}
-- lofi.nvim's tracks: asked = prompts requested and not yet seen in an event (its
-- backend takes them in order); jobs = tracks being made, by track_id; sent =
-- track_ids sent to lofid (a cached track comes again with the same id).
H.gen = { asked = {}, jobs = {}, sent = {} }
H.conn = nil          -- { pipe, unpacker, pending = { [id] = entry } } while connected
H.connecting = nil    -- messages queued while the pipe connects
H.next_id = 0

-- Settings ---------------------------------------------------------------------------

function H.setup_config(config)
  if config ~= nil and type(config) ~= "table" then
    H.error("`config` should be a table, got " .. vim.inspect(config))
  end
  -- Shallow: a list given (outputs, run_args) replaces the default one whole.
  config = vim.tbl_extend("force", vim.deepcopy(H.default_config), config or {})
  if config.socket ~= nil then H.check_type("socket", config.socket, "string") end
  H.check_type("auto_start", config.auto_start, "boolean")
  H.check_type("follow_lofi", config.follow_lofi, "boolean")
  H.check_type("outputs", config.outputs, "table")
  for i, o in ipairs(config.outputs) do H.check_type("outputs[" .. i .. "]", o, "string") end
  if #config.outputs == 0 then
    H.error('`outputs` should name at least one output, e.g. { "window" }, got {}')
  end
  H.check_type("lofid_cmd", config.lofid_cmd, "string")
  H.check_type("run_args", config.run_args, "table")
  for i, a in ipairs(config.run_args) do H.check_type("run_args[" .. i .. "]", a, "string") end
  H.check_type("notify_level", config.notify_level, "number")
  H.check_type("timeout_ms", config.timeout_ms, "number")
  if config.timeout_ms <= 0 then
    H.error("`timeout_ms` should be a positive number of milliseconds, got " .. config.timeout_ms)
  end
  return config
end

function H.apply_config(config)
  if H.conn ~= nil and (config.socket or H.default_socket()) ~= M.socket_path() then
    H.close_connection("the socket changed")
  end
  M.config = config
end

function H.create_user_commands()
  vim.api.nvim_create_user_command("LofiVision", H.command, {
    nargs = "+", complete = H.complete, desc = "Drive lofid: start, stop, status, scene ...",
  })
end

function H.create_autocommands()
  local group = vim.api.nvim_create_augroup("LofiVision", { clear = true })
  vim.api.nvim_create_autocmd("VimLeavePre", { group = group, callback = function()
    H.close_connection("Neovim exits")
  end })
  -- lofi.nvim may be loaded after this plugin (lazy loading): try again once all is in.
  vim.api.nvim_create_autocmd("VimEnter", { group = group, once = true, callback = function()
    if M.config.follow_lofi then M.follow_lofi() end
  end })
end

function H.default_socket()
  local runtime = vim.env.XDG_RUNTIME_DIR
  if runtime == nil or runtime == "" then runtime = "/tmp/lofid-" .. uv.getuid() end
  return runtime .. "/lofid/lofid.sock"
end

-- The command ------------------------------------------------------------------------

function H.command(opts)
  local sub = opts.fargs[1]
  local text = vim.trim(opts.args:sub(#sub + 1))
  local simple = { start = M.start, stop = M.stop, status = M.status, next = M.next,
    pause = M.pause, resume = M.resume }
  if simple[sub] then
    if text ~= "" then return H.notify(sub .. " takes no argument", vim.log.levels.ERROR) end
    return simple[sub]()
  end
  if sub == "open" or sub == "close" then
    return M[sub](text ~= "" and text or nil)
  end
  if sub == "scene" or sub == "prompt" then
    if text == "" then
      return H.notify(sub .. " needs a text, e.g. :LofiVision " .. sub .. " rainy window, night",
        vim.log.levels.ERROR)
    end
    return M[sub](text)
  end
  local known = table.concat(M.subcommands, ", ")
  H.notify(string.format("unknown subcommand %q; known: %s", sub, known), vim.log.levels.ERROR)
end

function H.complete(arglead, cmdline, _)
  local words = vim.split(cmdline, "%s+", { trimempty = false })
  local candidates = M.subcommands
  if #words > 2 then
    if words[2] == "open" or words[2] == "close" then
      candidates = { "window" }
    elseif words[2] == "scene" or words[2] == "prompt" then
      candidates = H.scene_words
    else
      return {}
    end
  end
  return vim.tbl_filter(function(c) return vim.startswith(c, arglead) end, candidates)
end

-- The connection ---------------------------------------------------------------------

-- Queue a message and make sure a connection is (being) made. Works from fast
-- (libuv) callbacks too: nothing here touches the editor's state.
function H.send(message)
  if H.conn ~= nil then return H.write(message) end
  if H.connecting ~= nil then return table.insert(H.connecting, message) end
  H.connecting = { message }
  H.connect(function(err)
    local queued = H.connecting
    H.connecting = nil
    for _, m in ipairs(queued) do
      if err == nil then
        H.write(m)
      elseif (m.retries or 0) > 0 then
        m.retries = m.retries - 1   -- a daemon is starting: its socket comes soon
        H.defer(100, function() H.send(m) end)
      elseif m.on_no_daemon ~= nil then
        vim.schedule(function() m.on_no_daemon(err) end)
      elseif M.config.auto_start and not m.no_start then
        -- The first command that finds no daemon starts one; it and those after it
        -- wait for the socket (without blocking), then are sent.
        H.start_then(m)
      elseif m.callback then
        H.answer(m.callback, "no lofid answers on " .. M.socket_path() .. " (" .. err
          .. "); start one with :LofiVision start")
      end
    end
  end)
end

function H.connect(done)
  local path = M.socket_path()
  local pipe = uv.new_pipe(false)
  pipe:connect(path, function(err)
    if err ~= nil then
      pipe:close()
      return done(err)
    end
    H.conn = { pipe = pipe, unpacker = vim.mpack.Unpacker(), pending = {} }
    H.started_at = nil
    local conn = H.conn
    pipe:read_start(function(read_err, data)
      if read_err ~= nil or data == nil then
        local why = read_err and ("read failed: " .. read_err) or "lofid went away"
        return H.close_connection(why, conn)
      end
      H.receive(conn, data)
    end)
    -- Events listened to survive a daemon restart: subscribe on each connection.
    local events = vim.tbl_keys(H.listeners)
    if #events > 0 then H.write({ kind = "request", method = "subscribe", params = { events } }) end
    done(nil)
  end)
end

function H.write(message)
  local conn = H.conn
  -- vim.mpack.encode aborts Neovim (a failed assertion, not a Lua error) on numbers it
  -- would pack as integers beyond 2^53, NaN and infinities among them: never reach it.
  local bad = H.unsafe(message.params)
  local encoded_ok, data = false, nil
  if bad == nil then
    encoded_ok, data = pcall(vim.mpack.encode, { 0, H.next_id + 1, message.method, message.params })
  end
  if not encoded_ok then
    return H.answer(message.callback, string.format("%s not sent: %s", message.method,
      bad or tostring(data)))
  end
  H.next_id = H.next_id + 1
  local id = H.next_id
  local entry = { callback = message.callback, method = message.method }
  conn.pending[id] = entry
  entry.timer = uv.new_timer()
  entry.timer:start(M.config.timeout_ms, 0, function()
    if conn.pending[id] == nil then return end
    conn.pending[id] = nil
    H.stop_timer(entry)
    H.answer(entry.callback, string.format("lofid did not answer %s within %d ms", message.method,
      M.config.timeout_ms))
  end)
  conn.pipe:write(data, function(err)
    if err ~= nil then H.close_connection("write failed: " .. err, conn) end
  end)
end

function H.receive(conn, data)
  local pos = 1
  while pos <= #data do
    local message
    message, pos = conn.unpacker(data, pos)
    if message == nil then return end   -- a message continues in the next chunk
    if type(message) ~= "table" then
      return H.close_connection("lofid sent something that is not a message", conn)
    end
    if message[1] == 1 then
      local entry = conn.pending[message[2]]
      if entry ~= nil then
        conn.pending[message[2]] = nil
        H.stop_timer(entry)
        local err = message[3]
        if err ~= vim.NIL and err ~= nil then
          H.answer(entry.callback, type(err) == "table" and tostring(err[2]) or tostring(err))
        else
          H.answer(entry.callback, nil, message[4] ~= vim.NIL and message[4] or nil)
        end
      end
    elseif message[1] == 2 then
      local payload = type(message[3]) == "table" and message[3][1] or nil
      H.dispatch(message[2], payload)
    end
  end
end

function H.dispatch(event, payload)
  for _, name in ipairs({ event, "*" }) do
    for _, cb in ipairs(H.listeners[name] or {}) do
      vim.schedule(function()
        local ok, err = pcall(cb, payload, event)
        if not ok then H.notify("event handler failed: " .. tostring(err), vim.log.levels.ERROR) end
      end)
    end
  end
end

-- Fail every waiting request and forget the pipe; the next command reconnects.
function H.close_connection(why, conn)
  conn = conn or H.conn
  if conn == nil then return end
  if H.conn == conn then H.conn = nil end
  local pending = conn.pending
  conn.pending = {}
  for _, entry in pairs(pending) do
    H.stop_timer(entry)
    H.answer(entry.callback, "lofid connection closed (" .. why .. ") during " .. entry.method)
  end
  if not conn.pipe:is_closing() then
    conn.pipe:read_stop()
    conn.pipe:close()
  end
end

function H.stop_timer(entry)
  if entry.timer ~= nil and not entry.timer:is_closing() then
    entry.timer:stop()
    entry.timer:close()
  end
end

function H.answer(callback, err, result)
  if callback == nil then
    if err ~= nil then vim.schedule(function() H.notify(err, vim.log.levels.WARN) end) end
    return
  end
  vim.schedule(function()
    local ok, cb_err = pcall(callback, err, result)
    if not ok then H.notify("callback failed: " .. tostring(cb_err), vim.log.levels.ERROR) end
  end)
end

-- Starting the daemon ----------------------------------------------------------------

function H.spawn(outputs)
  outputs = outputs or M.config.outputs
  if vim.fn.executable(M.config.lofid_cmd) ~= 1 then
    return H.notify(string.format("cannot start lofid: %q is not an executable (option lofid_cmd)",
      M.config.lofid_cmd), vim.log.levels.ERROR)
  end
  -- Paced to the clock, whatever the outputs: a daemon started from the editor is a
  -- live picture (a file alone would otherwise be written as fast as it can be).
  local cmd = { M.config.lofid_cmd, "run", "--socket", M.socket_path(), "--realtime" }
  for _, o in ipairs(outputs) do vim.list_extend(cmd, { "-o", o }) end
  vim.list_extend(cmd, M.config.run_args)
  -- Detached: the daemon outlives this editor, as a service would.
  local job = vim.fn.jobstart(cmd, { detach = true })
  if job <= 0 then
    return H.notify("cannot start lofid: " .. table.concat(cmd, " "), vim.log.levels.ERROR)
  end
  H.notify("starting lofid: " .. table.concat(outputs, ", "), vim.log.levels.INFO)
  return job
end

-- Start a daemon (once for all the commands that find none), then send the
-- message, trying to connect every 100 ms for at most 15 s.
function H.start_then(message)
  message.no_start, message.retries = true, 150
  local now = uv.now()
  if H.started_at ~= nil and now - H.started_at < 15000 then
    return H.defer(100, function() H.send(message) end)
  end
  H.started_at = now
  vim.schedule(function()
    if not H.spawn() then
      H.started_at = nil
      return H.answer(message.callback, "lofid could not be started")
    end
    H.defer(100, function() H.send(message) end)
  end)
end

function H.defer(ms, fn)
  local timer = uv.new_timer()
  timer:start(ms, 0, function()
    timer:close()
    fn()
  end)
end

-- Small things -----------------------------------------------------------------------

function H.reporter(what)
  return function(err, result)
    if err ~= nil then return H.notify(err, vim.log.levels.WARN) end
    if what == "scene" and type(result) == "table" then
      H.notify("scene: " .. tostring(result.scene), vim.log.levels.INFO)
    elseif what == "track" and type(result) == "table" then
      H.notify("queued " .. tostring(result.queued), vim.log.levels.INFO)
    elseif what ~= nil then
      H.notify(what, vim.log.levels.INFO)
    end
  end
end

function H.format_status(s)
  local lines = { "scene: " .. tostring(s.scene and s.scene.label or "?")
    .. (s.paused and " (paused)" or "") }
  local outs = {}
  for _, o in ipairs(s.outputs or {}) do
    table.insert(outs, tostring(o.name) .. " " .. tostring(o.state))
  end
  table.insert(lines, "outputs: " .. (#outs > 0 and table.concat(outs, ", ") or "none"))
  if type(s.audio) == "table" then
    local playlist = type(s.audio.playlist) == "table" and #s.audio.playlist or 0
    local playing = type(s.audio.now_playing) == "table" and s.audio.now_playing or nil
    local now = ""
    if playing ~= nil then
      now = ", playing " .. (type(playing.prompt) == "string" and string.format("%q", playing.prompt)
        or vim.fn.fnamemodify(tostring(playing.path), ":t"))
    end
    table.insert(lines, "audio: " .. playlist .. " track(s) queued" .. now)
  end
  local making = H.format_generating()
  if making ~= "" then table.insert(lines, making) end
  if type(s.library) == "table" then
    table.insert(lines, "library: " .. tostring(s.library.loops) .. " loops")
  end
  return table.concat(lines, "\n")
end

-- lofi.nvim ---------------------------------------------------------------------------

-- Its events carry prompt and track_id only once a track is finished (its backend
-- answers `generate` after generating): the prompt of the track being made is known
-- from the request. require("lofi").generate is wrapped to note it; the request and
-- its answer are passed through untouched.
function H.watch_requests(lofi)
  if type(lofi.generate) ~= "function" or lofi.generate == H.generate_wrapper then return end
  local original = lofi.generate
  H.generate_wrapper = function(opts, callback)
    local prompt = type(opts) == "string" and opts or (type(opts) == "table" and opts.prompt)
    if H.text(prompt) == nil then return original(opts, callback) end
    local ask = { prompt = prompt }
    table.insert(H.gen.asked, ask)
    local sent = original(opts, function(err, result)
      if err ~= nil then H.forget(ask) end    -- refused: it makes nothing
      if callback ~= nil then return callback(err, result) end
    end)
    if not sent then H.forget(ask) end
    return sent
  end
  lofi.generate = H.generate_wrapper
end

function H.forget(ask)
  for i, a in ipairs(H.gen.asked) do
    if a == ask then return table.remove(H.gen.asked, i) end
  end
end

-- The job of a track_id, made (and given the oldest prompt asked for) when first seen.
function H.job(id)
  local job = H.gen.jobs[id]
  if job == nil then
    local ask = table.remove(H.gen.asked, 1)
    job = { track_id = id, prompt = ask and ask.prompt }
    H.gen.jobs[id] = job
  end
  return job
end

function H.on_progress(p)
  local id = H.text(p.track_id)
  if id == nil or H.gen.sent[id] then return end
  H.job(id).percent = H.number(p.percent, 0, 100)
end

function H.on_start(p)
  -- After generation_complete (lofi.nvim's order) there is nothing left to do; before
  -- it, the track is not made yet: nothing is sent, the picture waits for the music.
  local id = H.text(p.track_id)
  if id == nil or H.gen.sent[id] then return end
  local job = H.job(id)
  job.prompt = job.prompt or H.text(p.prompt)
end

function H.on_complete(p)
  local id, path = H.text(p.track_id), H.text(p.path)
  if path == nil then return end
  local job = id and H.job(id) or {}
  local prompt = H.text(p.prompt) or job.prompt
  if id ~= nil then
    H.gen.jobs[id] = nil
    if H.gen.sent[id] then return end      -- a cached track, asked for again
    H.gen.sent[id] = true
  end
  -- Only what lofid uses, each checked: a seed (a u64, beyond 2^53) is never sent.
  local opts = { prompt = prompt, track_id = id, duration_sec = H.number(p.duration_sec, 0, 86400) }
  M.request("audio.track", { path, H.as_map(opts) }, function(err, result)
    if err ~= nil then
      if id ~= nil then H.gen.sent[id] = nil end
      return H.notify(err, vim.log.levels.WARN)
    end
    local what = prompt and string.format("%q", prompt) or vim.fn.fnamemodify(path, ":t")
    if type(result) == "table" and result.already_queued then
      return H.notify("already queued: " .. what, vim.log.levels.INFO)
    end
    H.notify("queued " .. what .. (type(result) == "table" and result.scene
      and (": the picture moves to " .. tostring(result.scene) .. " when it plays") or ""),
      vim.log.levels.INFO)
  end)
end

function H.on_error(p)
  local id = H.text(p.track_id)
  local job = id and H.job(id)     -- a failure may be the first word of a track
  if id ~= nil then H.gen.jobs[id] = nil end
  local what = job and job.prompt and string.format("%q", job.prompt) or ("track " .. tostring(id))
  H.notify(string.format("lofi.nvim could not make %s: %s", what,
    H.text(p.message) or H.text(p.code) or "no reason given"), vim.log.levels.ERROR)
end

function H.format_generating()
  local lines = {}
  for _, job in ipairs(M.generating()) do
    local what = job.prompt and string.format("%q", job.prompt) or ("track " .. tostring(job.track_id))
    table.insert(lines, "lofi.nvim: generating " .. what
      .. (job.percent and string.format(" (%d%%)", math.floor(job.percent)) or ""))
  end
  return table.concat(lines, "\n")
end

-- Values sent -----------------------------------------------------------------------

local MAX_SAFE = 9007199254740991   -- 2^53 - 1: vim.mpack's limit for whole numbers

-- Why `v` cannot go through vim.mpack.encode safely, or nil when it can.
function H.unsafe(v, depth, seen)
  local t = type(v)
  if v == nil or v == vim.NIL or t == "string" or t == "boolean" then return nil end
  if t == "number" then
    -- Every float beyond 2^53 is whole: msgpack would carry it as an integer.
    if not (v >= -MAX_SAFE and v <= MAX_SAFE) then
      return string.format("the number %s is beyond what msgpack carries here (2^53)", tostring(v))
    end
    return nil
  end
  if t ~= "table" then return "a " .. t .. " cannot be sent" end
  depth, seen = depth or 0, seen or {}
  if depth > 32 or seen[v] then return "a table nested too deep (or in itself)" end
  seen[v] = true
  for k, x in pairs(v) do
    local bad = H.unsafe(k, depth + 1, seen) or H.unsafe(x, depth + 1, seen)
    if bad ~= nil then return bad end
  end
  seen[v] = nil
  return nil
end

function H.text(v)
  if type(v) == "string" and v ~= "" then return v end
  return nil
end

-- A number within [low, high] (NaN and infinities are not), else nil.
function H.number(v, low, high)
  if type(v) == "number" and v >= low and v <= high then return v end
  return nil
end

-- An empty Lua table is sent as an array; lofid wants a map.
function H.as_map(opts)
  if opts == nil or next(opts) == nil then return vim.empty_dict() end
  return opts
end

function H.check_text(what, text)
  if type(text) ~= "string" or vim.trim(text) == "" then
    H.error(string.format("%s takes a non-empty text, got %s", what, vim.inspect(text)))
  end
end

function H.check_type(name, value, expected)
  if type(value) ~= expected then
    H.error(string.format("`%s` should be %s, got %s", name, expected, vim.inspect(value)))
  end
end

function H.error(msg) error("(lofi_vision) " .. msg, 0) end

function H.notify(msg, level)
  if level < M.config.notify_level then return end
  vim.notify("(lofi_vision) " .. msg, level)
end

M._H = H   -- for :checkhealth and tests

return M
