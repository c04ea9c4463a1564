-- Argo CD health check for modeldeploy.io/ModelDeployment.
--
-- Install it under the key `resource.customizations.health.modeldeploy.io_ModelDeployment`
-- of the argocd-cm ConfigMap (see gitops/argocd-cm.yaml). Written for Lua 5.1, which Argo CD
-- embeds; it reads the same conditions kstatus (Flux, `kubectl wait`) reads:
--   Stalled=True (a rollback, a missed progress deadline)  -> Degraded
--   paused by the pause control or waiting for a promote   -> Suspended
--   Reconciling=True (a rollout steps)                     -> Progressing
--   Ready=True                                             -> Healthy
-- A status older than the spec (observedGeneration < generation) is Progressing: the
-- operator has not looked at the change yet.

local hs = { status = "Progressing", message = "Waiting for the operator to report a status" }

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

local function first_message(...)
  for i = 1, select("#", ...) do
    local m = select(i, ...)
    if m ~= nil and m ~= "" then
      return m
    end
  end
  return ""
end

local st = obj.status
if st == nil then
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and (st.observedGeneration == nil or st.observedGeneration < generation) then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local stalled = condition(st, "Stalled")
local degraded = condition(st, "Degraded")
local reconciling = condition(st, "Reconciling")
local ready = condition(st, "Ready")

if is_true(stalled) or is_true(degraded) or st.phase == "Degraded" then
  hs.status = "Degraded"
  hs.message = first_message(stalled and stalled.message, degraded and degraded.message,
                             st.message, "Degraded")
  return hs
end

if st.paused == true or st.phase == "Paused" then
  hs.status = "Suspended"
  hs.message = first_message(st.message, "Paused")
  return hs
end

if is_true(reconciling) or st.phase == "Progressing" then
  hs.status = "Progressing"
  hs.message = first_message(reconciling and reconciling.message, st.message, "Rolling out")
  return hs
end

if is_true(ready) or (ready == nil and st.phase == "Healthy") then
  hs.status = "Healthy"
  hs.message = first_message(ready and ready.message, st.message)
  return hs
end

hs.message = first_message(ready and ready.message, st.message, hs.message)
return hs
