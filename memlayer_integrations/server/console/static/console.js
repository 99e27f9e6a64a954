// The MemLayer console: a page over the public /v1 API, signed in with one API key.
//
// The key lives in this tab's sessionStorage and goes only into the X-API-Key header of
// same-origin requests, so the console sees exactly what that key can see. All text from
// the server is put on the page with textContent, never parsed as HTML. Every request
// counts against the daily quota, so usage is read once at sign-in and then kept current
// from the X-RateLimit-* headers every response carries.
"use strict";

const KEY_SLOT = "memlayer.apiKey";
const PAGE_SIZE = 20;
const RECALL_LIMIT = 10;

const state = { usage: null, scope: null, cursor: null };
const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, { query, body } = {}) {
  const key = sessionStorage.getItem(KEY_SLOT);
  const url = new URL("/v1" + path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== null && value !== undefined) url.searchParams.append(name, value);
  }
  const headers = { "X-API-Key": key || "" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
    referrerPolicy: "no-referrer",
  });
  trackQuota(response.headers);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || "error", error.message || response.statusText);
  }
  return data;
}

// ---- usage ---------------------------------------------------------------------------

function trackQuota(headers) {
  const remaining = headers.get("X-RateLimit-Remaining");
  if (!state.usage || remaining === null || remaining === "unlimited") return;
  if (state.usage.requests_limit !== null) {
    state.usage.requests_today = state.usage.requests_limit - Number(remaining);
    renderUsage();
  }
}

function limitText(count, limit) {
  return limit === null ? `${count} (no limit)` : `${count} / ${limit}`;
}

function renderUsage() {
  const u = state.usage;
  $("usage-plan").textContent = u.plan + " plan";
  $("usage-memories").textContent = "memories " + limitText(u.memories_stored, u.memories_limit);
  $("usage-requests").textContent = "requests today " + limitText(u.requests_today, u.requests_limit);
  const reset = new Date(u.resets_at).toISOString().slice(0, 16).replace("T", " ");
  $("usage-reset").textContent = `resets ${reset} UTC`;
  $("usage").hidden = false;
}

// ---- sign in and out -----------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const field = $("api-key");
  sessionStorage.setItem(KEY_SLOT, field.value.trim());
  field.value = "";
  $("sign-in-error").textContent = "";
  try {
    await start();
  } catch (error) {
    sessionStorage.removeItem(KEY_SLOT);
    $("sign-in-error").textContent = error.message;
  }
}

async function start() {
  state.usage = await api("GET", "/usage");
  renderUsage();
  $("sign-in-view").hidden = true;
  $("main-view").hidden = false;
  $("sign-out").hidden = false;
  await loadScopes();
}

function signOut() {
  sessionStorage.removeItem(KEY_SLOT);
  window.location.reload();
}

// ---- scopes --------------------------------------------------------------------------

async function loadScopes() {
  const { scopes } = await api("GET", "/scopes");
  const list = $("scope-list");
  list.replaceChildren();
  $("no-scopes").hidden = scopes.length > 0;
  const users = new Map();
  for (const scope of scopes) {
    if (!users.has(scope.user_id)) users.set(scope.user_id, []);
    users.get(scope.user_id).push(scope);
  }
  for (const [user, agents] of users) {
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.className = "user";
    name.textContent = user;
    const sub = document.createElement("ul");
    for (const scope of agents) {
      const entry = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "scope";
      button.dataset.user = scope.user_id;
      button.dataset.agent = scope.agent_id;
      button.textContent = `${scope.agent_id} (${scope.memories})`;
      if (state.scope && state.scope.user_id === scope.user_id && state.scope.agent_id === scope.agent_id) {
        button.classList.add("selected");
      }
      button.addEventListener("click", () => openScope(scope).catch(showError));
      entry.append(button);
      sub.append(entry);
    }
    item.append(name, sub);
    list.append(item);
  }
}

async function openScope(scope) {
  state.scope = { user_id: scope.user_id, agent_id: scope.agent_id };
  for (const button of document.querySelectorAll("button.scope")) {
    const same = button.dataset.user === scope.user_id && button.dataset.agent === scope.agent_id;
    button.classList.toggle("selected", same);
  }
  $("pick-scope").hidden = true;
  $("scope-detail").hidden = false;
  $("scope-title").textContent = `${scope.user_id} · ${scope.agent_id}`;
  clearResults();
  $("memory-list").replaceChildren();
  state.cursor = null;
  await loadPage();
}

async function loadPage() {
  const { user_id, agent_id } = state.scope;
  const page = await api("GET", "/memories", {
    query: { user_id, agent_id, limit: PAGE_SIZE, cursor: state.cursor },
  });
  for (const memory of page.memories) $("memory-list").append(memoryItem(memory));
  state.cursor = page.next_cursor;
  $("more").hidden = state.cursor === null;
}

// ---- one memory: show, edit, forget ------------------------------------------------------

function memoryItem(memory) {
  const item = $("memory-template").content.firstElementChild.cloneNode(true);
  fillMemory(item, memory);
  item.querySelector(".edit").addEventListener("click", () => openEditor(item));
  item.querySelector(".cancel").addEventListener("click", () => {
    item.querySelector(".editor").hidden = true;
  });
  item.querySelector(".editor").addEventListener("submit", (event) => saveEdit(event, item));
  item.querySelector(".forget").addEventListener("click", () => forgetOne(item).catch(showError));
  return item;
}

function fillMemory(item, memory) {
  item.memory = memory;
  item.dataset.id = memory.id;
  item.querySelector(".content").textContent = memory.content;
  item.querySelector(".id").textContent = memory.id;
  item.querySelector(".session").textContent = memory.session_id ?? "—";
  item.querySelector(".key").textContent = memory.key ?? "—";
  item.querySelector(".metadata").textContent = JSON.stringify(memory.metadata);
  item.querySelector(".updated").textContent = memory.updated_at;
}

function openEditor(item) {
  item.querySelector(".edit-content").value = item.memory.content;
  item.querySelector(".edit-metadata").value = JSON.stringify(item.memory.metadata, null, 2);
  item.querySelector(".edit-error").textContent = "";
  item.querySelector(".editor").hidden = false;
}

async function saveEdit(event, item) {
  event.preventDefault();
  const message = item.querySelector(".edit-error");
  let metadata;
  try {
    metadata = JSON.parse(item.querySelector(".edit-metadata").value || "{}");
  } catch (error) {
    message.textContent = "metadata is not valid JSON: " + error.message;
    return;
  }
  if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) {
    message.textContent = "metadata must be a JSON object";
    return;
  }
  const content = item.querySelector(".edit-content").value;
  try {
    const memory = await api("PATCH", "/memories/" + encodeURIComponent(item.memory.id), {
      body: { content, metadata },
    });
    fillMemory(item, memory);
    item.querySelector(".editor").hidden = true;
  } catch (error) {
    message.textContent = error.message;
  }
}

async function forgetOne(item) {
  const preview = item.memory.content.slice(0, 80);
  if (!window.confirm(`Forget this memory for good?\n\n${preview}`)) return;
  await api("DELETE", "/memories/" + encodeURIComponent(item.memory.id));
  item.remove();
  for (const hit of document.querySelectorAll(`#result-list li`)) {
    if (hit.dataset.id === item.memory.id) hit.remove();
  }
  state.usage.memories_stored -= 1;
  renderUsage();
  await loadScopes();
}

async function forgetScope() {
  const { user_id, agent_id } = state.scope;
  if (!window.confirm(`Forget every memory of ${user_id} · ${agent_id}? This cannot be undone.`)) return;
  const { deleted } = await api("DELETE", "/memories", { query: { user_id, agent_id } });
  state.usage.memories_stored -= deleted;
  renderUsage();
  state.scope = null;
  $("scope-detail").hidden = true;
  $("pick-scope").hidden = false;
  await loadScopes();
}

// ---- recall ------------------------------------------------------------------------------

function clearResults() {
  $("result-list").replaceChildren();
  $("results").hidden = true;
}

// Scores as people compare them: three decimals, lined up; the tiniest shown as such.
function scoreText(score) {
  return score < 0.0005 ? "<0.001" : score.toFixed(3);
}

// Why a hit came back, in words; a neighbour among the results is named by its text.
function whyText(why, contents) {
  if (!why) return "";
  const parts = [];
  if (why.matched_words && why.matched_words.length) parts.push("matched words: " + why.matched_words.join(", "));
  if (why.neighbour_of) {
    const text = contents.get(why.neighbour_of);
    const name = text === undefined ? why.neighbour_of : `“${text.length > 60 ? text.slice(0, 59) + "…" : text}”`;
    parts.push(`next turn to ${name} in its conversation`);
  }
  // Reasons a newer server adds (a vector similarity, say) are shown as they come.
  for (const [field, value] of Object.entries(why)) {
    if (field === "matched_words" || field === "neighbour_of" || value === null) continue;
    parts.push(`${field.replaceAll("_", " ")} ${typeof value === "number" ? scoreText(value) : JSON.stringify(value)}`);
  }
  return parts.join("; ") || "no reason recorded";
}

async function search(event) {
  event.preventDefault();
  const { user_id, agent_id } = state.scope;
  const all = $("search-agent").value === "all";
  const { results } = await api("POST", "/memories/search", {
    body: {
      query: $("query").value,
      user_id,
      agent_id: all ? null : agent_id,
      limit: RECALL_LIMIT,
      explain: true,
    },
  });
  const list = $("result-list");
  list.replaceChildren();
  const contents = new Map(results.map((hit) => [hit.memory.id, hit.memory.content]));
  for (const hit of results) {
    const item = document.createElement("li");
    item.className = "hit";
    item.dataset.id = hit.memory.id;
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = scoreText(hit.score);
    const content = document.createElement("span");
    content.className = "content";
    content.textContent = hit.memory.content;
    const where = document.createElement("span");
    where.className = "muted agent";
    where.textContent = hit.memory.agent_id;
    const why = document.createElement("div");
    why.className = "why";
    why.textContent = whyText(hit.why, contents);
    item.append(score, content, where, why);
    list.append(item);
  }
  $("no-results").hidden = results.length > 0;
  $("results").hidden = false;
}

// ---- wiring ------------------------------------------------------------------------------

function showError(error) {
  $("error").textContent = error.message;
  if (error.status === 401 || error.status === 403) {
    sessionStorage.removeItem(KEY_SLOT);
  }
}

function guard(handler) {
  return (event) => {
    $("error").textContent = "";
    handler(event).catch(showError);
  };
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("search").addEventListener("submit", guard(search));
  $("clear-results").addEventListener("click", clearResults);
  $("more").addEventListener("click", guard(loadPage));
  $("forget-scope").addEventListener("click", guard(forgetScope));
  if (sessionStorage.getItem(KEY_SLOT)) {
    start().catch((error) => {
      sessionStorage.removeItem(KEY_SLOT);
      $("sign-in-error").textContent = error.message;
    });
  }
});
