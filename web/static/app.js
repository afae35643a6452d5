// infrad's UI: hash routes over the REST API, with the token kept in sessionStorage.
"use strict";

const main = document.getElementById("main");
let poll = null; // the live page's refresh timer

// Sign-in: the start-up log gives /ui/#token=...; the form takes a pasted token.
function token() { return sessionStorage.getItem("infrad-token"); }
(function takeTokenFromURL() {
  const m = location.hash.match(/^#token=([0-9a-fA-F]+)/);
  if (m) {
    sessionStorage.setItem("infrad-token", m[1]);
    history.replaceState(null, "", location.pathname + "#/dashboard");
  }
})();

class APIError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
    this.field = body?.error?.field || "";
  }
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${token()}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (res.status === 401) { signIn("the token was refused"); throw new APIError(401, null); }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new APIError(res.status, data);
  return data;
}
const get = (path) => api("GET", path);

// h builds an element: h("td", {class: "x"}, "text", child, ...).
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) el.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return el;
}
const badge = (text, kind) => h("span", { class: `badge ${kind || text}` }, text);
const when = (t) => (t && !t.startsWith("0001") ? new Date(t).toLocaleString() : "");
const table = (heads, rows) => h("table", {}, h("thead", {}, h("tr", {}, heads.map((x) => h("th", {}, x)))), h("tbody", {}, rows));

function signIn(why) {
  clearInterval(poll);
  sessionStorage.removeItem("infrad-token");
  document.getElementById("signout").hidden = true;
  main.replaceChildren(document.getElementById("signin").content.cloneNode(true));
  document.getElementById("signin-error").textContent = why || "";
  document.getElementById("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem("infrad-token", new FormData(e.target).get("token").trim());
    location.hash = "#/dashboard";
    route();
  });
}
document.getElementById("signout").addEventListener("click", () => signIn("signed out"));

// A form whose errors appear beside the field the API names.
function fieldForm(fields, submitLabel, onSubmit) {
  const form = h("form", { class: "inline" });
  const errs = {};
  for (const f of fields) {
    const input = f.options
      ? h("select", { name: f.name }, f.options.map((o) => h("option", { value: o, selected: o === f.value }, o)))
      : h("input", { name: f.name, placeholder: f.placeholder || "", value: f.value ?? "", required: f.required });
    errs[f.name] = h("span", { class: "error", "data-error-for": f.name });
    form.append(h("label", {}, f.label, input, errs[f.name]));
  }
  const general = h("p", { class: "error", "data-error-for": "" });
  form.append(h("button", { type: "submit" }, submitLabel), general);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    for (const el of form.querySelectorAll(".error")) el.textContent = "";
    for (const el of form.querySelectorAll("input")) el.classList.remove("invalid");
    const values = Object.fromEntries(new FormData(form));
    try {
      await onSubmit(values);
    } catch (err) {
      if (!(err instanceof APIError)) throw err;
      const top = err.field.split(/[.[]/)[0];
      if (errs[top]) {
        errs[top].textContent = err.message;
        form.querySelector(`[name="${top}"]`)?.classList.add("invalid");
      } else general.textContent = err.message;
    }
  });
  return form;
}

// --- pages ---

async function dashboard() {
  const [status, ntp, subnets, leases, cl] = await Promise.all([
    get("/api/v1/status"), get("/api/v1/ntp"), get("/api/v1/subnets"), get("/api/v1/dhcp/leases"), get("/api/v1/cluster")]);
  let certs = null;
  try { certs = await get("/api/v1/ca/certificates"); } catch (e) { if (e.status !== 503) throw e; }
  document.getElementById("site").textContent = `${status.site.domain.replace(/\.$/, "")} · infrad ${status.version}`;
  const services = h("section", { class: "card", id: "services" }, h("h2", {}, "Services, in start order"),
    table(["Service", "State", "Since", "Last error"], status.services.map((s) =>
      h("tr", { "data-service": s.name }, h("td", {}, s.name), h("td", {}, badge(s.state)), h("td", {}, when(s.since)), h("td", { class: "muted" }, s.last_error || "")))));
  const time = h("section", { class: "card", id: "ntp" }, h("h2", {}, "Time"),
    table(["Source", "Stratum", "Leap", "Offset"], [h("tr", {}, h("td", {}, ntp.source, ntp.refid ? ` (${ntp.refid})` : ""), h("td", {}, String(ntp.stratum)),
      h("td", {}, ntp.leap === 3 ? badge("unsynchronised", "bad") : badge("ok")), h("td", {}, `${(ntp.offset_seconds * 1000).toFixed(3)} ms`))]),
    ntp.why ? h("p", { class: "muted" }, ntp.why) : "");
  const pools = [];
  for (const sn of subnets) for (const r of sn.ranges || []) {
    if (r.kind !== "dhcp") continue;
    const size = ipNum(r.end) - ipNum(r.start) + 1;
    const used = leases.filter((l) => ipNum(l.ip) >= ipNum(r.start) && ipNum(l.ip) <= ipNum(r.end)).length;
    pools.push(h("tr", {}, h("td", {}, sn.name), h("td", {}, `${r.start} – ${r.end}`),
      h("td", {}, h("div", { class: "meter" }, h("span", { style: `width:${(100 * used) / size}%` }))), h("td", {}, `${used} / ${size}`)));
  }
  const pool = h("section", { class: "card", id: "pools" }, h("h2", {}, "DHCP pools"),
    pools.length ? table(["Subnet", "Range", "Used", ""], pools) : h("p", { class: "muted" }, "No DHCP range."));
  const soon = certs ? certs.filter((c) => !c.revoked && new Date(c.not_after) - Date.now() < 7 * 864e5) : [];
  const ca = h("section", { class: "card", id: "certs" }, h("h2", {}, "Certificates"),
    certs === null ? h("p", { class: "muted" }, "The CA has not started.") :
      h("p", {}, `${certs.length} issued, ${soon.length} expiring within a week`),
    soon.length ? table(["Names", "Expires"], soon.map((c) => h("tr", {}, h("td", {}, c.names.join(", ")), h("td", {}, when(c.not_after))))) : "");
  const role = (n) => (n.witness ? "witness" : n.voter ? "voter" : "not a voter");
  const cluster = h("section", { class: "card", id: "cluster" },
    h("h2", {}, cl.nodes.length > 1 ? `Cluster · leader ${cl.leader || "none known"}` : "One box"),
    cl.quorum ? "" : h("p", {}, badge("no quorum", "bad"),
      ` ${cl.node} cannot reach a majority of the cluster: it answers from what it has and refuses writes.`),
    table(["Node", "Role", "State", "Last contact", "Applied", "Lag"], cl.nodes.map((n) =>
      h("tr", { "data-node": n.name }, h("td", {}, n.name, n.address ? ` (${n.address})` : "",
        n.error ? h("div", { class: "muted" }, n.error) : ""), h("td", {}, role(n)),
        h("td", {}, badge(n.state, n.state === "unreachable" ? "bad" : n.state === "candidate" ? "warn" : "ok")),
        h("td", {}, n.last_contact ? when(n.last_contact) : "never"), h("td", {}, String(n.applied)), h("td", {}, String(n.lag))))));
  return [h("h1", {}, "Dashboard"), services, cluster, h("div", { class: "grid" }, time, pool, ca)];
}

function ipNum(ip) {
  return ip.includes(":") ? NaN : ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);
}

async function subnetsPage() {
  const [subnets, hosts, leases] = await Promise.all([get("/api/v1/subnets"), get("/api/v1/hosts"), get("/api/v1/dhcp/leases")]);
  const legend = h("div", { class: "legend" }, ["host", "lease", "pool", "reserved", "edge", "free"].map((k) =>
    h("span", {}, h("i", { class: k }), { edge: "gateway, network, broadcast", pool: "DHCP pool" }[k] || k)));
  return [h("h1", {}, "Subnets"), legend, ...subnets.map((sn) => {
    const [base, bits] = sn.cidr.split("/");
    const size = base.includes(":") ? Infinity : 2 ** (32 - Number(bits));
    const first = ipNum(base);
    const kind = (n) => {
      if (n === first || n === first + size - 1 || (sn.gateway && n === ipNum(sn.gateway))) return "edge";
      if (hosts.some((x) => ipNum(x.ip) === n)) return "host";
      if (leases.some((l) => ipNum(l.ip) === n)) return "lease";
      for (const r of sn.ranges || []) if (n >= ipNum(r.start) && n <= ipNum(r.end)) return r.kind === "dhcp" ? "pool" : "reserved";
      return "free";
    };
    let bar;
    if (size <= 1024) {
      bar = h("div", { class: "bar" }, Array.from({ length: size }, (_, i) =>
        h("i", { class: kind(first + i), title: numIP(first + i) })));
    } else { // too many to draw one by one: the ranges, to scale
      bar = h("div", { class: "bar wide" });
      let at = first;
      for (const r of [...(sn.ranges || [])].sort((a, b) => ipNum(a.start) - ipNum(b.start))) {
        const s = ipNum(r.start), e = ipNum(r.end);
        if (!Number.isFinite(size)) break;
        bar.append(h("i", { class: "free", style: `flex:${s - at}` }), h("i", { class: r.kind === "dhcp" ? "pool" : "reserved", style: `flex:${e - s + 1}`, title: `${r.kind} ${r.name || ""} ${r.start}–${r.end}` }));
        at = e + 1;
      }
      if (Number.isFinite(size)) bar.append(h("i", { class: "free", style: `flex:${first + size - at}` }));
    }
    const inside = (ip) => ipNum(ip) >= first && ipNum(ip) < first + size;
    return h("section", { class: "card", "data-subnet": sn.name },
      h("h2", {}, `${sn.name} `, h("span", { class: "muted" }, `${sn.cidr} · ${sn.purpose}${sn.gateway ? " · gateway " + sn.gateway : ""}`),
        sn.owner === "file" ? badge("site file", "") : ""),
      bar,
      h("p", { class: "muted" }, `${hosts.filter((x) => inside(x.ip)).length} hosts, ${leases.filter((l) => inside(l.ip)).length} leases`));
  })];
}
const numIP = (n) => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join(".");

async function hostsPage() {
  const hosts = await get("/api/v1/hosts");
  const list = h("tbody");
  const search = h("input", { type: "search", placeholder: "Search name, IP, MAC, role", id: "host-search" });
  const draw = () => {
    const q = search.value.toLowerCase();
    list.replaceChildren(...hosts.filter((x) => !q || [x.name, x.ip, x.mac, x.role].some((v) => (v || "").toLowerCase().includes(q))).map(hostRow));
  };
  search.addEventListener("input", draw);
  draw();
  const add = fieldForm([
    { name: "name", label: "Name", required: true }, { name: "ip", label: "IP address", required: true },
    { name: "mac", label: "MAC" }, { name: "role", label: "Role" }], "Add host",
  async (v) => { await api("POST", "/api/v1/hosts", clean(v)); route(); });
  return [h("h1", {}, "Hosts"), h("section", { class: "card", id: "add-host" }, h("h2", {}, "Add a host"), add),
    h("section", { class: "card" }, search, h("table", { id: "hosts" },
      h("thead", {}, h("tr", {}, ["Name", "IP", "MAC", "Role", "Owner", ""].map((x) => h("th", {}, x)))), list))];
}

function hostRow(x) {
  const actions = x.owner === "file"
    ? h("td", { class: "muted" }, "read-only")
    : h("td", {}, h("button", { class: "secondary", onclick: (e) => editHost(e.target.closest("tr"), x) }, "Edit"), " ",
      h("button", { class: "danger", onclick: async () => { if (confirm(`Delete ${x.name}?`)) { await api("DELETE", `/api/v1/hosts/${x.name}`); route(); } } }, "Delete"));
  return h("tr", { "data-host": x.name }, h("td", {}, x.name), h("td", {}, x.ip), h("td", {}, x.mac || ""), h("td", {}, x.role || ""),
    h("td", {}, x.owner === "file" ? badge("site file", "") : badge("api", "")), actions);
}

function editHost(row, x) {
  const form = fieldForm([
    { name: "ip", label: "IP address", value: x.ip }, { name: "mac", label: "MAC", value: x.mac },
    { name: "role", label: "Role", value: x.role }], "Save",
  async (v) => { await api("PUT", `/api/v1/hosts/${x.name}`, clean(v)); route(); });
  row.replaceChildren(h("td", {}, x.name), h("td", { colspan: 5 }, form));
}

// clean drops empty fields, so that the API sees them as absent.
const clean = (v) => Object.fromEntries(Object.entries(v).filter(([, x]) => x !== ""));

async function leasesPage() {
  const leases = await get("/api/v1/dhcp/leases");
  const filter = h("input", { type: "search", placeholder: "Filter by IP, MAC or hostname", id: "lease-filter", value: leaseFilter });
  const body = h("tbody");
  const draw = () => {
    leaseFilter = filter.value;
    const q = filter.value.toLowerCase();
    body.replaceChildren(...leases.filter((l) => !q || [l.ip, l.mac, l.hostname].some((v) => (v || "").toLowerCase().includes(q))).map((l) =>
      h("tr", { "data-lease": l.ip }, h("td", {}, l.ip), h("td", {}, l.mac || ""), h("td", {}, l.hostname || ""), h("td", {}, when(l.expires)),
        h("td", {}, l.declined ? badge("declined", "warn") : ""),
        h("td", {}, h("button", { class: "danger", onclick: async () => { await api("DELETE", `/api/v1/dhcp/leases/${l.ip}`); route(); } }, "Release")))));
  };
  filter.addEventListener("input", draw);
  draw();
  return [h("h1", {}, "Leases ", h("span", { class: "muted" }, `(${leases.length}, live)`)),
    h("section", { class: "card" }, filter, table(["IP", "MAC", "Hostname", "Expires", "", ""], [body]))];
}
let leaseFilter = "";

async function dnsPage() {
  const records = await get("/api/v1/dns/records");
  const add = fieldForm([
    { name: "name", label: "Name", placeholder: "grafana, or x.example.com.", required: true },
    { name: "type", label: "Type", options: ["A", "AAAA", "CNAME", "SRV", "TXT", "MX", "PTR"] },
    { name: "value", label: "Value", required: true }, { name: "ttl", label: "TTL", placeholder: "site default" }], "Add record",
  async (v) => { const r = clean(v); if (r.ttl) r.ttl = Number(r.ttl); await api("POST", "/api/v1/dns/records", r); route(); });
  return [h("h1", {}, "DNS records"), h("section", { class: "card" }, h("h2", {}, "Add a record"), add),
    h("section", { class: "card" }, table(["Name", "Type", "Value", "TTL", "Owner", ""], records.map((r) =>
      h("tr", { "data-record": r.id }, h("td", {}, r.name), h("td", {}, r.type), h("td", {}, r.value), h("td", {}, r.ttl !== undefined ? String(r.ttl) : ""),
        h("td", {}, badge(r.owner === "file" ? "site file" : "api", "")),
        h("td", {}, r.owner === "file" ? "" : h("button", { class: "danger", onclick: async () => { await api("DELETE", `/api/v1/dns/records/${r.id}`); route(); } }, "Delete"))))))];
}

async function caPage() {
  let info, certs;
  try { [info, certs] = await Promise.all([get("/api/v1/ca"), get("/api/v1/ca/certificates")]); } catch (e) {
    if (e.status === 503) return [h("h1", {}, "Certificate authority"), h("p", { class: "muted" }, e.message)];
    throw e;
  }
  return [h("h1", {}, "Certificate authority"), h("section", { class: "card" }, table(["", ""], [
    h("tr", {}, h("th", {}, "Root"), h("td", {}, h("a", { href: "/api/v1/ca/root.pem", download: "root.pem" }, "Download root.pem"), " ", h("code", {}, info.root_fingerprint_sha256))),
    h("tr", {}, h("th", {}, "ACME directory"), h("td", {}, h("code", {}, info.directory))),
    h("tr", {}, h("th", {}, "Intermediate expires"), h("td", {}, when(info.intermediate_expiry))),
    h("tr", {}, h("th", {}, "Certificate lifetime"), h("td", {}, info.cert_lifetime))])),
  h("section", { class: "card" }, h("h2", {}, "Issued"), table(["Serial", "Names", "Not after", ""], certs.map((c) =>
    h("tr", {}, h("td", {}, h("code", {}, c.serial)), h("td", {}, c.names.join(", ")), h("td", {}, when(c.not_after)), h("td", {}, c.revoked ? badge("revoked", "bad") : "")))))];
}

// --- routing ---

const pages = { dashboard: [dashboard, true], subnets: [subnetsPage], hosts: [hostsPage], leases: [leasesPage, true], dns: [dnsPage], ca: [caPage] };

async function route() {
  clearInterval(poll);
  if (!token()) return signIn();
  document.getElementById("signout").hidden = false;
  const name = (location.hash.match(/^#\/(\w+)/) || [])[1] || "dashboard";
  const [page, live] = pages[name] || pages.dashboard;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.getAttribute("href") === `#/${name}`);
  const draw = async (refresh) => {
    try {
      const content = await page();
      const focused = document.activeElement;
      // A live page's refresh does not redraw under a form being filled in; a search box it keeps.
      if (refresh && focused && main.contains(focused) && focused.type !== "search") return;
      main.replaceChildren(...content);
      if (focused?.id && focused.type === "search") document.getElementById(focused.id)?.focus();
    } catch (e) {
      if (e.status !== 401) main.replaceChildren(h("p", { class: "error" }, e.message));
    }
  };
  await draw(false);
  if (live) poll = setInterval(() => draw(true), 2000); // live pages follow the site
}
window.addEventListener("hashchange", route);
route();
