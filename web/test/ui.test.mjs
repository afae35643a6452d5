// The UI as a person uses it: Playwright driving Debian's Chromium against a running
// infrad. The Go test TestUI (cmd/infrad) starts infrad and a DHCP client's namespace,
// then runs this with node --test and:
//   SIGNIN_URL  the sign-in link infrad logged
//   LEASE_CMD   a JSON array: the command that makes a DHCP client take a lease
//   SHOTS       where screenshots go
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chromium } from "playwright-core";

const { SIGNIN_URL, LEASE_CMD, SHOTS } = process.env;
let browser, page;

before(async () => {
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--no-first-run", "--disable-sync"],
  });
  page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
});
after(async () => { await browser?.close(); });

const shot = (name) => page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });

test("sign in with the logged link and see every service ready", async () => {
  await page.goto(SIGNIN_URL);
  for (const name of ["ntp", "dns", "dhcp", "ca", "api"]) {
    await page.locator(`#services tr[data-service="${name}"] .badge.ready`).waitFor({ timeout: 15000 });
  }
  assert.match(page.url(), /#\/dashboard$/, "the token is taken out of the address bar");
  const box = page.locator('#cluster tr[data-node="infrad"]');
  await box.waitFor();
  assert.match(await box.textContent(), /leader/, "one box leads its cluster of one");
  assert.equal(await page.locator("#cluster h2").textContent(), "One box");
  await shot("dashboard");
});

// A cluster's status as GET /api/v1/cluster gives it (pkg/cluster.Status): node2 cut
// off, node1 left without a majority. This box serves one, so the answer is replayed.
test("a cluster's dashboard shows each node, the witness and a lost quorum", async () => {
  const now = new Date().toISOString();
  const status = {
    node: "node1", leader: "", quorum: false, nodes: [
      { name: "node1", address: "10.78.0.1:7443", witness: false, voter: true, state: "follower", last_contact: now, applied: 812, lag: 0 },
      { name: "node2", address: "10.78.0.2:7443", witness: false, voter: true, state: "unreachable", applied: 0, lag: 0, error: "dial tcp 10.78.0.2:7443: i/o timeout" },
      { name: "pi", address: "10.78.0.3:7443", witness: true, voter: true, state: "candidate", last_contact: now, applied: 810, lag: 2 },
    ],
  };
  await page.route("**/api/v1/cluster", (route) => route.fulfill({ json: status }));
  try {
    await page.goto(SIGNIN_URL.replace(/#.*/, "#/dashboard"));
    await page.locator('#cluster tr[data-node="pi"]').waitFor();
    assert.equal(await page.locator("#cluster h2").textContent(), "Cluster · leader none known");
    assert.match(await page.locator("#cluster").textContent(), /no quorum\s*node1 cannot reach a majority/);
    assert.match(await page.locator('#cluster tr[data-node="pi"]').textContent(), /witness.*candidate.*810.*2$/);
    assert.equal(await page.locator('#cluster tr[data-node="node2"] .badge.bad').textContent(), "unreachable");
    assert.match(await page.locator('#cluster tr[data-node="node2"]').textContent(), /i\/o timeout.*never/, "why it is unreachable, and no contact");
    await shot("dashboard-cluster-no-quorum");
  } finally {
    await page.unroute("**/api/v1/cluster");
  }
});

test("add a host and see it in the list", async () => {
  await page.goto(SIGNIN_URL.replace(/#.*/, "#/hosts"));
  const form = page.locator("#add-host form");
  await form.locator('input[name="name"]').fill("web01");
  await form.locator('input[name="ip"]').fill("10.77.0.30");
  await form.locator('input[name="mac"]').fill("52:54:00:77:00:30");
  await form.locator('button[type="submit"]').click();
  await page.locator('#hosts tr[data-host="web01"]').waitFor();
  assert.equal(await page.locator('#hosts tr[data-host="web01"] td').nth(1).textContent(), "10.77.0.30");
});

test("a duplicate IP is refused, the error beside the field", async () => {
  const form = page.locator("#add-host form");
  await form.locator('input[name="name"]').fill("web02");
  await form.locator('input[name="ip"]').fill("10.77.0.30");
  await form.locator('button[type="submit"]').click();
  const err = form.locator('[data-error-for="ip"]');
  await err.filter({ hasText: "web01" }).waitFor();
  assert.match(await err.textContent(), /10\.77\.0\.30.*web01/);
  assert.equal(await page.locator('#hosts tr[data-host="web02"]').count(), 0);
  await shot("hosts-duplicate-ip");
});

test("file-owned hosts are read-only", async () => {
  const row = page.locator('#hosts tr[data-host="cp01"]');
  assert.match(await row.textContent(), /site file/);
  assert.equal(await row.locator("button").count(), 0);
});

test("a lease appears on the live leases page", async () => {
  await page.goto(SIGNIN_URL.replace(/#.*/, "#/leases"));
  await page.locator("#lease-filter").waitFor();
  const [cmd, ...args] = JSON.parse(LEASE_CMD);
  execFileSync(cmd, args, { stdio: "ignore", timeout: 30000 });
  await page.locator('tr[data-lease="10.77.0.100"]').waitFor({ timeout: 15000 });
  assert.match(await page.locator('tr[data-lease="10.77.0.100"]').textContent(), /52:54:00:77:00:99/);
  await shot("leases");
});

test("subnets are drawn over their address space", async () => {
  await page.goto(SIGNIN_URL.replace(/#.*/, "#/subnets"));
  const lab = page.locator('[data-subnet="lab"]');
  await lab.waitFor();
  assert.equal(await lab.locator(".bar i").count(), 256, "a /24 is 256 cells");
  assert.ok(await lab.locator(".bar i.host").count() >= 2, "the hosts are drawn");
  assert.equal(await lab.locator(".bar i.lease").count(), 1, "the lease is drawn");
  await shot("subnets");
});
