// infrad's UI: hash routes over the REST API. The token is kept in localStorage, so
// every tab of the browser shares the sign-in, and signing out in one signs out all.
"use strict";

const main = document.getElementById("main");
const TOKEN = "infrad-token";
let poll = null; // the live page's refresh timer

// --- the API ---

function token() { return localStorage.getItem(TOKEN); }
// The start-up log gives /ui/#token=...: the token is taken out of the address bar.
(function takeTokenFromURL() {
  const m = location.hash.match(/^#token=([0-9A-Za-z_]+)/);
  if (m) {
    localStorage.setItem(TOKEN, m[1]);
    history.replaceState(null, "", location.pathname + "#/dashboard");
  }
})();
window.addEventListener("storage", (e) => { if (e.key === TOKEN) route(); });

class APIError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
    this.field = body?.error?.field || "";
  }
}

async function api(method, path, body) {
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: { Authorization: `Bearer ${token()}`, ...(body ? { "Content-Type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch (e) {
    throw new APIError(0, { error: { message: "infrad does not answer: is it running? (" + e.message + ")" } });
  }
  if (res.status === 401) {
    signIn("The token was refused: it may have been revoked. Sign in again.");
    throw new APIError(401, null);
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new APIError(res.status, data);
  return data;
}
const get = (path) => api("GET", path);

// --- building blocks ---

// h builds an element: h("td", {class: "x"}, "text", child, ...).
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v ?? "";
    else if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) el.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return el;
}
const badge = (text, kind) => h("span", { class: `badge ${kind ?? text}` }, text);
const when = (t) => (t && !t.startsWith("0001") ? new Date(t).toLocaleString() : "");
const hidden = (text) => h("span", { class: "sr-only" }, text);

// table makes a table whose cells carry their column's name (a phone shows it beside
// each value). A heading may be {hidden: "Actions"}: named for screen readers only.
function table(heads, rows, attrs = {}) {
  const names = heads.map((x) => (typeof x === "string" ? x : x.hidden || x.text));
  const body = h("tbody", {}, rows);
  const label = (tr) => [...tr.children].forEach((td, i) => td.setAttribute("data-label", names[i] || ""));
  rows.forEach(label);
  const t = h("table", { class: "rows", ...attrs },
    h("thead", {}, h("tr", {}, heads.map((x) => h("th", { scope: "col" }, typeof x === "string" ? x : x.node || hidden(x.hidden))))), body);
  t.setRows = (rs) => { rs.forEach(label); body.replaceChildren(...rs); };
  return t;
}

// notify says something at the top of the page; bad ones stay until dismissed.
function notify(message, bad) {
  const n = document.getElementById("notice");
  n.className = bad ? "bad" : "";
  n.setAttribute("role", bad ? "alert" : "status");
  n.replaceChildren(message, h("button", { class: "link", onclick: () => n.replaceChildren() }, "Dismiss"));
  if (!bad) setTimeout(() => { if (n.firstChild?.textContent === message) n.replaceChildren(); }, 6000);
}

// clearNotice takes away a success notice (a failure's stays until dismissed).
function clearNotice() {
  const n = document.getElementById("notice");
  if (n.className !== "bad") n.replaceChildren();
}

// act runs an action, says when it failed, and redraws the page either way: a row of
// an object already gone disappears.
async function act(fn, done) {
  try {
    await fn();
    if (done) notify(done);
  } catch (e) {
    if (e.status !== 401) notify(e.message, true);
  }
  await refresh();
}

// fieldForm is a form whose API errors appear beside the field they name ("ip",
// "ranges[1].start": the closest field named so, else the form's own line).
function fieldForm(fields, submitLabel, onSubmit, opts = {}) {
  const form = h("form", { class: "inline", novalidate: true });
  const errs = {};
  const general = h("p", { class: "error", "data-error-for": "", role: "alert" });
  const addField = (parent, f) => {
    let input;
    if (f.options) input = h("select", { name: f.name }, f.options.map((o) => h("option", { value: o.value ?? o, selected: (o.value ?? o) === f.value }, o.label ?? o)));
    else if (f.type === "checkbox") input = h("input", { name: f.name, type: "checkbox", checked: !!f.value, value: "true" });
    else input = h("input", { name: f.name, placeholder: f.placeholder || "", value: f.value ?? "", required: f.required, inputmode: f.inputmode, autocomplete: "off" });
    errs[f.name] = h("span", { class: "error", "data-error-for": f.name });
    parent.append(h("label", { class: f.type === "checkbox" ? "check" : "" }, f.type === "checkbox" ? [input, f.label] : [f.label, input], errs[f.name]));
  };
  for (const f of fields) {
    if (f instanceof Node) form.append(f);
    else addField(form, f);
  }
  form.addField = addField;
  form.errs = errs;
  const buttons = h("div", { class: "buttons" }, h("button", { type: "submit" }, submitLabel));
  if (opts.cancel) buttons.append(h("button", { type: "button", class: "secondary", onclick: opts.cancel }, "Cancel"));
  form.append(buttons, general);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    for (const el of form.querySelectorAll(".error")) el.textContent = "";
    for (const el of form.querySelectorAll(".invalid")) { el.classList.remove("invalid"); el.removeAttribute("aria-invalid"); }
    const values = {};
    for (const el of form.elements) {
      if (!el.name) continue;
      values[el.name] = el.type === "checkbox" ? el.checked : el.value.trim();
    }
    try {
      await onSubmit(values);
    } catch (err) {
      if (!(err instanceof APIError)) throw err;
      if (err.status === 401) return;
      clearNotice(); // an earlier success no longer stands beside this failure
      let name = err.field;
      while (name && !errs[name]) name = name.replace(/(\.[^.[]*|\[\d+\])$/, "");
      if (name && errs[name]) {
        errs[name].textContent = err.message;
        const input = form.querySelector(`[name="${CSS.escape(name)}"]`);
        input?.classList.add("invalid");
        input?.setAttribute("aria-invalid", "true");
        input?.focus();
      } else general.textContent = err.message;
    }
  });
  return form;
}

// clean drops empty fields, so that the API sees them as absent.
const clean = (v) => Object.fromEntries(Object.entries(v).filter(([, x]) => x !== ""));
const confirmed = (what) => window.confirm(what);

function ipNum(ip) {
  return !ip || ip.includes(":") ? NaN : ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);
}
const numIP = (n) => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join(".");

// ip6Groups is an IPv6 address's eight groups of four hex digits.
function ip6Groups(ip) {
  const [head, tail = ""] = ip.split("::");
  const groups = (s) => (s ? s.split(":") : []);
  const hs = groups(head), ts = groups(tail);
  const all = ip.includes("::") ? [...hs, ...Array(8 - hs.length - ts.length).fill("0"), ...ts] : hs;
  return all.map((g) => g.padStart(4, "0"));
}
// ip6Num is an IPv6 address as a BigInt, for the subnets' counts and order.
const ip6Num = (ip) => BigInt("0x" + ip6Groups(ip).join(""));
const plural = (n, one, many) => `${n} ${n === 1 ? one : many || one + "s"}`;

// parseTTL reads 300, 30s, 5m, 2h or 1d as seconds; NaN for anything else.
function parseTTL(s) {
  const m = String(s).trim().match(/^(\d+)\s*([smhd]?)$/i);
  return m ? Number(m[1]) * { "": 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2].toLowerCase()] : NaN;
}
function duration(secs) {
  for (const [unit, n] of [["day", 86400], ["hour", 3600], ["minute", 60]]) if (secs >= n && secs % n === 0) return plural(secs / n, unit);
  return plural(secs, "second");
}

// The query of the page's address: #/hosts?q=cp01.
function query(name) { return new URLSearchParams((location.hash.split("?")[1] || "")).get(name) || ""; }

function searchBox(id, label, value, oninput) {
  return h("input", { type: "search", id, "aria-label": label, placeholder: label, value, oninput });
}

// --- sign-in ---

function signIn(why) {
  clearInterval(poll);
  localStorage.removeItem(TOKEN);
  for (const id of ["nav", "search", "signout"]) document.getElementById(id).hidden = true;
  document.getElementById("site").textContent = "";
  document.title = "Sign in · infrad";
  main.replaceChildren(document.getElementById("signin").content.cloneNode(true));
  document.getElementById("signin-error").textContent = why || "";
  document.getElementById("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const candidate = new FormData(e.target).get("token").trim();
    const res = await fetch("/api/v1/status", { headers: { Authorization: `Bearer ${candidate}` } }).catch(() => null);
    if (!res || !res.ok) {
      document.getElementById("signin-error").textContent = res ? "That token was refused." : "infrad does not answer.";
      return;
    }
    localStorage.setItem(TOKEN, candidate);
    route(); // the page asked for: a deep link stays where it pointed
  });
  main.querySelector("input")?.focus();
}
document.getElementById("signout").addEventListener("click", () => signIn("Signed out."));
document.getElementById("search").addEventListener("submit", (e) => {
  e.preventDefault();
  location.hash = "#/search?q=" + encodeURIComponent(document.getElementById("global-search").value.trim());
});

// --- pages: each builds its frame once and returns update, which fetches and redraws
// its data; a live page's update runs every 2 s. ---

async function dashboard(root) {
  const sections = Object.fromEntries(["services", "cluster", "ntp", "pools", "certs"].map((id) => [id, h("section", { class: "card", id })]));
  root.append(h("h1", {}, "Dashboard"), sections.services, sections.cluster, h("div", { class: "grid" }, sections.ntp, sections.pools, sections.certs));
  return async () => {
    const [status, ntp, subnets, leases, cl] = await Promise.all([
      get("/api/v1/status"), get("/api/v1/ntp"), get("/api/v1/subnets"), get("/api/v1/dhcp/leases"), get("/api/v1/cluster")]);
    let certs = null;
    try { certs = await get("/api/v1/ca/certificates"); } catch (e) { if (e.status !== 503) throw e; }
    document.getElementById("site").textContent = `${status.site.domain.replace(/\.$/, "")} · infrad ${status.version}`;
    sections.services.replaceChildren(h("h2", {}, "Services, in start order"),
      table(["Service", "State", "Since", "Last error"], status.services.map((s) =>
        h("tr", { "data-service": s.name }, h("td", {}, s.name), h("td", {}, badge(s.state)), h("td", {}, when(s.since)), h("td", { class: "muted" }, s.last_error || "")))));
    sections.ntp.replaceChildren(h("h2", {}, "Time"),
      table(["Source", "Stratum", "Leap", "Offset"], [h("tr", {}, h("td", {}, ntp.source, ntp.refid ? ` (${ntp.refid})` : ""), h("td", {}, String(ntp.stratum)),
        h("td", {}, ntp.leap === 3 ? badge("unsynchronised", "bad") : badge("ok")), h("td", {}, `${(ntp.offset_seconds * 1000).toFixed(3)} ms`))]),
      ntp.why ? h("p", { class: "muted" }, ntp.why) : "");
    const pools = [];
    for (const sn of subnets) for (const r of sn.ranges || []) {
      if (r.kind !== "dhcp") continue;
      // An IPv6 pool's size is a BigInt (a /64's range may hold 2^64 addresses).
      const num = r.start.includes(":") ? ip6Num : (ip) => BigInt(ipNum(ip));
      const size = num(r.end) - num(r.start) + 1n;
      const used = leases.filter((l) => l.ip.includes(":") === r.start.includes(":") && num(l.ip) >= num(r.start) && num(l.ip) <= num(r.end)).length;
      const pct = Number((10000n * BigInt(used)) / size) / 100;
      pools.push(h("tr", {}, h("td", {}, sn.name), h("td", {}, `${r.start} – ${r.end}`),
        h("td", {}, h("div", { class: "used" }, h("div", { class: "meter", "aria-hidden": "true" }, h("span", { style: `width:${pct}%` })), `${Math.round(pct)}%`)), h("td", {}, `${used} / ${size}`)));
    }
    sections.pools.replaceChildren(h("h2", {}, "DHCP pools"),
      pools.length ? table(["Subnet", "Range", "Used", "Leases"], pools) : h("p", { class: "muted" }, "No DHCP range."));
    const soon = certs ? certs.filter((c) => !c.revoked && new Date(c.not_after) - Date.now() < 7 * 864e5) : [];
    sections.certs.replaceChildren(h("h2", {}, "Certificates"),
      certs === null ? h("p", { class: "muted" }, "The CA has not started.") : h("p", {}, `${certs.length} issued, ${soon.length} expiring within a week`),
      soon.length ? table(["Names", "Expires"], soon.map((c) => h("tr", {}, h("td", {}, c.names.join(", ")), h("td", {}, when(c.not_after))))) : "");
    const role = (n) => (n.witness ? "witness" : n.voter ? "voter" : "not a voter");
    sections.cluster.replaceChildren(
      h("h2", {}, cl.nodes.length > 1 ? `Cluster · leader ${cl.leader || "none known"}` : "One box"),
      cl.quorum ? "" : h("p", {}, badge("no quorum", "bad"), ` ${cl.node} cannot reach a majority of the cluster: it answers from what it has and refuses writes.`),
      table(["Node", "Role", "State", "Last contact", "Applied", "Lag"], cl.nodes.map((n) =>
        h("tr", { "data-node": n.name }, h("td", {}, n.name, n.address ? ` (${n.address})` : "", n.error ? h("div", { class: "muted" }, n.error) : ""), h("td", {}, role(n)),
          h("td", {}, badge(n.state, n.state === "unreachable" ? "bad" : n.state === "candidate" ? "warn" : "ok")),
          h("td", {}, n.last_contact ? when(n.last_contact) : "never"), h("td", {}, String(n.applied)), h("td", {}, String(n.lag))))));
  };
}

// --- subnets ---

// subnetUse counts, for an address block, the hosts, leases and free addresses.
function useOf(from, to, sn, hosts, leases) {
  const inBlock = (ip) => { const n = ipNum(ip); return n >= from && n <= to; };
  const hs = hosts.filter((x) => inBlock(x.ip)).length;
  const ls = leases.filter((l) => inBlock(l.ip) && !hosts.some((x) => x.ip === l.ip)).length;
  const [base, bits] = sn.cidr.split("/");
  const first = ipNum(base), last = first + 2 ** (32 - Number(bits)) - 1;
  let edges = 0;
  for (const n of [first, last, ipNum(sn.gateway)]) if (n >= from && n <= to) edges++;
  return { hosts: hs, leases: ls, free: Math.max(0, to - from + 1 - hs - ls - edges) };
}

function rangeOf(sn, n) {
  return (sn.ranges || []).find((r) => n >= ipNum(r.start) && n <= ipNum(r.end));
}
const rangeName = (r) => (r.kind === "dhcp" ? `DHCP pool${r.name ? " " + r.name : ""}` : `reserved range ${r.name}`);

// addressMap draws a subnet of /16 to /32 in at most 256 cells, 16 a row, each row
// labelled with its first address. Pointing at, tapping or moving (arrow keys) to a
// cell names what is there below the map.
function addressMap(sn, hosts, leases) {
  const [base, bits] = sn.cidr.split("/");
  if (base.includes(":") || Number(bits) < 16) return h("p", { class: "muted" }, "The map draws IPv4 subnets of /16 and smaller.");
  const size = 2 ** (32 - Number(bits)), first = ipNum(base);
  const cells = Math.min(size, 256), per = size / cells;
  const hostAt = new Map(hosts.map((x) => [ipNum(x.ip), x]));
  const leaseAt = new Map(leases.map((l) => [ipNum(l.ip), l]));
  const detail = h("p", { class: "map-detail", "aria-live": "polite" }, "Point at an address, or focus the map and use the arrow keys.");
  const describe = (i) => {
    const from = first + i * per, to = from + per - 1;
    if (per === 1) {
      const n = from, ip = numIP(n), r = rangeOf(sn, n);
      let what = "free";
      if (n === first) what = "the network address";
      else if (n === first + size - 1) what = "the broadcast address";
      else if (n === ipNum(sn.gateway)) what = "the gateway";
      else if (hostAt.has(n)) what = `host ${hostAt.get(n).name}${r ? " (in " + rangeName(r) + ")" : ""}`;
      else if (leaseAt.has(n)) what = `leased to ${leaseAt.get(n).mac}${leaseAt.get(n).hostname ? " (" + leaseAt.get(n).hostname + ")" : ""}, ${rangeName(r || { kind: "dhcp" })}`;
      else if (r) what = `${rangeName(r)}, free`;
      return `${ip}: ${what}`;
    }
    const u = useOf(from, to, sn, hosts, leases);
    const ranges = (sn.ranges || []).filter((r) => ipNum(r.start) <= to && ipNum(r.end) >= from).map(rangeName);
    return `${numIP(from)} – ${numIP(to)}: ${plural(u.hosts, "host")}, ${plural(u.leases, "lease")}, ${u.free} free${ranges.length ? "; " + ranges.join(", ") : ""}`;
  };
  const kindOf = (i) => {
    const from = first + i * per, to = from + per - 1;
    if (per === 1) {
      const n = from;
      if (n === first || n === first + size - 1 || n === ipNum(sn.gateway)) return "edge";
      if (hostAt.has(n)) return "host";
      if (leaseAt.has(n)) return "lease";
      const r = rangeOf(sn, n);
      return r ? (r.kind === "dhcp" ? "pool" : "reserved") : "free";
    }
    const u = useOf(from, to, sn, hosts, leases);
    if (u.hosts) return "host";
    if (u.leases) return "lease";
    const r = rangeOf(sn, from + per / 2);
    return r ? (r.kind === "dhcp" ? "pool" : "reserved") : "free";
  };
  const map = h("div", { class: "map", tabindex: "0", role: "group", "aria-label": `Address map of ${sn.cidr}: arrow keys move, the address is named below` });
  const cellEls = [];
  for (let i = 0; i < cells; i++) {
    if (i % 16 === 0) map.append(h("span", { class: "row-label", "aria-hidden": "true" }, numIP(first + i * per)));
    const cell = h("i", { class: kindOf(i), "data-cell": String(i), "aria-hidden": "true" });
    cellEls.push(cell);
    map.append(cell);
  }
  let cursor = -1;
  const show = (i) => {
    cellEls[cursor]?.classList.remove("cursor");
    cursor = i;
    cellEls[i].classList.add("cursor");
    detail.textContent = describe(i);
  };
  map.addEventListener("pointerover", (e) => { if (e.target.dataset.cell) show(Number(e.target.dataset.cell)); });
  map.addEventListener("click", (e) => { if (e.target.dataset.cell) show(Number(e.target.dataset.cell)); });
  map.addEventListener("keydown", (e) => {
    const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: 16, ArrowUp: -16, Home: -cells, End: cells }[e.key];
    if (step === undefined) return;
    e.preventDefault();
    show(Math.min(cells - 1, Math.max(0, (cursor < 0 ? 0 : cursor) + step)));
  });
  map.addEventListener("focus", () => { if (cursor < 0) show(0); });
  return h("div", {}, map, detail);
}

// rangesEditor is the ranges of a subnet form: a row each, added and removed.
function rangesEditor(form, ranges) {
  const list = h("div", { class: "ranges-editor" });
  let count = 0;
  const add = (r = {}) => {
    const i = count++;
    const row = h("div", { class: "range", "data-range": String(i) });
    form.addField(row, { name: `ranges[${i}].kind`, label: "Kind", options: [{ value: "dhcp", label: "DHCP pool" }, { value: "reserved", label: "reserved" }], value: r.kind || "dhcp" });
    form.addField(row, { name: `ranges[${i}].name`, label: "Name", value: r.name, placeholder: "metallb, vip, ..." });
    form.addField(row, { name: `ranges[${i}].start`, label: "Start", value: r.start });
    form.addField(row, { name: `ranges[${i}].end`, label: "End", value: r.end });
    row.append(h("button", { type: "button", class: "secondary", onclick: () => row.remove() }, "Remove range"));
    form.errs[`ranges[${i}]`] = h("span", { class: "error", "data-error-for": `ranges[${i}]` });
    row.append(form.errs[`ranges[${i}]`]);
    list.insertBefore(row, addButton);
  };
  const addButton = h("button", { type: "button", class: "secondary", onclick: () => add() }, "Add a range");
  list.append(addButton);
  (ranges || []).forEach(add);
  return list;
}

// subnetBody turns the form's values into a SubnetSpec, its ranges in order.
function subnetBody(v) {
  const body = { name: v.name, cidr: v.cidr, gateway: v.gateway, purpose: v.purpose, comment: v.comment, ranges: [] };
  const rows = {};
  for (const [k, x] of Object.entries(v)) {
    const m = k.match(/^ranges\[(\d+)\]\.(\w+)$/);
    if (m) (rows[m[1]] ||= {})[m[2]] = x;
  }
  // The API's errors name ranges by their place in the list it gets: renumber the fields.
  const kept = Object.keys(rows).sort((a, b) => a - b);
  kept.forEach((k) => body.ranges.push(clean(rows[k])));
  return { body: clean(body), order: kept };
}

function subnetForm(sn, onDone, cancel) {
  const form = fieldForm([
    { name: "name", label: "Name", value: sn?.name, required: true },
    { name: "cidr", label: "CIDR", value: sn?.cidr, placeholder: "10.0.40.0/24", required: true },
    { name: "gateway", label: "Gateway", value: sn?.gateway },
    { name: "purpose", label: "Purpose", options: ["nodes", "pods", "services"], value: sn?.purpose || "nodes" },
    { name: "comment", label: "Comment", value: sn?.comment }], sn ? "Save subnet" : "Add subnet",
  async (v) => {
    const { body, order } = subnetBody(v);
    if (sn?.dhcp_options) body.dhcp_options = sn.dhcp_options; // the form does not show them: they stay
    try {
      if (sn) await api("PUT", `/api/v1/subnets/${encodeURIComponent(sn.name)}`, body);
      else await api("POST", "/api/v1/subnets", body);
    } catch (e) {
      // ranges[1] of the body is the form's ranges[order[1]].
      e.field = e.field.replace(/^ranges\[(\d+)\]/, (_, i) => `ranges[${order[i]}]`);
      throw e;
    }
    onDone(body.name);
  }, { cancel });
  if (sn) form.querySelector('[name="name"]').readOnly = true;
  form.insertBefore(rangesEditor(form, sn?.ranges), form.querySelector(".buttons"));
  return form;
}

async function subnetsPage(root) {
  const add = h("section", { class: "card", id: "add-subnet" });
  const blank = () => add.replaceChildren(h("h2", {}, "Add a subnet"), subnetForm(null, (name) => { notify(`Subnet ${name} added.`); blank(); refresh(); }));
  blank();
  const legend = h("div", { class: "legend" }, ["host", "lease", "pool", "reserved", "edge", "free"].map((k) =>
    h("span", {}, h("i", { class: k }), { edge: "gateway, network, broadcast", pool: "DHCP pool", reserved: "reserved range" }[k] || k)));
  const list = h("div", { id: "subnets" });
  root.append(h("h1", {}, "Subnets"), add, legend, list);
  return async () => {
    const [subnets, hosts, leases, status] = await Promise.all([get("/api/v1/subnets"), get("/api/v1/hosts"), get("/api/v1/dhcp/leases"), get("/api/v1/status")]);
    list.replaceChildren(...subnets.map((sn) => subnetCard(sn, hosts, leases, status.site.source)));
  };
}

// used6 is what an IPv6 subnet holds, as a list: it cannot be drawn as cells. Each
// host's address in it, and each lease's, in address order.
function used6(sn, hosts, leases) {
  const [base, bits] = sn.cidr.split("/");
  const span = 2n ** BigInt(128 - Number(bits)), first = ip6Num(base);
  const inside = (ip) => ip && ip.includes(":") && ip6Num(ip) >= first && ip6Num(ip) < first + span;
  const rows = [];
  for (const x of hosts) for (const ip of [x.ip, x.ip6]) if (inside(ip)) rows.push([ip, `host ${x.name}`]);
  for (const l of leases) if (inside(l.ip)) rows.push([l.ip, `lease ${l.client ? "DUID " + l.client : l.mac || ""}${l.hostname ? " · " + l.hostname : ""}`]);
  rows.sort((a, b) => (ip6Num(a[0]) < ip6Num(b[0]) ? -1 : 1));
  const ranges = (sn.ranges || []).map((r) => {
    const held = rows.filter(([ip]) => ip6Num(ip) >= ip6Num(r.start) && ip6Num(ip) <= ip6Num(r.end)).length;
    return h("tr", { "data-range": r.name || `${r.start}-${r.end}` }, h("td", {}, r.name || h("span", { class: "muted" }, "(unnamed)")),
      h("td", {}, r.kind === "dhcp" ? "DHCP pool" : "reserved"), h("td", {}, `${r.start} – ${r.end}`),
      h("td", {}, String(ip6Num(r.end) - ip6Num(r.start) + 1n)), h("td", {}, String(held)));
  });
  return [h("p", { class: "use" }, `${span} addresses: ${rows.length} in use`),
    ranges.length ? table(["Range", "Kind", "Addresses", "Size", "In use"], ranges) : h("p", { class: "muted" }, "No ranges."),
    rows.length ? table(["Address", "Held by"], rows.map(([ip, by]) => h("tr", {}, h("td", {}, ip), h("td", {}, by))), { "data-used": sn.name })
      : h("p", { class: "muted" }, "No address in use.")];
}

function subnetCard(sn, hosts, leases, source) {
  const [base, bits] = sn.cidr.split("/");
  const v4 = !base.includes(":");
  const first = ipNum(base), last = v4 ? first + 2 ** (32 - Number(bits)) - 1 : NaN;
  const card = h("section", { class: "card", "data-subnet": sn.name });
  const u = v4 ? useOf(first, last, sn, hosts, leases) : null;
  const ranges = (sn.ranges || []).map((r) => {
    const ru = v4 ? useOf(ipNum(r.start), ipNum(r.end), sn, hosts, leases) : null; // IPv6: no counts
    const n = (x) => (ru ? String(x) : "");
    return h("tr", { "data-range": r.name || `${r.start}-${r.end}` }, h("td", {}, r.name || h("span", { class: "muted" }, "(unnamed)")),
      h("td", {}, r.kind === "dhcp" ? "DHCP pool" : "reserved"), h("td", {}, `${r.start} – ${r.end}`),
      h("td", {}, n(ipNum(r.end) - ipNum(r.start) + 1)), h("td", {}, n(ru?.hosts)), h("td", {}, n(ru?.leases)), h("td", {}, n(ru?.free)));
  });
  const file = sn.owner === "file";
  const actions = file
    ? h("p", { class: "muted" }, `From the site file${source ? " (" + source + ")" : ""}: change it there and reload.`)
    : h("div", { class: "buttons" },
      h("button", { class: "secondary", onclick: () => card.replaceChildren(h("h2", {}, `Edit ${sn.name}`), subnetForm(sn, (name) => { notify(`Subnet ${name} saved.`); refresh(); }, () => refresh())) }, "Edit"),
      h("button", { class: "danger", onclick: () => { if (confirmed(`Delete subnet ${sn.name} (${sn.cidr})?`)) act(() => api("DELETE", `/api/v1/subnets/${encodeURIComponent(sn.name)}`), `Subnet ${sn.name} deleted.`); } }, "Delete"));
  card.append(
    h("h2", {}, `${sn.name} `, h("span", { class: "muted" }, `${sn.cidr} · ${sn.purpose}${sn.gateway ? " · gateway " + sn.gateway : ""}${sn.ra ? " · router advertisements" : ""}`), " ", badge(file ? "site file" : "api", "")),
    sn.comment ? h("p", {}, sn.comment) : "",
    ...(v4 ? [u ? h("p", { class: "use" }, `${last - first + 1} addresses: ${plural(u.hosts, "host")}, ${plural(u.leases, "lease")}, ${u.free} free`) : "",
      ranges.length ? table(["Range", "Kind", "Addresses", "Size", "Hosts", "Leases", "Free"], ranges) : h("p", { class: "muted" }, "No ranges."),
      addressMap(sn, hosts, leases)] : used6(sn, hosts, leases)),
    actions);
  return card;
}

// --- hosts ---

async function hostsPage(root) {
  let hosts = [], subnets = [], profiles = [];
  const search = searchBox("host-search", "Search hosts by name, IP, MAC, role, subnet, boot profile or comment", query("q"), () => draw());
  const list = table(["Name", "IP", "MAC", "Role", "Subnet", "Boot", "Comment", "Owner", { hidden: "Actions" }], [], { id: "hosts" });
  const subnetOf = (ip) => subnets.find((sn) => { const [b, bits] = sn.cidr.split("/"); const n = ipNum(ip), f = ipNum(b); return n >= f && n < f + 2 ** (32 - Number(bits)); });
  const draw = () => {
    const q = search.value.toLowerCase();
    list.setRows(hosts.filter((x) => !q || [x.name, x.ip, x.ip6, x.mac, x.duid, x.role, x.comment, x.boot, subnetOf(x.ip)?.name].some((v) => (v || "").toLowerCase().includes(q)))
      .map((x) => hostRow(x, subnetOf(x.ip), profiles)));
  };
  const allocateIn = h("select", { name: "subnet" });
  const add = fieldForm([
    { name: "name", label: "Name", required: true }, { name: "ip", label: "IP address", placeholder: "or the next free one" },
    h("label", {}, "Next free address in", allocateIn), { name: "ip6", label: "IPv6 address", placeholder: "dual stack (optional)" },
    { name: "mac", label: "MAC" }, { name: "duid", label: "DHCPv6 DUID", placeholder: "reserves ip6 by DUID (optional)" },
    { name: "role", label: "Role" }, { name: "comment", label: "Comment" }], "Add host",
  async (v) => {
    const { subnet, ...spec } = clean(v);
    // An IPv6 subnet with an IPv4 ip given: the free address is the host's ip6 (dual stack).
    const six = subnets.find((sn) => sn.name === subnet)?.cidr.includes(":");
    if (subnet && (!spec.ip || (six && !spec.ip.includes(":") && !spec.ip6))) {
      const host = await api("POST", `/api/v1/subnets/${encodeURIComponent(subnet)}/allocate`, spec);
      notify(`Host ${host.name} added at ${six && host.ip6 ? host.ip6 : host.ip}, the next free address of ${subnet}.`);
    } else {
      await api("POST", "/api/v1/hosts", spec);
      notify(`Host ${spec.name} added.`);
    }
    add.reset();
    refresh();
  });
  root.append(h("h1", {}, "Hosts"), h("section", { class: "card", id: "add-host" }, h("h2", {}, "Add a host"), add), h("section", { class: "card" }, search, list));
  return async () => {
    [hosts, subnets, { profiles }] = await Promise.all([get("/api/v1/hosts"), get("/api/v1/subnets"), get("/api/v1/boot")]);
    const chosen = allocateIn.value;
    allocateIn.replaceChildren(h("option", { value: "" }, "(give the IP)"), ...subnets.filter((sn) => sn.purpose === "nodes").map((sn) => h("option", { value: sn.name, selected: sn.name === chosen }, `${sn.name} (${sn.cidr})`)));
    draw();
  };
}

// bootCell says what a host boots from the network: its own profile, or its subnet's,
// once or always; a host that booted once says when, and may be armed again.
function bootCell(x, sn) {
  const name = x.boot || (sn?.boot ? `${sn.boot} (subnet's)` : "");
  if (!name || x.boot === "none") return h("td", { class: "muted" }, x.boot === "none" ? "none" : "");
  const again = () => act(() => api("DELETE", `/api/v1/hosts/${encodeURIComponent(x.name)}/booted`), `Host ${x.name} boots from ${x.boot || sn.boot} again.`);
  return h("td", {}, name, x.boot_once ? [" ", badge("once", "")] : "",
    x.booted ? [" ", badge(`booted ${when(x.booted)}`, "ok"), " ", h("button", { class: "secondary", onclick: again }, "Boot again")] : "");
}

function hostRow(x, sn, profiles) {
  const actions = x.owner === "file"
    ? h("td", { class: "actions muted" }, "read-only: from the site file")
    : h("td", { class: "actions" }, h("button", { class: "secondary", onclick: (e) => editHost(e.target.closest("tr"), x, profiles) }, "Edit"), " ",
      h("button", { class: "danger", onclick: () => { if (confirmed(`Delete host ${x.name} (${x.ip})?`)) act(() => api("DELETE", `/api/v1/hosts/${encodeURIComponent(x.name)}`), `Host ${x.name} deleted.`); } }, "Delete"));
  return h("tr", { "data-host": x.name }, h("td", {}, x.name), h("td", {}, x.ip, x.ip6 ? [h("br"), x.ip6] : ""), h("td", {}, x.mac || "", x.duid ? h("div", { class: "muted" }, `DUID ${x.duid}`) : ""), h("td", {}, x.role || ""),
    h("td", {}, sn?.name || ""), bootCell(x, sn), h("td", {}, x.comment || ""), h("td", {}, x.owner === "file" ? badge("site file", "") : badge("api", "")), actions);
}

function editHost(row, x, profiles) {
  row.dataset.editing = "true";
  const boot = profiles.length || x.boot
    ? [{ name: "boot", label: "Boot profile", value: x.boot || "", options: [{ value: "", label: "(the subnet's)" }, { value: "none", label: "none: boot from disk" },
      ...profiles.map((p) => ({ value: p.name, label: `${p.name} (${p.what})` }))] },
      { name: "boot_once", label: "Boot from it once", type: "checkbox", value: x.boot_once }]
    : [];
  const form = fieldForm([
    { name: "name", label: "Name", value: x.name }, { name: "ip", label: "IP address", value: x.ip }, { name: "ip6", label: "IPv6 address", value: x.ip6 },
    { name: "mac", label: "MAC", value: x.mac }, { name: "duid", label: "DHCPv6 DUID", value: x.duid },
    { name: "role", label: "Role", value: x.role }, { name: "comment", label: "Comment", value: x.comment }, ...boot], "Save",
  async (v) => {
    const spec = clean(v);
    // A new name renames the host: one change, its address and records with it. The
    // fields the form does not show go back as they were: a PUT replaces the host.
    await api("PUT", `/api/v1/hosts/${encodeURIComponent(x.name)}`, { ...spec, dhcp_options: x.dhcp_options, ssh: x.ssh, pi_serial: x.pi_serial });
    notify(spec.name && spec.name !== x.name ? `Host ${x.name} renamed ${spec.name}.` : `Host ${x.name} saved.`);
    refresh();
  }, { cancel: () => refresh() });
  row.replaceChildren(h("td", { colspan: 9 }, form));
  form.querySelector("input")?.focus();
}

// --- leases ---

async function leasesPage(root) {
  let leases = [], hosts = [];
  const filter = searchBox("lease-filter", "Filter leases by IP, MAC, DUID or hostname", query("q"), () => draw());
  const list = table(["IP", "Client", "Hostname", "Expires", "State", { hidden: "Actions" }], [], { id: "leases" });
  const count = h("span", { class: "muted" });
  const draw = () => {
    const q = filter.value.toLowerCase();
    list.setRows(leases.filter((l) => !q || [l.ip, l.mac, l.client, l.hostname].some((v) => (v || "").toLowerCase().includes(q))).map((l) => {
      const host = hosts.find((x) => x.ip === l.ip);
      // A DHCPv6 client is its DUID and IAID; its MAC too when its DUID or address says it.
      const client = l.client ? [h("span", {}, `DUID ${l.client.replace("/", " · IAID ")}`), l.mac ? h("div", { class: "muted" }, l.mac) : ""] : [l.mac || ""];
      return h("tr", { "data-lease": l.ip }, h("td", {}, l.length ? `${l.ip}/${l.length}` : l.ip), h("td", {}, ...client), h("td", {}, l.hostname || (host ? host.name : "")), h("td", {}, when(l.expires)),
        h("td", {}, l.declined ? badge("declined", "warn") : l.released ? badge("released: waits for every node", "warn") : host ? badge(`reserved: ${host.name}`, "ok") : "dynamic"),
        h("td", { class: "actions" },
          !l.declined && !l.released && !host && !l.client ? h("button", { class: "secondary", onclick: () => pinLease(l) }, "Pin as reservation") : "", " ",
          h("button", { class: "danger", onclick: () => { if (confirmed(`Release the lease of ${l.ip} (${l.mac || "quarantined"})? Its client must ask again.`)) act(() => api("DELETE", `/api/v1/dhcp/leases/${l.ip}`), `Lease of ${l.ip} released.`); } }, "Release")));
    }));
    count.textContent = `(${leases.length}, live)`;
  };
  root.append(h("h1", {}, "Leases ", count), h("section", { class: "card" }, filter, list));
  return async () => {
    [leases, hosts] = await Promise.all([get("/api/v1/dhcp/leases"), get("/api/v1/hosts")]);
    draw();
  };
}

function pinLease(l) {
  let name = l.hostname;
  if (!name) {
    name = window.prompt(`The lease of ${l.ip} (${l.mac}) has no hostname. Name the reservation:`);
    if (!name) return;
  } else if (!confirmed(`Make ${l.ip} the reservation of ${l.mac}, as host ${l.hostname}?`)) return;
  act(() => api("POST", `/api/v1/dhcp/leases/${l.ip}/reserve`, l.hostname ? undefined : { name }),
    `${l.ip} is now host ${name}'s: its client keeps it.`);
}

// --- DHCP activity ---

async function activityPage(root) {
  let q = query("q");
  const filter = searchBox("activity-filter", "Filter by type, MAC, IP, relay, hostname, reason or boot file", q, () => { q = filter.value; refresh(); });
  const list = table(["Time", "Direction", "Type", "MAC", "IP", "Hostname", "Relay", "Interface", "Reason or file"], [], { id: "activity" });
  root.append(h("h1", {}, "DHCP activity ", h("span", { class: "muted" }, "(this box's last 2,048 messages, live)")), h("section", { class: "card" }, filter, list));
  return async () => {
    const events = await get(`/api/v1/dhcp/events?limit=200&q=${encodeURIComponent(q.trim())}`);
    list.setRows(events.map((e) => h("tr", { "data-type": e.type }, h("td", {}, new Date(e.at).toLocaleTimeString()), h("td", {}, e.sent ? "to the client" : "from the client"),
      h("td", {}, e.type === "NAK" ? badge("NAK", "bad") : e.type), h("td", {}, e.mac || ""), h("td", {}, e.ip || ""), h("td", {}, e.hostname || ""),
      h("td", {}, e.relay || ""), h("td", {}, e.interface || ""), h("td", {}, e.reason || e.file || ""))));
    if (!events.length) list.setRows([h("tr", {}, h("td", { colspan: 9, class: "muted" }, q ? "No message matches." : "No DHCP message yet."))]);
  };
}

// --- DNS ---

async function dnsPage(root) {
  let records = [], sortBy = "name", flip = 1;
  const search = searchBox("record-search", "Search records by name, type or value", query("q"), () => draw());
  const sortButton = (key, label) => ({ text: label, node: h("button", { class: "sort", onclick: () => { flip = sortBy === key ? -flip : 1; sortBy = key; draw(); } }, label) });
  const list = table([sortButton("name", "Name"), sortButton("type", "Type"), sortButton("value", "Value"), "TTL", "From", { hidden: "Actions" }], [], { id: "records" });
  const draw = () => {
    const q = search.value.toLowerCase();
    const rows = records.filter((r) => !q || [r.name, r.type, r.value, r.from].some((v) => (v || "").toLowerCase().includes(q)))
      .sort((a, b) => flip * (a[sortBy] || "").localeCompare(b[sortBy] || "", undefined, { numeric: true }) || a.name.localeCompare(b.name));
    list.setRows(rows.map(recordRow));
  };
  const add = fieldForm([
    { name: "name", label: "Name", placeholder: "grafana, or x.example.com.", required: true },
    { name: "type", label: "Type", options: ["A", "AAAA", "CNAME", "SRV", "TXT", "MX", "PTR"] },
    { name: "value", label: "Value", required: true }, { name: "ttl", label: "TTL", placeholder: "300, 5m, 1h (site default)" }], "Add record",
  async (v) => { await api("POST", "/api/v1/dns/records", recordBody(v)); notify(`Record ${v.name} ${v.type} added.`); add.reset(); refresh(); });
  const signing = h("section", { class: "card", id: "dnssec" });
  root.append(h("h1", {}, "DNS records"), h("section", { class: "card", id: "add-record" }, h("h2", {}, "Add a record"), add),
    h("section", { class: "card" }, h("p", { class: "muted" }, "Hosts and named leases make their A and PTR records: they are listed here, and change with them."), search, list), signing);
  return async () => {
    const [own, hosts, leases, status, dnssec] = await Promise.all([get("/api/v1/dns/records"), get("/api/v1/hosts"), get("/api/v1/dhcp/leases"), get("/api/v1/status"), get("/api/v1/dns/dnssec")]);
    signing.replaceChildren(...dnssecCard(dnssec));
    const domain = status.site.domain.replace(/\.?$/, ".");
    const fqdn = (n) => (n.endsWith(".") ? n : `${n}.${domain}`);
    records = own.map((r) => ({ ...r, from: r.owner === "file" ? "site file" : "api" }));
    for (const x of hosts) {
      for (const ip of [x.ip, x.ip6].filter(Boolean)) {
        records.push({ name: fqdn(x.name), type: ip.includes(":") ? "AAAA" : "A", value: ip, from: `host ${x.name}`, derived: true });
        records.push({ name: ptr(ip), type: "PTR", value: fqdn(x.name), from: `host ${x.name}`, derived: true });
      }
    }
    for (const l of leases) if (l.hostname) records.push({ name: fqdn(l.hostname), type: l.ip.includes(":") ? "AAAA" : "A", value: l.ip, from: `lease ${l.ip}`, derived: true },
      { name: ptr(l.ip), type: "PTR", value: fqdn(l.hostname), from: `lease ${l.ip}`, derived: true });
    draw();
  };
}

// ptr is the reverse name of an address: in-addr.arpa, or ip6.arpa by nibbles.
function ptr(ip) {
  if (!ip.includes(":")) return ip.split(".").reverse().join(".") + ".in-addr.arpa.";
  return ip6Groups(ip).join("").split("").reverse().join(".") + ".ip6.arpa.";
}

// dnssecCard says whether the zones are signed, and with which keys: the DS records a
// parent zone or a resolver's trust anchors take, each key's times, and where the KSK
// roll (or the withdrawal of signing) stands, with its next step.
function dnssecCard(st) {
  if (!st.enabled && !st.withdraw) return [h("h2", {}, "DNSSEC"), h("p", { class: "muted" }, "The zones are not signed: dns.dnssec: true in the site file signs them.")];
  const ds = (st.ds || []).join("\n");
  const step = (path, label, done, ask) => h("button", { class: "secondary", onclick: () => { if (confirmed(ask)) act(() => api("POST", path), done); } }, label);
  const stages = {
    steady: "One KSK signs the DNSKEY sets. Rolling it publishes a new one beside it (both sign), and two days later a CDS asks the parent for its DS.",
    published: "The new KSK signs beside the old one. Its CDS and CDNSKEY are published from " + when(st.ksk?.cds_from) + ", once every resolver has the new DNSKEY set.",
    cds: "The CDS and CDNSKEY ask the parent for the new KSK's DS (the DS records below). Once the parent (or the resolvers' trust anchors) has it, say so: the old KSK leaves two days later.",
    retiring: "The parent has the new DS; the old KSK leaves at " + when(st.ksk?.old_leaves) + ".",
  };
  const roll = st.withdraw
    ? [h("h3", {}, "Signing withdrawn"), h("p", { id: "dnssec-withdraw" }, badge("withdrawing", "warn"), " ",
      st.withdraw.unsigned ? `The parent's DS is gone: the zones are unsigned from ${when(st.withdraw.unsigned)}.`
        : "dns.dnssec is off: the zones stay signed, with a delete CDS (RFC 8078), until the parent's DS is gone. Say so once it is."),
    st.withdraw.unsigned ? "" : step("/api/v1/dns/dnssec/ksk/ds", "The parent's DS is gone", "Noted: the zones are unsigned two days from now.", "Has the parent zone removed the DS records (or the resolvers their trust anchors)?")]
    : st.ksk ? [h("h3", {}, "KSK roll"), h("p", { id: "ksk-stage" }, badge(st.ksk.stage, st.ksk.stage === "steady" ? "ok" : "warn"), " ", stages[st.ksk.stage] || ""),
      st.ksk.stage === "steady" ? step("/api/v1/dns/dnssec/ksk/roll", "Roll the KSK", "KSK roll started.", "Roll the KSK now? A new one signs beside the old; the parent's DS must change within the roll.")
        : st.ksk.stage === "cds" ? step("/api/v1/dns/dnssec/ksk/ds", "The parent has the new DS", "Noted: the old KSK leaves in two days.", "Does the parent zone (or every resolver's trust anchor) now hold the new DS records?") : ""]
      : [];
  return [h("h2", {}, "DNSSEC"),
    st.paused ? h("p", {}, badge("paused", "bad"), " ", st.paused) : h("p", {}, badge("signing", "ok"), " Answers to queries with the DO bit are signed; transfers carry the signed zones."),
    h("h3", {}, "DS records"),
    h("p", { class: "muted" }, "Give each to its parent zone, or to the site's resolvers as trust anchors (infrad export ds prints them)."),
    h("pre", { id: "ds-records", tabindex: "0" }, ds),
    h("button", { class: "secondary", onclick: () => navigator.clipboard?.writeText(ds).then(() => notify("Copied."), () => notify("The browser would not copy: select the records instead.", true)) }, "Copy the DS records"),
    ...roll,
    st.cds?.length ? h("pre", { id: "cds-records", tabindex: "0" }, st.cds.join("\n")) : "",
    h("h3", {}, "Keys"),
    table(["Tag", "Role", "Published", "Signs from", "Retires", "Removed"], (st.keys || []).map((k) => h("tr", {},
      h("td", {}, String(k.tag)), h("td", {}, k.role.toUpperCase()), h("td", {}, when(k.publish)), h("td", {}, when(k.activate)),
      h("td", {}, k.retire ? when(k.retire) : "never"), h("td", {}, k.remove ? when(k.remove) : "never"))), { id: "dnssec-keys" })];
}

function recordBody(v) {
  const r = clean(v);
  if (r.ttl !== undefined) {
    const secs = parseTTL(r.ttl);
    if (!Number.isFinite(secs)) throw Object.assign(new APIError(422, { error: { message: `"${r.ttl}" is not a TTL: give seconds, or 30s, 5m, 2h, 1d` } }), { field: "ttl" });
    r.ttl = secs;
  }
  return r;
}

function recordRow(r) {
  const actions = r.derived || r.owner === "file" ? h("td", { class: "actions muted" }, r.derived ? "follows from the " + r.from.split(" ")[0] : "read-only")
    : h("td", { class: "actions" }, h("button", { class: "secondary", onclick: (e) => editRecord(e.target.closest("tr"), r) }, "Edit"), " ",
      h("button", { class: "danger", onclick: () => { if (confirmed(`Delete ${r.name} ${r.type} ${r.value}?`)) act(() => api("DELETE", `/api/v1/dns/records/${r.id}`), `Record ${r.name} ${r.type} deleted.`); } }, "Delete"));
  return h("tr", { "data-record": r.id || `${r.name} ${r.type}` }, h("td", {}, r.name), h("td", {}, r.type), h("td", {}, r.value),
    h("td", {}, r.ttl !== undefined ? duration(r.ttl) : ""), h("td", {}, badge(r.from, "")), actions);
}

function editRecord(row, r) {
  row.dataset.editing = "true";
  const form = fieldForm([
    { name: "name", label: "Name", value: r.name }, { name: "type", label: "Type", options: ["A", "AAAA", "CNAME", "SRV", "TXT", "MX", "PTR"], value: r.type },
    { name: "value", label: "Value", value: r.value }, { name: "ttl", label: "TTL", value: r.ttl !== undefined ? String(r.ttl) : "" }], "Save",
  async (v) => {
    const body = recordBody(v);
    // Records have no update: the new one is made and the old removed. When only the
    // TTL changes the two share an ID, so the old goes first and comes back on failure.
    const same = body.name.replace(/\.$/, "") === r.name.replace(/\.$/, "") && body.type === r.type && body.value === r.value;
    if (same) {
      await api("DELETE", `/api/v1/dns/records/${r.id}`);
      try { await api("POST", "/api/v1/dns/records", body); } catch (e) {
        await api("POST", "/api/v1/dns/records", { name: r.name, type: r.type, value: r.value, ttl: r.ttl }).catch(() => {});
        throw e;
      }
    } else {
      await api("POST", "/api/v1/dns/records", body);
      await api("DELETE", `/api/v1/dns/records/${r.id}`);
    }
    notify(`Record ${body.name} ${body.type} saved.`);
    refresh();
  }, { cancel: () => refresh() });
  row.replaceChildren(h("td", { colspan: 6 }, form));
}

// --- CA ---

const colons = (hex) => hex.toUpperCase().match(/../g).join(":");

async function caPage(root) {
  const body = h("div"), ssh = h("div");
  root.append(h("h1", {}, "Certificate authority"), body, h("h2", {}, "SSH"), ssh);
  return async () => {
    await Promise.all([acmePart(body), sshPart(ssh)]);
  };
}

async function acmePart(body) {
  let info, certs;
  try { [info, certs] = await Promise.all([get("/api/v1/ca"), get("/api/v1/ca/certificates")]); } catch (e) {
    if (e.status !== 503) throw e;
    body.replaceChildren(h("p", { class: "muted" }, e.message));
    return;
  }
  body.replaceChildren(h("section", { class: "card", id: "ca-info" }, h("table", {}, h("tbody", {},
    h("tr", {}, h("th", { scope: "row" }, "Root"), h("td", {}, h("a", { href: "/api/v1/ca/root.pem", download: "root.pem" }, "Download root.pem"))),
    h("tr", {}, h("th", { scope: "row" }, "Root SHA-256"), h("td", {}, h("code", { id: "fingerprint" }, colons(info.root_fingerprint_sha256)))),
    h("tr", {}, h("th", { scope: "row" }, "Root expires"), h("td", {}, when(info.root_expiry))),
    h("tr", {}, h("th", { scope: "row" }, "Intermediate expires"), h("td", {}, when(info.intermediate_expiry))),
    h("tr", {}, h("th", { scope: "row" }, "ACME directory"), h("td", {}, h("code", {}, info.directory))),
    h("tr", {}, h("th", { scope: "row" }, "Certificate lifetime"), h("td", { id: "lifetime" }, duration(info.cert_lifetime_seconds)))))),
  h("section", { class: "card" }, h("h2", {}, "Issued"), certs.length
    ? table(["Serial", "Names", "Not after", "State"], certs.map((c) =>
      h("tr", {}, h("td", {}, h("code", {}, c.serial)), h("td", {}, c.names.join(", ")), h("td", {}, when(c.not_after)), h("td", {}, c.revoked ? badge("revoked", "bad") : "valid"))))
    : h("p", { class: "muted", id: "no-certs" }, "No certificate issued yet: point an ACME client (cert-manager, lego, certbot) at the directory above.")));
}

// sshPart shows the SSH CA's keys (what known_hosts and sshd trust) and the
// certificates it issued, each revocable; a host certificate whose host changed is
// marked stale, for revoking.
async function sshPart(body) {
  let keys, certs;
  try { [keys, certs] = await Promise.all([get("/api/v1/ca/ssh"), get("/api/v1/ca/ssh/certificates")]); } catch (e) {
    if (e.status !== 503) throw e;
    body.replaceChildren(h("p", { class: "muted" }, e.message));
    return;
  }
  const state = (c) => (!c.revoked || c.revoked.startsWith("0001")
    ? (new Date(c.valid_before) < new Date() ? badge("expired", "muted") : c.stale ? h("span", {}, badge("stale", "warn"), " ", c.stale) : "valid")
    : badge("revoked", "bad"));
  const live = (c) => (!c.revoked || c.revoked.startsWith("0001")) && new Date(c.valid_before) > new Date();
  body.replaceChildren(h("section", { class: "card", id: "ssh-keys" }, h("table", {}, h("tbody", {},
    h("tr", {}, h("th", { scope: "row" }, "Host CA (known_hosts @cert-authority)"), h("td", {}, h("code", { class: "key", id: "ssh-host-ca" }, keys.host))),
    h("tr", {}, h("th", { scope: "row" }, "User CA (sshd TrustedUserCAKeys)"), h("td", {}, h("code", { class: "key", id: "ssh-user-ca" }, keys.user))),
    h("tr", {}, h("th", { scope: "row" }, "Lifetimes"), h("td", {}, `hosts ${keys.host_cert_days} days, users at most ${keys.user_cert_hours} hours`)),
    h("tr", {}, h("th", { scope: "row" }, "Revocation list"), h("td", {}, h("a", { href: "/api/v1/ca/ssh/krl", download: "infrad.krl" }, "Download the KRL (sshd RevokedKeys)")))))),
  h("section", { class: "card" }, h("h2", {}, "SSH certificates"), certs.length
    ? table(["Serial", "Kind", "For", "Principals", "Valid until", "State", { hidden: "Actions" }], certs.slice().reverse().map((c) =>
      h("tr", { "data-ssh-serial": c.serial }, h("td", {}, h("code", {}, c.serial)), h("td", {}, c.kind), h("td", {}, c.host || c.token),
        h("td", {}, c.principals.join(", ")), h("td", {}, when(c.valid_before)), h("td", {}, state(c)),
        h("td", { class: "actions" }, live(c) ? h("button", { class: "danger", onclick: () => { if (confirmed(`Revoke SSH certificate ${c.serial} (${c.key_id})? sshd refuses it once it has the new KRL.`)) act(() => api("POST", "/api/v1/ca/ssh/revoke", { serial: c.serial }), `Certificate ${c.serial} revoked.`); } }, "Revoke") : ""))), { id: "ssh-certs" })
    : h("p", { class: "muted", id: "no-ssh-certs" }, "No SSH certificate issued yet: infrad ssh enrol NAME gives a host's machine a one-time token; infrad ssh login signs a user key.")));
}

// --- changes ---

const commandNames = {
  PutSubnet: "subnet saved", DeleteSubnet: "subnet deleted", PutHost: "host saved", DeleteHost: "host deleted", AllocateHost: "host allocated",
  PutRecord: "record added", DeleteRecord: "record deleted", UpdateRecords: "dynamic update", Reconcile: "site file applied",
  CommitLease: "lease granted", ReleaseLease: "lease released", ReleaseClientLease: "lease released", DeclineLease: "address declined", ExpireLeases: "leases expired",
  CommitLease6: "DHCPv6 lease granted", ReleaseLease6: "DHCPv6 lease released", DeclineLease6: "IPv6 address declined",
  TableWrite: "certificate authority", PinLease: "lease pinned", PutToken: "token created", DeleteToken: "token revoked",
  SettleEnds: "released addresses back in the pool", TrackGrants: "lease grants kept",
  EnrolSSHHost: "SSH enrolment made", IssueSSHCert: "SSH certificate issued", RevokeSSHCert: "SSH certificate revoked", BootHost: "boot state",
};

// difference names the fields that changed from before to after: "ip 10.0.0.5 → 10.0.0.6".
function difference(before, after) {
  const keys = [...new Set([...Object.keys(before || {}), ...Object.keys(after || {})])];
  const show = (v) => (v === undefined ? "—" : typeof v === "object" ? JSON.stringify(v) : String(v));
  return keys.filter((k) => JSON.stringify(before?.[k]) !== JSON.stringify(after?.[k])).map((k) => `${k} ${show(before?.[k])} → ${show(after?.[k])}`).join("; ");
}

async function changesPage(root) {
  const filters = { object: query("object"), source: query("source"), since: "", until: "" };
  let before = 0, shown = [];
  const list = table(["When", "Who", "What", "Changes"], [], { id: "changes" });
  const more = h("button", { class: "secondary", hidden: true, onclick: () => load(true) }, "Show older");
  const form = fieldForm([
    { name: "object", label: "Object", value: filters.object, placeholder: "host cp01, 10.0.40.5, lease" },
    { name: "source", label: "Who", value: filters.source, placeholder: "alice, dhcp, site file" },
    { name: "since", label: "Since", placeholder: "2026-12-01T09:00" }, { name: "until", label: "Until", placeholder: "2026-12-02" }], "Filter",
  async (v) => { Object.assign(filters, v); before = 0; shown = []; await load(false); });
  const at = (s, field) => {
    if (!s) return "";
    const d = new Date(s);
    if (isNaN(d)) throw Object.assign(new APIError(400, { error: { message: `"${s}" is not a date: 2026-12-01, or 2026-12-01T09:00` } }), { field });
    return d.toISOString().replace(/\.\d+Z$/, "Z");
  };
  const load = async (older) => {
    const p = new URLSearchParams(clean({ object: filters.object, source: filters.source, since: at(filters.since, "since"), until: at(filters.until, "until"), limit: "50" }));
    if (older && before) p.set("before", before);
    const page = await get(`/api/v1/changes?${p}`);
    shown = older ? shown.concat(page.changes) : page.changes;
    before = page.next || 0;
    more.hidden = !page.next;
    list.setRows(shown.length ? shown.map((e) => h("tr", { "data-change": String(e.id) }, h("td", {}, when(e.at)), h("td", {}, e.source),
      h("td", {}, e.source.startsWith("keyring ") ? `${e.source.slice(8)} keys rolled` : commandNames[e.command] || e.command),
      h("td", {}, h("ul", { class: "change-list" }, e.changes.map((c) => h("li", {}, `${c.op} ${c.kind} ${c.key}`,
        c.op === "update" ? h("span", { class: "muted" }, `: ${difference(c.before, c.after)}`) : "")),
      e.more ? h("li", { class: "muted" }, `and ${e.more} more`) : ""))))
      : [h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No change matches."))]);
  };
  root.append(h("h1", {}, "Changes"), h("section", { class: "card", id: "change-filter" }, form), h("section", { class: "card" }, list, more));
  return () => load(false);
}

// --- tokens ---

async function tokensPage(root) {
  const made = h("div", { id: "new-token" });
  const form = fieldForm([{ name: "name", label: "Name", placeholder: "alice, ci, external-dns", required: true },
    { name: "scope", label: "Scope", options: [{ value: "write", label: "write: reads and changes the site" }, { value: "read", label: "read: reads only" },
      { value: "admin", label: "admin: also backups, tokens, cluster members" }], value: "write" },
    { name: "ssh_principals", label: "SSH principals", placeholder: "alice, root (users it may log in as)" }], "Create token",
  async (v) => {
    const principals = v.ssh_principals.split(",").map((p) => p.trim()).filter(Boolean);
    const t = await api("POST", "/api/v1/tokens", { name: v.name, scope: v.scope, ...(principals.length ? { ssh_principals: principals } : {}) });
    const link = `${location.origin}/ui/#token=${t.token}`;
    made.replaceChildren(h("section", { class: "card" }, h("h2", {}, `Token ${t.name}`),
      h("p", {}, "Copy it now: infrad keeps only its hash, and shows it this once."),
      h("p", { class: "secret", id: "token-secret" }, t.token),
      h("p", {}, "Sign-in link: ", h("code", {}, link)),
      h("button", { class: "secondary", onclick: () => navigator.clipboard?.writeText(t.token).then(() => notify("Copied."), () => notify("The browser would not copy: select the token instead.", true)) }, "Copy the token")));
    form.reset();
    refresh();
  });
  const list = table(["Name", "Scope", "Created", "SSH principals", { hidden: "Actions" }], [], { id: "tokens" });
  root.append(h("h1", {}, "API tokens"), h("section", { class: "card", id: "add-token" }, h("h2", {}, "Create a token"), form), made,
    h("section", { class: "card" }, h("p", { class: "muted" }, "The change log names the token of each change. api-token is the token in this box's data directory: Rotate gives it a new value, at once, and the sign-in link infrad logged stops working."), list));
  return async () => {
    const tokens = await get("/api/v1/tokens");
    list.setRows(tokens.map((t) => h("tr", { "data-token": t.name }, h("td", {}, t.name), h("td", {}, t.scope),
      h("td", {}, t.created && !t.created.startsWith("0001") ? when(t.created) : "(each box's file)"),
      h("td", {}, (t.ssh_principals || []).join(", ") || (t.name === "api-token" ? "any" : "")),
      h("td", { class: "actions" }, t.name === "api-token" ? h("button", { class: "danger", onclick: () => rotateFileToken(made) }, "Rotate") : h("button", { class: "danger", onclick: () => { if (confirmed(`Revoke token ${t.name}? Whatever uses it is refused from now on.`)) act(() => api("DELETE", `/api/v1/tokens/${encodeURIComponent(t.name)}`), `Token ${t.name} revoked.`); } }, "Revoke")))));
  };
}

// rotateFileToken gives this box's api-token a new value. A browser signed in with it
// (not with a named token, which begins infrad_) goes on with the new one.
function rotateFileToken(made) {
  if (!confirmed("Rotate this box's api-token? The old token, and the sign-in link infrad logged, stop working now.")) return;
  act(async () => {
    const t = await api("POST", "/api/v1/tokens/api-token/rotate");
    if (!token().startsWith("infrad_")) localStorage.setItem(TOKEN, t.token);
    made.replaceChildren(h("section", { class: "card" }, h("h2", {}, "The new api-token"),
      h("p", {}, "Copy it now. It is also in this box's data directory, in api-token."),
      h("p", { class: "secret", id: "token-secret" }, t.token)));
  }, "api-token rotated.");
}

// --- search across the site ---

async function searchPage(root) {
  const q = query("q").toLowerCase();
  document.getElementById("global-search").value = query("q");
  const results = h("div", { class: "results", id: "results" });
  root.append(h("h1", {}, `Search: ${query("q")}`), results);
  return async () => {
    const [hosts, leases, records, subnets] = await Promise.all([get("/api/v1/hosts"), get("/api/v1/dhcp/leases"), get("/api/v1/dns/records"), get("/api/v1/subnets")]);
    const has = (...vs) => vs.some((v) => (v || "").toLowerCase().includes(q));
    const groups = [
      ["Hosts", "hosts", hosts.filter((x) => has(x.name, x.ip, x.ip6, x.mac, x.role, x.comment)).map((x) => [x.name, `${x.ip}${x.mac ? " · " + x.mac : ""}`])],
      ["Leases", "leases", leases.filter((l) => has(l.ip, l.mac, l.client, l.hostname)).map((l) => [l.ip, `${l.client ? "DUID " + l.client : l.mac || "quarantined"}${l.hostname ? " · " + l.hostname : ""}`])],
      ["DNS records", "dns", records.filter((r) => has(r.name, r.type, r.value)).map((r) => [r.name, `${r.type} ${r.value}`])],
      ["Subnets", "subnets", subnets.filter((sn) => has(sn.name, sn.cidr, sn.comment, ...(sn.ranges || []).map((r) => r.name))).map((sn) => [sn.name, sn.cidr])],
    ];
    const found = groups.filter(([, , items]) => items.length);
    results.replaceChildren(...(q && found.length ? found.map(([title, page, items]) => h("section", { class: "card", "data-results": page }, h("h2", {}, `${title} (${items.length})`),
      h("ul", {}, items.map(([name, about]) => h("li", {}, h("a", { href: `#/${page}?q=${encodeURIComponent(name)}` }, name), " ", h("span", { class: "muted" }, about))))))
      : [h("p", { class: "muted" }, q ? "Nothing matches." : "Type in the search box above.")]));
  };
}

// --- routing ---

const pages = {
  dashboard: ["Dashboard", dashboard, true], subnets: ["Subnets", subnetsPage], hosts: ["Hosts", hostsPage], leases: ["Leases", leasesPage, true],
  activity: ["DHCP activity", activityPage, true], dns: ["DNS records", dnsPage], ca: ["Certificate authority", caPage],
  changes: ["Changes", changesPage], tokens: ["API tokens", tokensPage], search: ["Search", searchPage],
};
let update = null; // the page's redraw

// busy says whether a refresh now would be in the way: a form being filled in, a row
// being edited, or text selected (to be copied).
function busy() {
  const focused = document.activeElement;
  if (focused && main.contains(focused) && focused.type !== "search" && focused.tagName !== "BUTTON" && focused !== main) return true;
  if (main.querySelector("[data-editing]")) return true;
  const sel = window.getSelection();
  return sel && !sel.isCollapsed && main.contains(sel.anchorNode);
}

// refresh redraws the page's data; when infrad does not answer it says so and keeps
// what the page showed.
async function refresh() {
  if (!update) return;
  const banner = main.querySelector(".offline");
  try {
    await update();
    banner?.remove();
  } catch (e) {
    if (e.status === 401) return;
    if (e.status === 0) {
      if (!banner) main.prepend(h("p", { class: "offline", role: "alert" }, `${e.message} The page shows what it last had, and tries again every 2 seconds.`));
    } else notify(e.message, true);
  }
}

async function route() {
  clearInterval(poll);
  update = null;
  if (!token()) return signIn();
  for (const id of ["nav", "search", "signout"]) document.getElementById(id).hidden = false;
  const name = (location.hash.match(/^#\/(\w+)/) || [])[1] || "dashboard";
  const [title, page, live] = pages[name] || pages.dashboard;
  document.title = `${title} · infrad`;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === `#/${name}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const root = h("div");
  main.replaceChildren(root);
  try {
    update = await page(root);
  } catch (e) {
    if (e.status !== 401) root.replaceChildren(h("p", { class: "error", role: "alert" }, e.message));
    return;
  }
  await refresh();
  if (live) poll = setInterval(() => { if (!busy()) refresh(); }, 2000); // live pages follow the site
}
window.addEventListener("hashchange", () => { route(); main.focus({ preventScroll: true }); });
route();
