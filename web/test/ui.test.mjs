// The UI as a person uses it: Playwright driving Debian's Chromium against a running
// infrad. The Go test TestUI (cmd/infrad) starts infrad, with a site file that holds
// almost nothing, and a DHCP client's namespace, then runs this with node --test and:
//   SIGNIN_URL  the sign-in link infrad logged
//   API_TOKEN   the same token, for checking results through the API
//   LEASE_CMD   a JSON array: the command that makes a DHCP client take a lease
//   LEASE6_CMD  the same for a DHCPv6 client (ISC dhclient -6, giving its name laptop6)
//   SHOTS       where screenshots go
// A new user builds the lab's subnet, ranges, hosts and records here, in the browser;
// every action is checked through the API. Any uncaught error or console error fails
// the test (the browser's own note of an HTTP error answer, which a refused action
// gets on purpose, excepted), and axe-core checks every page at two widths.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const { SIGNIN_URL, LEASE_CMD, LEASE6_CMD, SHOTS } = process.env;
let API_TOKEN = process.env.API_TOKEN; // until the test that rotates it
const BASE = new URL(SIGNIN_URL).origin;
const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");
const PAGES = ["dashboard", "subnets", "hosts", "leases", "activity", "dns", "ca", "changes", "tokens", "search"];
let browser, context, page;
const errors = [];
let netErrorsExpected = false;
let promptAnswer = "";

// watch collects a page's errors and answers its dialogs (confirm: yes; prompt: promptAnswer).
function watch(p) {
  p.on("pageerror", (e) => errors.push(`uncaught: ${e.message}`));
  p.on("console", (m) => {
    if (m.type() !== "error") return;
    if (/Failed to load resource: the server responded with a status of (4\d\d|503)/.test(m.text())) return;
    if (netErrorsExpected && /net::ERR_FAILED|Failed to fetch/.test(m.text())) return;
    errors.push(`console: ${m.text()}`);
  });
  p.on("dialog", (d) => d.accept(d.type() === "prompt" ? promptAnswer : undefined));
  return p;
}

// newContext is a browser signed in with API_TOKEN, at viewport.
async function newContext(viewport) {
  const ctx = await browser.newContext({ viewport });
  await ctx.addInitScript((t) => localStorage.setItem("infrad-token", t), API_TOKEN);
  return ctx;
}

before(async () => {
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--no-first-run", "--disable-sync"],
  });
  context = await browser.newContext({ viewport: { width: 1400, height: 900 }, permissions: ["clipboard-read", "clipboard-write"] });
  page = watch(await context.newPage());
});
after(async () => { await browser?.close(); });
afterEach(() => {
  const found = errors.splice(0);
  assert.deepEqual(found, [], "the page logged errors");
});

const shot = (p, name) => p.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
// go opens the page afresh, as a reload would (the same address again is no navigation).
const go = async (hash) => {
  await page.goto("about:blank");
  await page.goto(`${BASE}/ui/${hash}`);
  await page.locator("main h1").first().waitFor();
};

// call is the API, as a script would use it, with token.
async function call(method, path, body, token = API_TOKEN) {
  const res = await fetch(BASE + path, {
    method, headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: res.status === 204 ? null : await res.json() };
}

async function fill(form, values) {
  for (const [name, v] of Object.entries(values)) {
    const el = form.locator(`[name="${name}"]`);
    if ((await el.evaluate((e) => e.tagName)) === "SELECT") await el.selectOption(v);
    else await el.fill(v);
  }
}

test("sign in with the logged link and see every service ready", async () => {
  await page.goto(SIGNIN_URL);
  for (const name of ["ntp", "dns", "dhcp", "ca", "api"]) {
    await page.locator(`#services tr[data-service="${name}"] .badge.ready`).waitFor({ timeout: 15000 });
  }
  assert.match(page.url(), /#\/dashboard$/, "the token is taken out of the address bar");
  assert.equal(await page.title(), "Dashboard · infrad");
  assert.equal(await page.locator('#nav a[aria-current="page"]').textContent(), "Dashboard");
  const box = page.locator('#cluster tr[data-node="infrad"]');
  await box.waitFor();
  assert.match(await box.textContent(), /leader/, "one box leads its cluster of one");
  assert.equal(await page.locator("#cluster h2").textContent(), "One box");
  await shot(page, "dashboard");
});

// A cluster's status as GET /api/v1/cluster gives it (pkg/cluster.Status): node2 cut
// off, node1 left without a majority. This box serves one, so the answer is replayed.
test("a cluster's dashboard shows each node, the witness and a lost quorum", async () => {
  const now = new Date().toISOString();
  const status = {
    node: "node1", leader: "", quorum: false, nodes: [
      { name: "node1", address: "10.78.0.1:7443", witness: false, voter: true, state: "follower", last_contact: now, applied: 812, lag: 0 },
      { name: "node2", address: "10.78.0.2:7443", witness: false, voter: true, state: "unreachable", applied: 0, lag: 0, error: "Get \"https://10.78.0.2:7443/cluster/v1/state\": context deadline exceeded (Client.Timeout exceeded while awaiting headers): dial tcp 10.78.0.2:7443: i/o timeout" },
      { name: "pi", address: "10.78.0.3:7443", witness: true, voter: true, state: "candidate", last_contact: now, applied: 810, lag: 2 },
    ],
  };
  await page.route("**/api/v1/cluster", (route) => route.fulfill({ json: status }));
  try {
    await go("#/dashboard");
    await page.locator('#cluster tr[data-node="pi"]').waitFor();
    assert.equal(await page.locator("#cluster h2").textContent(), "Cluster · leader none known");
    assert.match(await page.locator("#cluster").textContent(), /no quorum\s*node1 cannot reach a majority/);
    assert.match(await page.locator('#cluster tr[data-node="pi"]').textContent(), /witness.*candidate.*810.*2$/);
    assert.equal(await page.locator('#cluster tr[data-node="node2"] .badge.bad').textContent(), "unreachable");
    assert.match(await page.locator('#cluster tr[data-node="node2"]').textContent(), /i\/o timeout.*never/, "why it is unreachable, and no contact");
    // At 1400 px no cell breaks a word (the error under a node's name may wrap, between words).
    const broken = await page.evaluate(() => [...document.querySelectorAll("#cluster tbody td")].flatMap((td) => [...td.childNodes]).filter((c) => {
      const words = (c.textContent || "").trim().split(/\s+/).filter(Boolean).length;
      const range = document.createRange();
      range.selectNodeContents(c.nodeType === Node.TEXT_NODE ? c.parentNode : c);
      if (c.nodeType === Node.TEXT_NODE) range.selectNode(c);
      const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
      return words > 0 && lines > words;
    }).map((c) => c.textContent));
    assert.deepEqual(broken, [], "cluster cells broken mid-word at 1400 px");
    await shot(page, "dashboard-cluster-no-quorum");
  } finally {
    await page.unroute("**/api/v1/cluster");
  }
});

test("the dashboard's refresh keeps a selection, so an error can be copied", async () => {
  await go("#/dashboard");
  const cell = page.locator('#services tr[data-service="ntp"] td').first();
  await cell.waitFor();
  await cell.evaluate((td) => { const r = document.createRange(); r.selectNodeContents(td); getSelection().removeAllRanges(); getSelection().addRange(r); });
  await page.waitForTimeout(2600);
  assert.equal(await page.evaluate(() => getSelection().toString()), "ntp", "the selection survived a refresh");
  await page.evaluate(() => getSelection().removeAllRanges());
});

test("a new user builds the lab's subnet and its named ranges", async () => {
  await go("#/subnets");
  const pods = page.locator('[data-subnet="pods"]');
  await pods.waitFor();
  assert.match(await pods.textContent(), /From the site file/, "a file-owned subnet says where it comes from");
  assert.equal(await pods.locator("button").count(), 0, "and cannot be changed here");

  const form = page.locator("#add-subnet form");
  await fill(form, { name: "lab", cidr: "10.77.0.0/24", gateway: "10.77.0.254" });
  await form.getByRole("button", { name: "Add a range" }).click();
  await form.getByRole("button", { name: "Add a range" }).click();
  await fill(form, {
    "ranges[0].kind": "dhcp", "ranges[0].name": "clients", "ranges[0].start": "10.77.0.100", "ranges[0].end": "10.77.0.103",
    "ranges[1].kind": "reserved", "ranges[1].name": "metallb", "ranges[1].start": "10.77.0.200", "ranges[1].end": "10.77.0.220",
  });
  await form.getByRole("button", { name: "Add subnet" }).click();
  const lab = page.locator('[data-subnet="lab"]');
  await lab.waitFor();
  const { body: sn } = await call("GET", "/api/v1/subnets/lab");
  assert.deepEqual(sn.ranges.map((r) => `${r.kind} ${r.name || ""} ${r.start}-${r.end}`),
    ["dhcp clients 10.77.0.100-10.77.0.103", "reserved metallb 10.77.0.200-10.77.0.220"]);
  assert.match(await lab.locator('tr[data-range="metallb"]').textContent(), /metallb.*reserved.*10\.77\.0\.200 – 10\.77\.0\.220.*21/);
  assert.match(await lab.locator(".use").textContent(), /256 addresses: 0 hosts, 0 leases, 253 free/);
});

test("a subnet's mistakes are shown beside their fields", async () => {
  const form = page.locator("#add-subnet form");
  await fill(form, { name: "bad", cidr: "10.78.0.0/33", gateway: "" });
  await form.getByRole("button", { name: "Add subnet" }).click();
  await form.locator('[data-error-for="cidr"]').filter({ hasText: /\S/ }).waitFor();
  assert.equal(await form.locator('[name="cidr"]').getAttribute("aria-invalid"), "true");
  await fill(form, { cidr: "10.78.0.0/24" });
  await form.getByRole("button", { name: "Add a range" }).click();
  await fill(form, { "ranges[0].kind": "reserved", "ranges[0].name": "vip", "ranges[0].start": "10.79.0.1", "ranges[0].end": "10.79.0.5" });
  await form.getByRole("button", { name: "Add subnet" }).click();
  const err = form.locator('[data-error-for="ranges[0]"]');
  await err.filter({ hasText: /\S/ }).waitFor();
  assert.match(await err.textContent(), /not inside subnet "bad"/);
  assert.equal((await call("GET", "/api/v1/subnets/bad")).status, 404, "nothing was made");
  // Without the range the subnet is good.
  await form.locator('[data-range="0"]').getByRole("button", { name: "Remove range" }).click();
  await form.getByRole("button", { name: "Add subnet" }).click();
  await page.locator('[data-subnet="bad"]').waitFor();
  assert.deepEqual((await call("GET", "/api/v1/subnets/bad")).body.ranges ?? [], []);
  assert.equal((await call("DELETE", "/api/v1/subnets/bad")).status, 204);
  await shot(page, "subnets-error-beside-range");
});

test("edit a subnet, with Cancel, and delete one", async () => {
  await go("#/subnets");
  const lab = page.locator('[data-subnet="lab"]');
  await lab.getByRole("button", { name: "Edit" }).click();
  await lab.getByRole("button", { name: "Cancel" }).click();
  await lab.getByRole("button", { name: "Edit" }).waitFor();
  await lab.getByRole("button", { name: "Edit" }).click();
  await lab.locator('[name="comment"]').fill("the lab's LAN");
  await lab.getByRole("button", { name: "Save subnet" }).click();
  await page.locator('[data-subnet="lab"] p', { hasText: "the lab's LAN" }).waitFor();
  assert.equal((await call("GET", "/api/v1/subnets/lab")).body.comment, "the lab's LAN");
  assert.equal((await call("GET", "/api/v1/subnets/lab")).body.ranges.length, 2, "the ranges stay");

  assert.equal((await call("POST", "/api/v1/subnets", { name: "scratch", cidr: "10.81.0.0/24" })).status, 201);
  await go("#/subnets");
  await page.locator('[data-subnet="scratch"]').getByRole("button", { name: "Delete" }).click();
  await page.locator('[data-subnet="scratch"]').waitFor({ state: "detached" });
  assert.equal((await call("GET", "/api/v1/subnets/scratch")).status, 404);
});

test("the address map names what is under the pointer, for /24 to /16", async () => {
  assert.equal((await call("POST", "/api/v1/subnets", { name: "big", cidr: "10.80.0.0/20", ranges: [{ kind: "dhcp", name: "fleet", start: "10.80.4.0", end: "10.80.7.255" }] })).status, 201);
  assert.equal((await call("POST", "/api/v1/hosts", { name: "bighost", ip: "10.80.0.5" })).status, 201);
  await go("#/subnets");
  const lab = page.locator('[data-subnet="lab"] .map');
  await lab.waitFor();
  assert.equal(await lab.locator("i").count(), 256, "a /24 is 256 cells");
  assert.deepEqual((await lab.locator(".row-label").allTextContents()).slice(0, 2), ["10.77.0.0", "10.77.0.16"], "each row is labelled");
  await lab.locator('i[data-cell="205"]').hover();
  const detail = page.locator('[data-subnet="lab"] .map-detail');
  assert.equal(await detail.textContent(), "10.77.0.205: reserved range metallb, free");
  await lab.focus();
  await page.keyboard.press("Home");
  assert.equal(await detail.textContent(), "10.77.0.0: the network address");
  await page.keyboard.press("ArrowRight");
  assert.equal(await detail.textContent(), "10.77.0.1: free", "the keyboard moves through the map");
  await page.keyboard.press("ArrowDown");
  assert.equal(await detail.textContent(), "10.77.0.17: free");

  const big = page.locator('[data-subnet="big"]');
  assert.equal(await big.locator(".map i").count(), 256, "a /20 is 256 cells of 16 addresses");
  assert.match(await big.locator('.map i[data-cell="0"]').getAttribute("class"), /host/, "its host is drawn");
  await big.locator('.map i[data-cell="64"]').click();
  assert.equal(await big.locator(".map-detail").textContent(), "10.80.4.0 – 10.80.4.15: 0 hosts, 0 leases, 16 free; DHCP pool fleet");
  const pods = page.locator('[data-subnet="pods"]');
  assert.equal(await pods.locator(".map i").count(), 256, "a /16 is 256 cells of 256 addresses");
  await pods.locator('.map i[data-cell="255"]').click();
  assert.match(await pods.locator(".map-detail").textContent(), /^10\.244\.255\.0 – 10\.244\.255\.255: 0 hosts, 0 leases, 255 free$/);
  await shot(page, "subnets");
});

test("hosts: add, the next free address, a refusal beside its field", async () => {
  await go("#/hosts");
  const form = page.locator("#add-host form");
  await fill(form, { name: "infra", ip: "10.77.0.1", comment: "this box" });
  await form.getByRole("button", { name: "Add host" }).click();
  await page.locator('#hosts tr[data-host="infra"]').waitFor();
  await fill(form, { name: "cp01", ip: "10.77.0.10", mac: "52:54:00:77:00:10", role: "control-plane" });
  await form.getByRole("button", { name: "Add host" }).click();
  await page.locator('#hosts tr[data-host="cp01"]').waitFor();
  assert.match(await page.locator('#hosts tr[data-host="cp01"]').textContent(), /cp0110\.77\.0\.1052:54:00:77:00:10control-planelab/);

  await fill(form, { name: "w01", ip: "", subnet: "lab", role: "worker" });
  await form.getByRole("button", { name: "Add host" }).click();
  await page.locator('#hosts tr[data-host="w01"]').waitFor();
  assert.equal((await call("GET", "/api/v1/hosts/w01")).body.ip, "10.77.0.2", "the lowest free address of lab");

  await fill(form, { name: "web02", ip: "10.77.0.10", subnet: "" });
  await form.getByRole("button", { name: "Add host" }).click();
  const err = form.locator('[data-error-for="ip"]');
  await err.filter({ hasText: "cp01" }).waitFor();
  assert.match(await err.textContent(), /10\.77\.0\.10.*cp01/);
  assert.equal((await call("GET", "/api/v1/hosts/web02")).status, 404);
  await shot(page, "hosts-duplicate-ip");
});

test("hosts: edit with Cancel, rename, comments searched, delete", async () => {
  await go("#/hosts");
  let row = page.locator('#hosts tr[data-host="cp01"]');
  await row.getByRole("button", { name: "Edit" }).click();
  await page.getByRole("button", { name: "Cancel" }).click();
  await page.locator('#hosts tr[data-host="cp01"] td', { hasText: "control-plane" }).waitFor();

  // Fields the form does not show (SSH principals, a Pi's serial) survive an edit.
  const w01 = (await call("GET", "/api/v1/hosts/w01")).body;
  const put = await call("PUT", "/api/v1/hosts/w01", { name: w01.name, ip: w01.ip, mac: w01.mac, role: w01.role, comment: w01.comment,
    ssh: { principals: ["w01-bmc"] }, pi_serial: "a1b2c3d4" });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  await go("#/hosts");
  row = page.locator('#hosts tr[data-host="w01"]');
  await row.getByRole("button", { name: "Edit" }).click();
  const edit = page.locator("#hosts form");
  await fill(edit, { name: "w02", comment: "rack 3" });
  await edit.getByRole("button", { name: "Save" }).click();
  await page.locator('#hosts tr[data-host="w02"]').waitFor();
  assert.equal((await call("GET", "/api/v1/hosts/w01")).status, 404);
  const w02 = (await call("GET", "/api/v1/hosts/w02")).body;
  assert.equal(`${w02.ssh?.principals} ${w02.pi_serial}`, "w01-bmc a1b2c3d4", "the edit dropped what the form does not show");
  assert.equal(`${w02.ip} ${w02.comment}`, "10.77.0.2 rack 3");

  await page.locator("#host-search").fill("rack");
  assert.deepEqual(await page.locator("#hosts tbody tr").evaluateAll((rs) => rs.map((r) => r.dataset.host)), ["w02"]);
  await page.locator("#host-search").fill("");

  await page.locator('#hosts tr[data-host="w02"]').getByRole("button", { name: "Delete" }).click();
  await page.locator('#hosts tr[data-host="w02"]').waitFor({ state: "detached" });
  assert.equal((await call("GET", "/api/v1/hosts/w02")).status, 404);
});

test("hosts: a boot profile chosen, booted once, armed again", async () => {
  assert.equal((await call("POST", "/api/v1/hosts", { name: "pxe01", ip: "10.77.0.21", mac: "52:54:00:77:00:21" })).status, 201);
  await go("#/hosts");
  await page.locator('#hosts tr[data-host="pxe01"]').getByRole("button", { name: "Edit" }).click();
  const edit = page.locator("#hosts form");
  await edit.locator('select[name="boot"]').selectOption("debian");
  await edit.getByLabel("Boot from it once").check();
  await edit.getByRole("button", { name: "Save" }).click();
  const row = page.locator('#hosts tr[data-host="pxe01"]');
  await row.locator("td", { hasText: "once" }).waitFor();
  const pxe01 = (await call("GET", "/api/v1/hosts/pxe01")).body;
  assert.equal(`${pxe01.boot} ${pxe01.boot_once}`, "debian true");
  // The machine boots: its script, then its callback, from where it fetched the script.
  assert.match(await (await fetch("http://127.0.0.1:8081/ipxe/52-54-00-77-00-21")).text(), /^#!ipxe\nkernel http:\/\/127\.0\.0\.1:8081\/files\/debian\/vmlinuz/);
  assert.equal((await fetch("http://127.0.0.1:8081/booted/52-54-00-77-00-21")).status, 200);
  // The boot steps are in the DHCP activity page, with what each served.
  await go("#/activity");
  const script = page.locator('#activity tr[data-type="SCRIPT"]').first();
  await script.waitFor();
  assert.match(await script.textContent(), /52:54:00:77:00:21.*debian/);
  await page.locator('#activity tr[data-type="BOOTED"]', { hasText: "pxe01" }).waitFor();
  await go("#/hosts");
  await row.getByRole("button", { name: "Boot again" }).click();
  await row.getByRole("button", { name: "Boot again" }).waitFor({ state: "detached" });
  assert.equal((await call("GET", "/api/v1/hosts/pxe01")).body.booted, undefined);
  await shot(page, "hosts-boot");
  assert.equal((await call("DELETE", "/api/v1/hosts/pxe01")).status, 204);
});

test("a failed action says why, and the stale row goes", async () => {
  assert.equal((await call("POST", "/api/v1/hosts", { name: "ghost", ip: "10.77.0.66" })).status, 201);
  await go("#/hosts");
  await page.locator('#hosts tr[data-host="ghost"]').waitFor();
  assert.equal((await call("DELETE", "/api/v1/hosts/ghost")).status, 204);
  await page.locator('#hosts tr[data-host="ghost"]').getByRole("button", { name: "Delete" }).click();
  await page.locator("#notice.bad", { hasText: 'host "ghost"' }).waitFor();
  await page.locator('#hosts tr[data-host="ghost"]').waitFor({ state: "detached" });
  await page.locator("#notice button").click();
});

test("DNS records: add with a TTL of 5m, refuse a bad one, search, sort, edit, delete", async () => {
  await go("#/dns");
  const form = page.locator("#add-record form");
  await fill(form, { name: "grafana", type: "A", value: "10.77.0.50", ttl: "5 min" });
  await form.getByRole("button", { name: "Add record" }).click();
  await form.locator('[data-error-for="ttl"]').filter({ hasText: /not a TTL/ }).waitFor();
  await fill(form, { ttl: "5m" });
  await form.getByRole("button", { name: "Add record" }).click();
  await page.locator("#records td", { hasText: "grafana.lab.test." }).first().waitFor();
  const mine = (await call("GET", "/api/v1/dns/records")).body.find((r) => r.name === "grafana.lab.test.");
  assert.equal(mine.ttl, 300, "5m is 300 seconds");
  for (const [name, type, value] of [["registry", "CNAME", "cp01"], ["_etcd-server-ssl._tcp", "SRV", "0 10 2380 cp01"]]) {
    await fill(form, { name, type, value, ttl: "" });
    await form.getByRole("button", { name: "Add record" }).click();
    await page.locator("#records td", { hasText: value }).first().waitFor();
  }

  const derived = page.locator('#records tr', { hasText: "host cp01" });
  assert.equal(await derived.count(), 2, "cp01's A and PTR, from the host");
  assert.match(await derived.first().textContent(), /follows from the host/);
  assert.match(await page.locator("#records tr", { hasText: "www.lab.test." }).textContent(), /site file.*read-only/);

  await page.locator("#record-search").fill("grafana");
  assert.equal(await page.locator("#records tbody tr").count(), 1);
  await page.locator("#record-search").fill("");
  await page.locator("#records th button", { hasText: "Type" }).click();
  const types = await page.locator("#records tbody tr td:nth-child(2)").allTextContents();
  assert.deepEqual(types, [...types].sort(), "sorted by type");

  await page.locator(`#records tr[data-record="${mine.id}"]`).getByRole("button", { name: "Edit" }).click();
  const edit = page.locator("#records form");
  await fill(edit, { value: "10.77.0.51" });
  await edit.getByRole("button", { name: "Save" }).click();
  await page.locator("#records td", { hasText: "10.77.0.51" }).waitFor();
  const now = (await call("GET", "/api/v1/dns/records")).body.filter((r) => r.name === "grafana.lab.test.");
  assert.deepEqual(now.map((r) => `${r.value} ${r.ttl}`), ["10.77.0.51 300"], "the record changed, its TTL kept");

  await page.locator(`#records tr[data-record="${now[0].id}"]`).getByRole("button", { name: "Delete" }).click();
  await page.locator(`#records tr[data-record="${now[0].id}"]`).waitFor({ state: "detached" });
  assert.equal((await call("GET", `/api/v1/dns/records/${now[0].id}`)).status, 404);
  await shot(page, "dns");
});

test("DNSSEC: the DS records and the keys, as the API has them", async () => {
  await go("#/dns");
  const st = (await call("GET", "/api/v1/dns/dnssec")).body;
  assert.ok(st.enabled && st.ds.length >= 1 && st.keys.length >= 2, "signed, with a KSK and a ZSK");
  await page.locator("#ds-records").waitFor();
  assert.equal((await page.locator("#ds-records").textContent()).trim(), st.ds.join("\n"));
  assert.equal(await page.locator("#dnssec-keys tbody tr").count(), st.keys.length);
  assert.match(await page.locator("#dnssec").textContent(), /signing/);
  assert.match(await page.locator("#ksk-stage").textContent(), /steady/);

  // A KSK roll from the page: the new KSK signs beside the old; the parent's DS
  // cannot be said changed before the CDS asks for it.
  await page.getByRole("button", { name: "Roll the KSK" }).click();
  await page.locator("#ksk-stage", { hasText: "published" }).waitFor();
  const rolled = (await call("GET", "/api/v1/dns/dnssec")).body;
  assert.equal(rolled.ksk.stage, "published");
  assert.equal(rolled.keys.filter((k) => k.role === "ksk").length, 2);
  assert.equal(await page.locator("#dnssec-keys tbody tr").count(), rolled.keys.length);
  const early = await call("POST", "/api/v1/dns/dnssec/ksk/ds");
  assert.equal(early.status, 409);
  assert.match(early.body.error.message, /CDS is published from/);
  await shot(page, "dnssec-roll");
});

test("a real client's lease appears live; the filter keeps what is typed", async () => {
  await go("#/leases");
  const filter = page.locator("#lease-filter");
  await filter.click();
  await page.keyboard.type("10.77");
  await page.waitForTimeout(2600); // a refresh or more
  await page.keyboard.type(".0.10");
  assert.equal(await filter.inputValue(), "10.77.0.10");
  const [cmd, ...args] = JSON.parse(LEASE_CMD);
  execFileSync(cmd, args, { stdio: "ignore", timeout: 30000 });
  const row = page.locator('tr[data-lease="10.77.0.100"]');
  await row.waitFor({ timeout: 15000 });
  assert.match(await row.textContent(), /52:54:00:77:00:99.*laptop.*dynamic/);
  assert.equal(await filter.inputValue(), "10.77.0.10", "the refresh that drew the lease left the filter alone");
  await shot(page, "leases");
});

test("pin the lease as a reservation", async () => {
  const row = page.locator('tr[data-lease="10.77.0.100"]');
  await row.getByRole("button", { name: "Pin as reservation" }).click();
  await page.locator('tr[data-lease="10.77.0.100"] .badge', { hasText: "reserved: laptop" }).waitFor();
  const host = (await call("GET", "/api/v1/hosts/laptop")).body;
  assert.equal(`${host.ip} ${host.mac} ${host.owner}`, "10.77.0.100 52:54:00:77:00:99 api");
});

test("DHCP activity shows the exchange, searchable", async () => {
  await go("#/activity");
  for (const type of ["DISCOVER", "OFFER", "REQUEST", "ACK"]) await page.locator(`#activity tr[data-type="${type}"]`).first().waitFor();
  await page.locator("#activity-filter").fill("ack");
  await page.waitForFunction(() => [...document.querySelectorAll("#activity tbody tr")].every((r) => r.dataset.type === "ACK"));
  assert.match(await page.locator("#activity tbody tr").first().textContent(), /to the client.*ACK.*52:54:00:77:00:99.*10\.77\.0\.100/);
  await shot(page, "activity");
});

test("the CA page: fingerprint, expiries, lifetime, nothing issued yet", async () => {
  await go("#/ca");
  await page.locator("#fingerprint").waitFor();
  assert.match(await page.locator("#fingerprint").textContent(), /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  assert.equal(await page.locator("#lifetime").textContent(), "90 days");
  assert.match(await page.locator("#ca-info").textContent(), /Root expires\S/);
  await page.locator("#no-certs").waitFor();
  await shot(page, "ca");
});

test("tokens: create, use under its name, a read token's write refused, revoke", async () => {
  await go("#/tokens");
  const form = page.locator("#add-token form");
  await fill(form, { name: "alice" });
  await form.getByRole("button", { name: "Create token" }).click();
  const alice = (await page.locator("#token-secret").textContent()).trim();
  assert.match(alice, /^infrad_[0-9a-f]{64}$/);
  await page.getByRole("button", { name: "Copy the token" }).click();
  await page.locator("#notice", { hasText: "Copied." }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), alice);
  assert.equal((await call("POST", "/api/v1/hosts", { name: "by-alice", ip: "10.77.0.70" }, alice)).status, 201);

  await page.locator('#tokens tr[data-token="alice"]', { hasText: "write" }).waitFor();
  await fill(form, { name: "viewer" });
  await form.locator('[name="scope"]').selectOption("read");
  await form.getByRole("button", { name: "Create token" }).click();
  await page.locator('#tokens tr[data-token="viewer"]', { hasText: "read" }).waitFor();
  const viewer = (await page.locator("#token-secret").textContent()).trim();
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const other = watch(await ctx.newPage());
  await other.goto(`${BASE}/ui/#token=${viewer}`);
  await other.goto(`${BASE}/ui/#/hosts`);
  const add = other.locator("#add-host form");
  await fill(add, { name: "nope", ip: "10.77.0.71" });
  await add.getByRole("button", { name: "Add host" }).click();
  await add.locator('[data-error-for=""]', { hasText: "has the scope read" }).waitFor();
  await ctx.close();

  await page.locator('#tokens tr[data-token="alice"]').getByRole("button", { name: "Revoke" }).click();
  await page.locator('#tokens tr[data-token="alice"]').waitFor({ state: "detached" });
  assert.equal((await call("GET", "/api/v1/hosts", null, alice)).status, 401);
  await shot(page, "tokens");
});

// sshPublicKey is a new Ed25519 public key as an authorized_keys line.
function sshPublicKey() {
  const { x } = generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" });
  const str = (b) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  return "ssh-ed25519 " + Buffer.concat([str(Buffer.from("ssh-ed25519")), str(Buffer.from(x, "base64url"))]).toString("base64");
}

test("SSH: a token's principals, the CA's keys, a user certificate listed and revoked", async () => {
  await go("#/tokens");
  const form = page.locator("#add-token form");
  await fill(form, { name: "ops", ssh_principals: "root, ops" });
  await form.locator('[name="scope"]').selectOption("read");
  await form.getByRole("button", { name: "Create token" }).click();
  await page.locator('#tokens tr[data-token="ops"]', { hasText: "root, ops" }).waitFor();
  const ops = (await page.locator("#token-secret").textContent()).trim();
  const signed = await call("POST", "/api/v1/ca/ssh/users", { public_key: sshPublicKey(), hours: 1 }, ops);
  assert.equal(signed.status, 201, JSON.stringify(signed.body));
  assert.deepEqual(signed.body.principals, ["ops", "root"]);
  assert.match(signed.body.certificate, /^ssh-ed25519-cert-v01@openssh.com /);

  await go("#/ca");
  await page.locator("#ssh-host-ca").waitFor();
  assert.match(await page.locator("#ssh-host-ca").textContent(), /^ssh-ed25519 AAAA/);
  assert.match(await page.locator("#ssh-user-ca").textContent(), /^ssh-ed25519 AAAA/);
  const row = page.locator(`#ssh-certs tr[data-ssh-serial="${signed.body.serial}"]`);
  assert.match(await row.textContent(), /user.*ops.*ops, root.*valid/);
  await row.getByRole("button", { name: "Revoke" }).click();
  await row.locator(".badge", { hasText: "revoked" }).waitFor();
  const certs = (await call("GET", "/api/v1/ca/ssh/certificates")).body;
  assert.ok(!certs.find((c) => c.serial === signed.body.serial).revoked.startsWith("0001"));
  await shot(page, "ssh");
});

// filterChanges filters the change log's page p with values and waits until every
// row shows each of words (the page first shows the unfiltered log).
async function filterChanges(p, values, ...words) {
  const form = p.locator("#change-filter form");
  await fill(form, values);
  await form.getByRole("button", { name: "Filter" }).click();
  await p.waitForFunction((ws) => {
    const rows = [...document.querySelectorAll("#changes tbody tr")];
    return rows.length > 0 && rows.every((r) => ws.every((w) => r.textContent.includes(w)));
  }, words);
}

test("the change log: who did what, filtered", async () => {
  await go("#/changes");
  await page.locator("#changes tbody tr").first().waitFor();
  const form = page.locator("#change-filter form");
  await filterChanges(page, { source: "alice" }, "token alice");
  assert.match(await page.locator("#changes tbody tr").first().textContent(), /token alice.*host saved.*create host by-alice/);
  assert.equal(await page.locator("#changes tbody tr").count(), 1);

  await filterChanges(page, { source: "", object: "laptop" }, "laptop");
  await page.locator("#changes tbody tr", { hasText: "lease pinned" }).waitFor();
  await filterChanges(page, { object: "subnet lab" }, "subnet lab");
  const update = page.locator("#changes tbody tr", { hasText: "update subnet lab" });
  await update.waitFor(); // the update, before and after
  assert.match(await update.textContent(), /token api-token.*subnet saved.*comment — → the lab's LAN/, "who changed it, and how");
  assert.match(await page.locator("#changes tbody tr", { hasText: "create subnet lab" }).textContent(), /token api-token/);

  // Pages of 50: more than that, and "Show older" brings the next.
  for (let i = 0; i < 55; i++) assert.equal((await call("POST", "/api/v1/dns/records", { name: `bulk${i}`, type: "TXT", value: `n${i}` })).status, 201);
  await fill(form, { object: "", source: "" });
  await form.getByRole("button", { name: "Filter" }).click();
  await page.waitForFunction(() => document.querySelectorAll("#changes tbody tr").length === 50 &&
    document.querySelector("#changes tbody tr").textContent.includes("bulk54"));
  await page.getByRole("button", { name: "Show older" }).click();
  await page.locator("#changes tbody tr", { hasText: "create record bulk4." }).first().waitFor();
  assert.ok(await page.locator("#changes tbody tr").count() > 50, "the next page was added below");
  assert.equal(await page.locator("#changes tbody tr", { hasText: "create record bulk54" }).count(), 1, "no entry twice");

  await fill(form, { object: "", since: "yesterday" });
  await form.getByRole("button", { name: "Filter" }).click();
  await form.locator('[data-error-for="since"]').filter({ hasText: "not a date" }).waitFor();
  await fill(form, { since: "" });
  await shot(page, "changes");
});

test("search the site from the top bar", async () => {
  await go("#/dashboard");
  await page.locator("#global-search").fill("cp01");
  await page.keyboard.press("Enter");
  await page.locator('[data-results="hosts"]').waitFor();
  assert.ok(await page.locator('[data-results="dns"]').count(), "records that name cp01 are found too");
  await page.locator('[data-results="hosts"] a', { hasText: "cp01" }).click();
  await page.locator('#hosts tr[data-host="cp01"]').waitFor();
  assert.equal(await page.locator("#host-search").inputValue(), "cp01");
  assert.equal(await page.locator("#hosts tbody tr").count(), 1);
});

test("a dual-stack host: its IPv6 address, AAAA and both PTRs", async () => {
  assert.equal((await call("POST", "/api/v1/subnets", { name: "lab6", cidr: "fd00:77::/64" })).status, 201);
  await go("#/hosts");
  const form = page.locator("#add-host form");
  await fill(form, { name: "ds01", ip: "10.77.0.30", ip6: "fd00:77::30", duid: "00:04:AA:BB:CC" });
  await form.getByRole("button", { name: "Add host" }).click();
  await page.locator('#hosts tr[data-host="ds01"]', { hasText: "fd00:77::30" }).filter({ hasText: "DUID 0004aabbcc" }).waitFor();
  const ds01 = (await call("GET", "/api/v1/hosts/ds01")).body;
  assert.equal(`${ds01.ip6} ${ds01.duid}`, "fd00:77::30 0004aabbcc");
  await go("#/subnets");
  const card = page.locator('section[data-subnet="lab6"]');
  await card.locator('[data-used="lab6"] tr', { hasText: "fd00:77::30" }).waitFor();
  assert.match(await card.locator('[data-used="lab6"] tr', { hasText: "fd00:77::30" }).textContent(), /host ds01/);
  assert.match(await card.locator(".use").textContent(), /^18446744073709551616 addresses: 1 in use$/);
  await go("#/dns");
  for (const text of ["AAAAfd00:77::30", "0.3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.7.7.0.0.0.0.d.f.ip6.arpa.PTRds01.lab.test."]) {
    await page.locator("tr", { hasText: text }).first().waitFor();
  }
});

test("a DHCPv6 client's lease: its DUID, its name's AAAA, no pin", async () => {
  // The dual-stack test's subnet, given DHCPv6 and a pool: served at once.
  const made = await call("PUT", "/api/v1/subnets/lab6", { name: "lab6", cidr: "fd00:77::/64", dhcp6: "stateful",
    ranges: [{ kind: "dhcp", start: "fd00:77::100", end: "fd00:77::1ff" }] });
  assert.equal(made.status, 200, JSON.stringify(made.body));
  const [cmd, ...args] = JSON.parse(LEASE6_CMD);
  execFileSync(cmd, args, { stdio: "ignore", timeout: 30000 });
  const lease = (await call("GET", "/api/v1/dhcp/leases")).body.find((l) => l.client);
  assert.ok(lease, "no DHCPv6 lease");
  await go("#/leases");
  const row = page.locator(`tr[data-lease="${lease.ip}"]`);
  await row.waitFor();
  assert.match(await row.textContent(), /DUID [0-9a-f]+ · IAID [0-9a-f]{8}.*52:54:00:77:00:99.*laptop6.*dynamic/);
  assert.equal(await row.getByRole("button", { name: "Pin as reservation" }).count(), 0, "a DHCPv6 lease is reserved through a host's ip6");
  await page.locator("#lease-filter").fill(lease.client.slice(0, 12));
  await page.locator(`tr[data-lease="${lease.ip}"]`).waitFor();
  assert.equal(await page.locator("#leases tbody tr").count(), 1);
  await shot(page, "leases-v6");
  // A dual-stack host's second address, the next free one of the IPv6 subnet.
  await go("#/hosts");
  const form = page.locator("#add-host form");
  await fill(form, { name: "ds02", ip: "10.77.0.31" });
  await form.locator('select[name="subnet"]').selectOption("lab6");
  await form.getByRole("button", { name: "Add host" }).click();
  await page.locator('#hosts tr[data-host="ds02"]', { hasText: "fd00:77::1" }).waitFor();
  const ds02 = (await call("GET", "/api/v1/hosts/ds02")).body;
  assert.equal(`${ds02.ip} ${ds02.ip6}`, "10.77.0.31 fd00:77::1");
  await go("#/dns");
  await page.locator("tr", { hasText: "laptop6.lab.test." }).filter({ hasText: "AAAA" }).filter({ hasText: lease.ip }).waitFor();
  await go("#/subnets");
  await page.locator('[data-used="lab6"] tr', { hasText: lease.ip }).filter({ hasText: "DUID" }).waitFor();
  await go("#/dashboard");
  await page.locator("tr", { hasText: "fd00:77::100 – fd00:77::1ff" }).filter({ hasText: "1 / 256" }).waitFor();
});

// Layout at both widths: table headers keep their words whole, a pool's use is shown
// however low, buttons stay inside their cells, no favicon is asked for (a 404 on
// every load), and a form's failure takes an earlier success notice away.
test("layout at both widths, and notices that tell the truth", async () => {
  for (const viewport of [{ width: 1400, height: 900 }, { width: 390, height: 844 }]) {
    const ctx = await newContext(viewport);
    const p = watch(await ctx.newPage());
    const asked = [];
    p.on("request", (r) => asked.push(new URL(r.url()).pathname));
    await p.goto(`${BASE}/ui/#/dashboard`);
    await p.locator("#pools table").waitFor();
    await p.locator("#cluster table").waitFor();
    const broken = await p.evaluate(() => [...document.querySelectorAll("#pools th, #cluster th")].filter((th) => {
      const words = th.textContent.trim().split(/\s+/).filter(Boolean).length;
      const range = document.createRange();
      range.selectNodeContents(th);
      const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
      return th.offsetParent !== null && words > 0 && lines > words;
    }).map((th) => th.textContent));
    assert.deepEqual(broken, [], `${viewport.width} px: headers broken mid-word`);
    for (const used of await p.locator("#pools tbody tr").all()) {
      assert.match(await used.textContent(), /\d+%/, `${viewport.width} px: a pool's use is shown`);
    }
    for (const [page_, ready] of [["hosts", '#hosts tr[data-host="cp01"]'], ["leases", 'tr[data-lease="10.77.0.100"] td.actions']]) {
      await p.goto(`${BASE}/ui/#/${page_}`);
      await p.locator(ready).first().waitFor();
      const outside = await p.evaluate(() => [...document.querySelectorAll("td.actions button")].filter((b) => {
        const c = b.closest("td").getBoundingClientRect(), r = b.getBoundingClientRect();
        return r.width > 0 && (r.left < c.left - 1 || r.right > c.right + 1);
      }).map((b) => b.textContent));
      assert.deepEqual(outside, [], `${viewport.width} px, ${page_}: buttons outside their cells`);
    }
    assert.ok(!asked.includes("/favicon.ico"), `${viewport.width} px: the page asked for /favicon.ico`);
    await ctx.close();
  }
  // A success, then a form's failure: the success notice goes.
  assert.equal((await call("POST", "/api/v1/hosts", { name: "short-lived", ip: "10.77.0.91" })).status, 201);
  const ctx = await newContext({ width: 1400, height: 900 });
  const p = watch(await ctx.newPage());
  await p.goto(`${BASE}/ui/#/hosts`);
  await p.locator('#hosts tr[data-host="short-lived"]').getByRole("button", { name: "Delete" }).click();
  await p.locator("#notice", { hasText: "short-lived deleted" }).waitFor();
  const form = p.locator("#add-host form");
  await fill(form, { name: "clash", ip: "10.77.0.10" });
  await form.getByRole("button", { name: "Add host" }).click();
  await form.locator('[data-error-for="ip"]').filter({ hasText: /\S/ }).waitFor();
  assert.equal((await p.locator("#notice").textContent()).trim(), "", "the earlier success notice stays beside the failure");
  await ctx.close();
});

test("release a lease, after a confirmation", async () => {
  await go("#/leases");
  await page.locator('tr[data-lease="10.77.0.100"]').getByRole("button", { name: "Release" }).click();
  await page.locator('tr[data-lease="10.77.0.100"]').waitFor({ state: "detached" });
  const leases = (await call("GET", "/api/v1/dhcp/leases")).body;
  assert.equal(leases.filter((l) => l.ip === "10.77.0.100").length, 0);
});

test("with infrad unreachable the page says so and keeps what it had", async () => {
  await go("#/dashboard");
  await page.locator('#services tr[data-service="api"]').waitFor();
  netErrorsExpected = true;
  await page.route("**/api/v1/**", (route) => route.abort());
  try {
    await page.locator(".offline", { hasText: "infrad does not answer" }).waitFor({ timeout: 6000 });
    assert.equal(await page.locator('#services tr[data-service="api"]').count(), 1, "the last data stays");
    await shot(page, "offline");
  } finally {
    await page.unroute("**/api/v1/**");
  }
  await page.locator(".offline").waitFor({ state: "detached", timeout: 6000 });
  netErrorsExpected = false;
});

test("one sign-in for every tab; a deep link survives sign-in; sign-out everywhere", async () => {
  const second = watch(await context.newPage());
  await second.goto(`${BASE}/ui/#/hosts`);
  await second.locator('#hosts tr[data-host="cp01"]').waitFor();

  const fresh = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const p = watch(await fresh.newPage());
  await p.goto(`${BASE}/ui/#/hosts`);
  assert.equal(await p.locator("#nav").isVisible(), false, "no navigation before sign-in");
  await p.locator('input[name="token"]').fill("not-a-token");
  await p.getByRole("button", { name: "Sign in" }).click();
  await p.locator("#signin-error", { hasText: "refused" }).waitFor();
  await p.locator('input[name="token"]').fill(API_TOKEN);
  await p.getByRole("button", { name: "Sign in" }).click();
  await p.locator('#hosts tr[data-host="cp01"]').waitFor();
  assert.match(p.url(), /#\/hosts$/, "the deep link was kept");
  assert.equal(await p.title(), "Hosts · infrad");
  await fresh.close();

  await page.getByRole("button", { name: "Sign out" }).click();
  await page.locator("#signin-form").waitFor();
  assert.equal(await page.locator("#nav").isVisible(), false, "sign-out hides the navigation");
  await second.locator("#signin-form").waitFor({ timeout: 5000 }); // the other tab signed out too
  await second.close();
});

// The forms and buttons at a phone's width, where each table row is a block.
test("at a phone's width: add, edit and delete a host; a record; a token; filter the log", async () => {
  const ctx = await newContext({ width: 390, height: 844 });
  const p = watch(await ctx.newPage());
  await p.goto(`${BASE}/ui/#/hosts`);
  const form = p.locator("#add-host form");
  await fill(form, { name: "phone1", ip: "10.77.0.90" });
  await form.getByRole("button", { name: "Add host" }).click();
  const row = p.locator('#hosts tr[data-host="phone1"]');
  await row.waitFor();
  await row.getByRole("button", { name: "Edit" }).click();
  await fill(p.locator("#hosts form"), { role: "kiosk" });
  await p.locator("#hosts form").getByRole("button", { name: "Save" }).click();
  await p.locator('#hosts tr[data-host="phone1"] td', { hasText: "kiosk" }).waitFor();
  assert.equal((await call("GET", "/api/v1/hosts/phone1")).body.role, "kiosk");
  await p.locator('#hosts tr[data-host="phone1"]').getByRole("button", { name: "Delete" }).click();
  await p.locator('#hosts tr[data-host="phone1"]').waitFor({ state: "detached" });
  assert.equal((await call("GET", "/api/v1/hosts/phone1")).status, 404);

  await p.goto(`${BASE}/ui/#/dns`);
  const rec = p.locator("#add-record form");
  await fill(rec, { name: "phone-rec", type: "TXT", value: "hello", ttl: "1h" });
  await rec.getByRole("button", { name: "Add record" }).click();
  const recRow = p.locator("#records tr", { hasText: "phone-rec" });
  await recRow.waitFor();
  assert.match(await recRow.textContent(), /1 hour/);
  await recRow.getByRole("button", { name: "Delete" }).click();
  await recRow.waitFor({ state: "detached" });

  await p.goto(`${BASE}/ui/#/tokens`);
  const tok = p.locator("#add-token form");
  await fill(tok, { name: "pocket" });
  await tok.getByRole("button", { name: "Create token" }).click();
  await p.locator('#tokens tr[data-token="pocket"]').getByRole("button", { name: "Revoke" }).click();
  await p.locator('#tokens tr[data-token="pocket"]').waitFor({ state: "detached" });

  await p.goto(`${BASE}/ui/#/changes`);
  await p.locator("#changes tbody tr").first().waitFor();
  await filterChanges(p, { object: "pocket" }, "token pocket");
  await p.locator("#changes tbody tr", { hasText: "token revoked" }).waitFor();
  await shot(p, "changes-phone-filtered");
  await ctx.close();
});

test("rotate the data directory's token: the old one and the logged link stop working", async () => {
  const ctx = await newContext({ width: 1400, height: 900 });
  const p = watch(await ctx.newPage());
  await p.goto(`${BASE}/ui/#/tokens`);
  await p.locator('#tokens tr[data-token="api-token"]').getByRole("button", { name: "Rotate" }).click();
  await p.locator("#token-secret").waitFor();
  const fresh = (await p.locator("#token-secret").textContent()).trim();
  assert.match(fresh, /^[0-9a-f]{64}$/);
  assert.equal((await call("GET", "/api/v1/hosts", null, API_TOKEN)).status, 401, "the old token is refused");
  assert.equal((await call("GET", "/api/v1/hosts", null, fresh)).status, 200);
  await p.goto(`${BASE}/ui/#/hosts`);
  await p.locator('#hosts tr[data-host="cp01"]').waitFor(); // this browser signed in with it goes on
  API_TOKEN = fresh;
  const other = await browser.newContext();
  const q = watch(await other.newPage());
  await q.goto(SIGNIN_URL);
  await q.locator("#signin-error", { hasText: "refused" }).waitFor(); // the logged link is dead
  await other.close();
  await ctx.close();
});

// Every page at a desktop's and a phone's width: nothing wider than the screen (no
// panning to reach Edit or Delete), the header's Sign out on screen, a title of its
// own, and no serious or critical finding of axe-core.
for (const [label, viewport] of [["desktop", { width: 1400, height: 900 }], ["phone", { width: 390, height: 844 }]]) {
  test(`every page at ${label} width: fits, titled, accessible`, async () => {
    const ctx = await newContext(viewport);
    const p = watch(await ctx.newPage());
    const titles = new Set();
    for (const name of PAGES) {
      await p.goto(`${BASE}/ui/#/${name}${name === "search" ? "?q=lab" : ""}`);
      await p.locator("main h1").first().waitFor();
      await p.waitForLoadState("networkidle");
      titles.add(await p.title());
      const wide = await p.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(wide <= viewport.width + 1, `${name}: the page is ${wide}px wide on a ${viewport.width}px screen`);
      const broken = await p.evaluate(() => {
        const bad = [];
        if (document.querySelector("tbody tbody, table table")) bad.push("a table inside a table");
        for (const t of document.querySelectorAll("table")) {
          const heads = t.querySelectorAll("thead th").length;
          for (const tr of t.querySelectorAll(":scope > tbody > tr")) {
            const cells = [...tr.children].reduce((n, td) => n + (Number(td.getAttribute("colspan")) || 1), 0);
            if (heads && cells !== heads) bad.push(`${t.id || "a table"}: a row of ${cells} cells under ${heads} headings`);
          }
        }
        return bad;
      });
      assert.deepEqual(broken, [], `${name}: tables`);
      const out = await p.getByRole("button", { name: "Sign out" }).boundingBox();
      assert.ok(out && out.x >= 0 && out.x + out.width <= viewport.width, `${name}: Sign out is off screen`);
      await p.addScriptTag({ path: AXE });
      const found = await p.evaluate(async () => (await window.axe.run(document, { resultTypes: ["violations"] })).violations
        .filter((v) => v.impact === "serious" || v.impact === "critical")
        .map((v) => `${v.id}: ${v.help} (${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join("; ")})`));
      assert.deepEqual(found, [], `${name} at ${label} width`);
      await shot(p, `${name}-${label}`);
    }
    assert.equal(titles.size, PAGES.length, "each page has a title of its own");
    await ctx.close();
  });
}
