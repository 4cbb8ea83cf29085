/**
 * The TypeScript client against a real `pdp serve` (PDP_URL, PDP_KEY: the demo data; started by
 * tests/e2e/test_typescript_client.py), and its failures against small Node servers that answer
 * what a broken proxy or a hung server would (R-DEC-2: every failure is a denial).
 */

import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, test } from "node:test";

import {
  PdpBadResponse,
  PdpClient,
  PdpError,
  PdpResponseError,
  PdpTimeout,
  PdpUnavailable,
} from "../src/index.js";

const URL = process.env["PDP_URL"];
const KEY = process.env["PDP_KEY"] ?? "";
const live = URL ? false : "PDP_URL is not set (no pdp server to ask)";

describe("against a real pdp serve", { skip: live }, () => {
  const pdp = new PdpClient(URL ?? "", KEY, { timeoutMs: 5000 });

  test("an allowed check carries its grants (R-DEC-1, R-DEC-3)", async () => {
    const d = await pdp.check({ user: "bruno.petit", service: "cdap", role: "T18", caf: "931" });
    assert.equal(d.allowed, true);
    assert.equal(d.reason.code, "ALLOWED");
    assert.deepEqual(
      d.grants.map((g) => g.group),
      ["CCAS-INSTRUCTION", "CCAS"],
    );
    assert.match(d.decision_id ?? "", /^[0-9a-f]{32}$/);
    assert.equal(d.revision, 1);
    assert.equal(pdp.latestRevision, 1);
  });

  test("a denial by the rules gives its reason code (R-DEC-3)", async () => {
    const d = await pdp.check({ user: "chloe.roux", service: "cdap", role: "T18" });
    assert.equal(d.allowed, false);
    assert.equal(d.reason.code, "ROLE_NOT_GRANTED");
    assert.ok(d.decision_id);
  });

  test("a batch answers in order; a refused item is denied with its code", async () => {
    const answers = await pdp.checkBatch([
      { user: "bruno.petit", service: "cdap", role: "T18" },
      { user: "bruno.petit", service: "cdap", role: "T99" },
      { user: "chloe.roux", service: "cdap", role: "T18" },
    ]);
    assert.deepEqual(
      answers.map((d) => [d.allowed, d.reason.code]),
      [
        [true, "ALLOWED"],
        [false, "UNKNOWN_ROLE"],
        [false, "ROLE_NOT_GRANTED"],
      ],
    );
  });

  test("a batch larger than batchMax is sent in several requests, answered in order", async () => {
    const small = new PdpClient(URL ?? "", KEY, { batchMax: 2 });
    const users = ["bruno.petit", "chloe.roux", "bruno.petit", "chloe.roux", "bruno.petit"];
    const answers = await small.checkBatch(users.map((user) => ({ user, service: "cdap", role: "T18" })));
    assert.deepEqual(
      answers.map((d) => d.allowed),
      [true, false, true, false, true],
    );
  });

  test("the permissions listing of a user (R-DEC-4)", async () => {
    const listing = await pdp.permissions("bruno.petit", { minRevision: 1 });
    assert.equal(listing.error, null);
    assert.ok(listing.services.some((s) => s.service === "cdap" && s.roles.includes("T18")));
  });

  test("the administrative check (R-ADM-7)", async () => {
    const d = await pdp.adminCheck("bruno.petit", "group.edit", "group:mairie-montreuil/CCAS");
    assert.equal(typeof d.allowed, "boolean");
    assert.ok(d.decision_id);
  });

  test("a wrong key denies with the server's code; strict mode throws it", async () => {
    const wrong = new PdpClient(URL ?? "", "not-a-key");
    const d = await wrong.check({ user: "bruno.petit", service: "cdap" });
    assert.deepEqual([d.allowed, d.reason.code], [false, "INVALID_API_KEY"]);
    const listing = await wrong.permissions("bruno.petit");
    assert.deepEqual([listing.services, listing.error?.code], [[], "INVALID_API_KEY"]);
    const strict = new PdpClient(URL ?? "", "not-a-key", { strict: true });
    await assert.rejects(strict.check({ user: "bruno.petit", service: "cdap" }), (e: unknown) => {
      assert.ok(e instanceof PdpResponseError);
      assert.deepEqual([e.code, e.status], ["INVALID_API_KEY", 401]);
      return true;
    });
  });

  test("a request the server refuses is denied with its code", async () => {
    const d = await pdp.check({ user: "bruno.petit", service: "cdap", at: "2026-02-30" });
    assert.deepEqual([d.allowed, d.reason.code], [false, "VALIDATION_ERROR"]);
  });
});

// -- Failures: every one a denial, each asked once -------------------------------------------

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const servers: Array<ReturnType<typeof createServer>> = [];
after(() => {
  for (const s of servers) s.closeAllConnections(), s.close();
});

/** A local server answering with `handler`; its URL and the count of requests it received. */
async function fake(handler: Handler): Promise<{ url: string; asked: () => number }> {
  let count = 0;
  const server = createServer((req, res) => {
    count += 1;
    req.resume();
    handler(req, res);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, asked: () => count };
}

function answer(status: number, type: string, body: string): Handler {
  return (_req, res) => {
    res.writeHead(status, { "Content-Type": type });
    res.end(body);
  };
}

const CHECK = { user: "bruno.petit", service: "cdap" } as const;
const GOOD = {
  allowed: true,
  reason: { code: "ALLOWED", message: "Accès autorisé." },
  grants: [],
  decision_id: "0".repeat(32),
  revision: 3,
  at: "2026-12-02",
};

describe("failing closed (R-DEC-2)", () => {
  test("nothing listening: PDP_UNAVAILABLE, at once", async () => {
    const { url } = await fake(answer(200, "application/json", "{}"));
    const closed = servers.pop();
    await new Promise((resolve) => closed?.close(resolve));
    const started = performance.now();
    const d = await new PdpClient(url, "k").check(CHECK);
    assert.deepEqual([d.allowed, d.reason.code], [false, "PDP_UNAVAILABLE"]);
    assert.match(d.reason.message, /injoignable/);
    assert.ok(performance.now() - started < 1000);
    const strict = new PdpClient(url, "k", { strict: true });
    await assert.rejects(strict.check(CHECK), PdpUnavailable);
  });

  test("no answer within the timeout: PDP_TIMEOUT, asked once (no retry once sent)", async () => {
    const hung = await fake(() => undefined); // reads the request, never answers
    const started = performance.now();
    const pdp = new PdpClient(hung.url, "k", { timeoutMs: 200 });
    const [d] = await pdp.checkBatch([CHECK, CHECK]);
    const took = performance.now() - started;
    assert.deepEqual([d?.allowed, d?.reason.code], [false, "PDP_TIMEOUT"]);
    assert.ok(took >= 190 && took < 2000, `took ${took} ms`);
    assert.equal(hung.asked(), 1);
    const listing = await pdp.permissions("bruno.petit");
    assert.deepEqual([listing.services, listing.error?.code], [[], "PDP_TIMEOUT"]);
    await assert.rejects(
      new PdpClient(hung.url, "k", { timeoutMs: 100, strict: true }).check(CHECK),
      PdpTimeout,
    );
  });

  test("a body cut short after the headers: PDP_TIMEOUT", async () => {
    const slow = await fake((_req, res) => {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.write('{"allowed": true,');
    });
    const d = await new PdpClient(slow.url, "k", { timeoutMs: 200 }).check(CHECK);
    assert.deepEqual([d.allowed, d.reason.code], [false, "PDP_TIMEOUT"]);
  });

  test("an error answer is asked once and denied with its code", async () => {
    const down = await fake(
      answer(503, "application/json", '{"error":{"code":"POLICY_STALE","message":"Politique périmée."}}'),
    );
    const d = await new PdpClient(down.url, "k").check(CHECK);
    assert.deepEqual([d.allowed, d.reason.code, d.reason.message], [false, "POLICY_STALE", "Politique périmée."]);
    assert.equal(down.asked(), 1);
  });

  const unreadable: Array<[string, Handler]> = [
    ["a proxy's HTML page", answer(502, "text/html", "<h1>Bad gateway</h1>")],
    ["HTML with 200", answer(200, "text/html", "<h1>ok</h1>")],
    ["JSON cut short", answer(200, "application/json", '{"allowed": tr')],
    ['"allowed": "true" (a string)', answer(200, "application/json", JSON.stringify({ ...GOOD, allowed: "true" }))],
    ["allowed missing", answer(200, "application/json", JSON.stringify({ ...GOOD, allowed: undefined }))],
    ["a revision that is not an integer", answer(200, "application/json", JSON.stringify({ ...GOOD, revision: "3" }))],
    ["an error without a code", answer(500, "application/json", '{"error":{"message":"x"}}')],
    ["a redirect", answer(302, "text/plain", "")],
  ];
  for (const [what, handler] of unreadable) {
    test(`${what}: PDP_BAD_RESPONSE`, async () => {
      const odd = await fake(handler);
      const d = await new PdpClient(odd.url, "k").check(CHECK);
      assert.deepEqual([d.allowed, d.reason.code], [false, "PDP_BAD_RESPONSE"]);
      await assert.rejects(new PdpClient(odd.url, "k", { strict: true }).check(CHECK), PdpBadResponse);
    });
  }

  test("a batch whose results do not match the checks denies them all", async () => {
    const short = await fake(answer(200, "application/json", JSON.stringify({ results: [GOOD] })));
    const answers = await new PdpClient(short.url, "k").checkBatch([CHECK, CHECK]);
    assert.deepEqual(
      answers.map((d) => [d.allowed, d.reason.code]),
      [
        [false, "PDP_BAD_RESPONSE"],
        [false, "PDP_BAD_RESPONSE"],
      ],
    );
  });

  test("a well-formed answer is read, its key sent, its revision kept", async () => {
    let seen: IncomingMessage | undefined;
    const ok = await fake((req, res) => {
      seen = req;
      answer(200, "application/json; charset=utf-8", JSON.stringify(GOOD))(req, res);
    });
    const pdp = new PdpClient(`${ok.url}/`, "the-key");
    const d = await pdp.check(CHECK, { minRevision: 2 });
    assert.deepEqual([d.allowed, d.revision, pdp.latestRevision], [true, 3, 3]);
    assert.equal(seen?.url, "/v1/check");
    assert.equal(seen?.headers["x-api-key"], "the-key");
  });

  test("anything unforeseen still denies: PDP_CLIENT_ERROR", async () => {
    // A fetch (a caller's polyfill) answering an object without headers: a TypeError in the client.
    const odd = (async () => ({ status: 200, headers: null, text: async () => "{}" })) as unknown;
    const pdp = new PdpClient("http://127.0.0.1:9", "k", { fetch: odd as typeof fetch });
    const d = await pdp.check(CHECK);
    assert.deepEqual([d.allowed, d.reason.code], [false, "PDP_CLIENT_ERROR"]);
    const listing = await pdp.permissions("bruno.petit");
    assert.equal(listing.error?.code, "PDP_CLIENT_ERROR");
    const strict = new PdpClient("http://127.0.0.1:9", "k", { fetch: odd as typeof fetch, strict: true });
    await assert.rejects(strict.check(CHECK), (e: unknown) => e instanceof PdpError && e.code === "PDP_CLIENT_ERROR");
  });

  test("bad options are refused at construction", () => {
    assert.throws(() => new PdpClient("http://x", "k", { timeoutMs: 0 }), RangeError);
    assert.throws(() => new PdpClient("http://x", "k", { batchMax: 0 }), RangeError);
  });
});
