--- :checkhealth lofi_vision -- the lofid binary, the socket, the daemon's answer,
--- lofi.nvim.

local M = {}

local uv = vim.uv or vim.loop
local health = vim.health
-- Neovim 0.9 names them report_*; 0.10 and later start/ok/warn/error/info.
local start = health.start or health.report_start
local ok = health.ok or health.report_ok
local warn = health.warn or health.report_warn
local error = health.error or health.report_error
local info = health.info or health.report_info

-- The daemon's answer is awaited at most this long: a local socket answers in a
-- few milliseconds, and :checkhealth is a diagnostic the user asked to wait for.
local ANSWER_MS = 1000

function M.check()
  local lofi_vision = require("lofi_vision")
  local config = lofi_vision.config

  start("Neovim")
  local v = vim.version()
  local version = string.format("%d.%d.%d", v.major, v.minor, v.patch)
  if vim.fn.has("nvim-0.9") == 1 then
    ok("Neovim " .. version)
  else
    error("Neovim " .. version .. ": lofi_vision needs 0.9 or later")
  end

  start("lofid")
  local exe = vim.fn.exepath(config.lofid_cmd)
  if exe ~= "" then
    ok("lofid found: " .. exe)
  else
    warn(string.format("%q is not an executable on $PATH (option lofid_cmd)", config.lofid_cmd),
      { "pip install lofi-vision, or set lofid_cmd to the path of lofid" })
  end

  start("control socket")
  local path = lofi_vision.socket_path()
  local stat = uv.fs_stat(path)
  if stat == nil then
    warn("no socket at " .. path, { "start lofid: :LofiVision start, or `lofid run --socket`" })
  elseif stat.type ~= "socket" then
    error(path .. " exists but is not a socket (" .. stat.type .. ")")
  else
    ok("socket " .. path)
    local done, err, status = false, nil, nil
    lofi_vision.request("status", {}, function(e, s) done, err, status = true, e, s end)
    vim.wait(ANSWER_MS, function() return done end, 10)
    if not done then
      error("lofid did not answer status within " .. ANSWER_MS .. " ms")
    elseif err ~= nil then
      error("lofid did not answer: " .. err)
    else
      ok(string.format("lofid %s answers: %s", tostring(status.version),
        (lofi_vision._H.format_status(status):gsub("\n", "; "))))
    end
  end

  start("lofi.nvim")
  local found, lofi = pcall(require, "lofi")
  if found and type(lofi) == "table" and type(lofi.on) == "function" then
    if config.follow_lofi then
      ok("lofi.nvim found: the picture follows its tracks")
    else
      info("lofi.nvim found, not followed (follow_lofi = false)")
    end
  else
    info("lofi.nvim not installed: lofi_vision works on its own")
  end
end

return M
