// The official Node client (faktory_worker_node, npm "faktory-worker") against a Faktory
// server, for tests/test_interop_node.py.  Usage: node node_client.js MODE QUEUE [COUNT]
//   push QUEUE N  push N "Add" jobs one by one and N more with pushBulk, as the client
//                 builds them (its defaults: priority 5, retry 25); print {"jids": [...]}
//   work QUEUE N  work QUEUE (concurrency 5) until N "Add" jobs ran and one "Boom" job
//                 failed (or 20 s passed), stop gracefully; print what ran
// FAKTORY_URL names the server.  Output: one line of JSON on stdout.
"use strict";
const faktory = require("faktory-worker");

const [mode, queue, count] = process.argv.slice(2);
const url = process.env.FAKTORY_URL;
const n = Number(count || 0);

async function push() {
  const client = await faktory.connect({ url });
  const jids = [];
  for (let i = 0; i < n; i++) {
    jids.push(await client.push({ jobtype: "Add", args: [i, 1], queue }));
  }
  const bulk = [];
  for (let i = n; i < 2 * n; i++) {
    const job = client.job("Add", i, 1);
    job.queue = queue;
    bulk.push(job);
    jids.push(job.jid);
  }
  const rejected = await client.pushBulk(bulk);
  await client.close();
  return { jids, rejected };
}

async function work() {
  const ran = [];
  let failed = 0;
  let finish;
  const finished = new Promise((resolve) => { finish = resolve; });
  const check = () => { if (ran.length >= n && failed >= 1) finish(true); };
  faktory.register("Add", async (a, b) => { ran.push([a, b]); check(); });
  faktory.register("Boom", async () => { failed += 1; setImmediate(check); throw new Error("kaboom from node"); });
  const worker = await faktory.work({ url, queues: [queue], concurrency: 5, timeout: 5 });
  const timer = setTimeout(() => finish(false), 20000);
  const complete = await finished;
  clearTimeout(timer);
  await worker.stop();
  return { complete, ran, failed };
}

(mode === "push" ? push() : work())
  .then((result) => { process.stdout.write(JSON.stringify(result) + "\n"); process.exit(0); })
  .catch((err) => { process.stderr.write(String(err && err.stack || err) + "\n"); process.exit(1); });
