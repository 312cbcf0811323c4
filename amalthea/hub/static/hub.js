// Small helpers for the hub's own pages; no framework, no CDN.
(function () {
  "use strict";
  const body = document.body;
  const prefix = body.dataset.hubPrefix;
  const xsrf = body.dataset.xsrf;

  function api(method, path, data) {
    return fetch(prefix + "api/" + path, {
      method: method,
      headers: { "Content-Type": "application/json", "X-XSRFToken": xsrf },
      body: data === undefined ? undefined : JSON.stringify(data),
      credentials: "same-origin",
    });
  }

  function home(user) {
    const u = encodeURIComponent(user);
    document.querySelectorAll("[data-stop]").forEach((b) => b.addEventListener("click", async () => {
      const name = b.dataset.stop;
      b.disabled = true; b.textContent = "Stopping…";
      const r = await api("DELETE", name ? `users/${u}/servers/${encodeURIComponent(name)}` : `users/${u}/server`);
      if (r.status === 202) { await new Promise((ok) => setTimeout(ok, 1000)); }
      location.reload();
    }));
    document.querySelectorAll("[data-remove]").forEach((b) => b.addEventListener("click", async () => {
      if (!confirm("Delete this server?")) return;
      await api("DELETE", `users/${u}/servers/${encodeURIComponent(b.dataset.remove)}`, { remove: true });
      location.reload();
    }));
    const form = document.getElementById("new-server");
    if (form) form.addEventListener("submit", (e) => {
      e.preventDefault();
      const name = form.server_name.value.trim();
      location.href = `${prefix}spawn/${u}/${encodeURIComponent(name)}`;
    });
  }

  function progress() {
    const card = document.getElementById("progress-card");
    const bar = document.getElementById("progress-bar");
    const msg = document.getElementById("progress-message");
    const logEl = document.getElementById("progress-log");
    const tail = document.getElementById("progress-log-tail");
    const src = new EventSource(card.dataset.progressUrl);
    src.onmessage = (e) => {
      const ev = JSON.parse(e.data);
      if (ev.progress !== undefined) bar.style.width = ev.progress + "%";
      if (ev.message) {
        msg.textContent = ev.message;
        const li = document.createElement("li"); li.textContent = ev.message; logEl.appendChild(li);
      }
      if (ev.ready) {
        src.close(); bar.classList.add("ready");
        location.href = card.dataset.next || ev.url;
      } else if (ev.failed) {
        src.close(); bar.classList.add("failed");
        msg.classList.add("alert");
        if (ev.log_tail && ev.log_tail.length) { tail.textContent = ev.log_tail.join("\n"); tail.classList.remove("hidden"); }
        document.getElementById("retry").classList.remove("hidden");
      }
    };
    src.onerror = () => { src.close(); setTimeout(() => location.reload(), 1000); };
  }

  function tokens(user) {
    const u = encodeURIComponent(user);
    const form = document.getElementById("request-token-form");
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const body = { note: form.note.value || "Requested via token page" };
      if (form.expires_in.value) body.expires_in = parseInt(form.expires_in.value, 10);
      const scopes = form.scopes.value.trim();
      if (scopes) body.scopes = scopes.split(/\s+/);
      const r = await api("POST", `users/${u}/tokens`, body);
      const data = await r.json();
      if (r.ok) {
        document.getElementById("token-value").textContent = data.token;
        document.getElementById("token-result").classList.remove("hidden");
      } else {
        const err = document.getElementById("token-error");
        err.textContent = data.message || ("Error " + r.status); err.classList.remove("hidden");
      }
    });
    document.querySelectorAll("[data-revoke]").forEach((b) => b.addEventListener("click", async () => {
      await api("DELETE", `users/${u}/tokens/${b.dataset.revoke}`);
      location.reload();
    }));
  }

  window.amalthea = { api, home, progress, tokens };
})();
