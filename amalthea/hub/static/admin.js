// Admin panel: every action is a REST API call (paginated, searchable; works with 10,000 users).
(function () {
  "use strict";
  const root = document.getElementById("admin");
  if (!root) return;
  const prefix = document.body.dataset.hubPrefix;
  const xsrf = document.body.dataset.xsrf;
  const limit = parseInt(root.dataset.pageLimit, 10) || 50;
  const PAGED = "application/jupyterhub-pagination+json";
  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;
  let offset = 0, total = 0, detail = null, searchTimer = null;

  async function api(method, path, data, accept) {
    const r = await fetch(prefix + "api/" + path, {
      method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-XSRFToken": xsrf, Accept: accept || "application/json" },
      body: data === undefined ? undefined : JSON.stringify(data),
    });
    if (r.status >= 400) {
      let msg = r.statusText;
      try { msg = (await r.json()).message || msg; } catch (e) { /* not JSON */ }
      show(`${method} ${path}: ${r.status} ${msg}`);
      throw new Error(msg);
    }
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  }
  function show(msg) { const m = $("admin-msg"); m.textContent = msg; m.classList.toggle("hidden", !msg); }
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => (k.startsWith("on") ? e.addEventListener(k.slice(2), v) : e.setAttribute(k, v)));
    kids.forEach((k) => e.append(k));
    return e;
  }
  const btn = (label, fn, cls) => el("button", { class: cls || "", type: "button", onclick: fn }, label);
  const when = (ts) => (ts ? new Date(ts).toLocaleString() : "never");
  const serverPath = (u, s) => (s ? `users/${enc(u)}/servers/${enc(s)}` : `users/${enc(u)}/server`);

  async function loadUsers() {
    const q = $("search").value.trim(), state = $("state-filter").value;
    let path = `users?offset=${offset}&limit=${limit}&sort=name&include_stopped_servers=1`;
    if (q) path += `&name_filter=${enc(q)}`;
    if (state) path += `&state=${state}`;
    const { body } = await api("GET", path, undefined, PAGED);
    total = body._pagination.total;
    $("page-info").textContent = total ? `${offset + 1}–${Math.min(offset + limit, total)} of ${total}` : "no users";
    $("prev").disabled = offset === 0;
    $("next").disabled = !body._pagination.next;
    const tbody = $("users-body");
    tbody.replaceChildren(...body.items.map(userRow));
  }

  function serverCell(u, s) {
    const label = s.name || "default";
    const state = s.ready ? "running" : s.pending ? s.pending : "stopped";
    const span = el("span", { class: "srv", "data-server": label }, el("span", { class: `state ${state === "running" ? "running" : state === "stopped" ? "" : "pending"}` }, `${label}: ${state}`), " ");
    if (s.ready || s.pending === "spawn") span.append(btn("stop", () => act("DELETE", serverPath(u.name, s.name)), "danger"));
    else if (!s.pending) span.append(btn("start", () => act("POST", serverPath(u.name, s.name))));
    span.append(btn("log", () => showLog(u.name, s.name), "subtle"));
    return span;
  }

  function userRow(u) {
    const servers = Object.values(u.servers || {});
    if (!servers.some((s) => s.name === "")) servers.unshift({ name: "", ready: false, pending: null });
    return el("tr", { "data-user": u.name },
      el("td", {}, el("a", { href: "#", onclick: (e) => { e.preventDefault(); openDetail(u.name); } }, u.name)),
      el("td", {}, u.admin ? "yes" : ""),
      el("td", { class: "muted small" }, when(u.last_activity)),
      el("td", {}, ...servers.map((s) => serverCell(u, s))),
      el("td", { class: "actions" },
        btn(u.admin ? "revoke admin" : "make admin", () => act("PATCH", `users/${enc(u.name)}`, { admin: !u.admin })),
        btn("password link", () => passwordLink(u.name)),
        btn("delete", () => confirm(`Delete user ${u.name}?`) && act("DELETE", `users/${enc(u.name)}`), "danger")));
  }

  async function act(method, path, data) {
    try {
      const r = await api(method, path, data);
      if (r.status === 202) await new Promise((ok) => setTimeout(ok, 1000));
      show("");
    } catch (e) { /* shown already */ }
    await loadUsers();
    if (detail) await openDetail(detail);
  }

  // One-time "set your password" link (local accounts): shown once, for the admin to pass on.
  async function passwordLink(name) {
    try {
      const { body } = await api("POST", `users/${enc(name)}/password-link`);
      const until = new Date(body.expires_at).toLocaleString();
      show(`Send this one-time link to ${name} (valid until ${until}, works once): ${body.url}`);
    } catch (e) { /* shown */ }
  }

  async function showLog(user, server) {
    try {
      const { body } = await api("GET", `users/${enc(user)}/server-logs/${enc(server)}`);
      $("user-detail").classList.remove("hidden");
      $("detail-log").textContent = (body.lines || []).join("\n") || "(empty)";
    } catch (e) { /* shown */ }
  }

  async function openDetail(name) {
    if (detail !== name) $("new-token-result").classList.add("hidden");
    detail = name;
    $("user-detail").classList.remove("hidden");
    $("detail-name").textContent = name;
    const [user, tokens, shares, shared] = await Promise.all([
      api("GET", `users/${enc(name)}?include_stopped_servers=1`),
      api("GET", `users/${enc(name)}/tokens`).catch(() => ({ body: { api_tokens: [] } })),
      api("GET", `shares/${enc(name)}`).catch(() => ({ body: { items: [] } })),
      api("GET", `users/${enc(name)}/shared`).catch(() => ({ body: { items: [] } })),
    ]);
    const u = user.body;
    $("detail-servers").replaceChildren(...Object.values(u.servers || {}).map((s) => el("div", {}, serverCell(u, s), el("span", { class: "muted small" }, ` last activity ${when(s.last_activity)}`))));
    $("detail-tokens").replaceChildren(...tokens.body.api_tokens.map((t) => el("tr", {},
      el("td", {}, t.note || t.id), el("td", { class: "small muted" }, (t.scopes || []).join(" ")),
      el("td", {}, btn("revoke", () => act("DELETE", `users/${enc(name)}/tokens/${t.id}`), "danger")))));
    $("detail-shares").replaceChildren(...shares.body.items.map((s) => el("tr", {},
      el("td", {}, `${s.server.name || "default"} → ${s.user ? s.user.name : "group " + s.group.name}`),
      el("td", {}, btn("revoke", () => act("PATCH", `shares/${enc(name)}/${enc(s.server.name)}`, s.user ? { user: s.user.name } : { group: s.group.name }), "danger")))));
    $("detail-shared").replaceChildren(...shared.body.items.map((s) => el("tr", {},
      el("td", {}, `${s.server.user.name}/${s.server.name || "default"}`))));
  }

  async function loadGroups() {
    const { body } = await api("GET", "groups?limit=200", undefined, PAGED);
    $("groups-body").replaceChildren(...body.items.map((g) => {
      const add = el("input", { placeholder: "user", size: "10" });
      return el("tr", { "data-group": g.name },
        el("td", {}, g.name),
        el("td", {}, ...(g.users || []).map((m) => el("span", { class: "chip" }, m, btn("×", async () => { await api("DELETE", `groups/${enc(g.name)}/users`, { users: [m] }); loadGroups(); }, "subtle")))),
        el("td", { class: "actions" }, add, btn("add", async () => { await api("POST", `groups/${enc(g.name)}/users`, { users: [add.value.trim()] }); loadGroups(); }),
          btn("delete", async () => { if (confirm(`Delete group ${g.name}?`)) { await api("DELETE", `groups/${enc(g.name)}`); loadGroups(); } }, "danger")));
    }));
  }

  async function loadServices() {
    const { body } = await api("GET", "services");
    $("services-body").replaceChildren(...Object.values(body).map((s) => el("tr", {},
      el("td", {}, s.name), el("td", {}, s.prefix ? el("a", { href: s.prefix }, s.prefix) : s.url || ""),
      el("td", {}, (s.command || []).length ? `yes (pid ${s.pid || "-"})` : "no"))));
  }

  document.querySelectorAll("[data-tab]").forEach((b) => b.addEventListener("click", () => {
    document.querySelectorAll("[data-tab]").forEach((x) => x.classList.toggle("primary", x === b));
    document.querySelectorAll("[data-panel]").forEach((p) => p.classList.toggle("hidden", p.dataset.panel !== b.dataset.tab));
    ({ users: loadUsers, groups: loadGroups, services: loadServices })[b.dataset.tab]();
  }));
  $("search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(() => { offset = 0; loadUsers(); }, 250); });
  $("state-filter").addEventListener("change", () => { offset = 0; loadUsers(); });
  $("user-search").addEventListener("submit", (e) => { e.preventDefault(); offset = 0; loadUsers(); });
  $("prev").addEventListener("click", () => { offset = Math.max(0, offset - limit); loadUsers(); });
  $("next").addEventListener("click", () => { offset += limit; loadUsers(); });
  $("add-users").addEventListener("submit", async (e) => {
    e.preventDefault();
    const names = $("add-names").value.split(/[\s,]+/).filter(Boolean);
    try { await api("POST", "users", { usernames: names, admin: $("add-admin").checked }); $("add-names").value = ""; show(""); } catch (err) { /* shown */ }
    loadUsers();
  });
  // Per-user actions in the detail pane, all through the same REST API as everything else.
  const onSubmit = (id, fn) => $(id).addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!detail) return;
    try { await fn(detail); show(""); } catch (err) { /* shown */ }
    await loadUsers();
    await openDetail(detail);
  });
  onSubmit("new-server", async (name) => {
    const server = $("new-server-name").value.trim();
    const r = await api("POST", serverPath(name, server));
    if (r.status === 202) await new Promise((ok) => setTimeout(ok, 1000));
    $("new-server-name").value = "";
  });
  onSubmit("new-token", async (name) => {
    const body = { note: $("new-token-note").value.trim() || "Created by an admin in the admin panel" };
    const exp = $("new-token-expires").value.trim();
    if (exp) body.expires_in = parseInt(exp, 10);
    const r = await api("POST", `users/${enc(name)}/tokens`, body);
    $("new-token-value").textContent = r.body.token;  // the only time the secret is visible
    $("new-token-result").classList.remove("hidden");
    $("new-token-note").value = $("new-token-expires").value = "";
  });
  onSubmit("new-share", async (name) => {
    const kind = $("share-kind").value, who = $("share-with").value.trim();
    await api("POST", `shares/${enc(name)}/${enc($("share-server").value.trim())}`, { [kind]: who });
    $("share-with").value = "";
  });
  $("add-group").addEventListener("submit", async (e) => {
    e.preventDefault();
    try { await api("POST", `groups/${enc($("group-name").value.trim())}`); $("group-name").value = ""; } catch (err) { /* shown */ }
    loadGroups();
  });
  loadUsers();
})();
