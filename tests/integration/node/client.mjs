// The Node client of tests/integration/test_https_clients.py.
//
//   node client.mjs BASE_URL COUNT BODY_SIZE
//
// undici's fetch with an EnvHttpProxyAgent: the proxy comes from
// HTTPS_PROXY, the trust from NODE_EXTRA_CA_CERTS, both read from the
// environment as an app would. undici is loaded from $SLUICE_NODE_MODULES
// (where `npm ci` installed package-lock.json), else from ./node_modules.
// COUNT times, one after another: GET BASE_URL/get/<i>, then POST
// BASE_URL/post/<i> with a BODY_SIZE body (byte k is (k * 31 + 7) mod 256).
// Each response is printed as its body followed by "\n@@ <METHOD> <status>\n".

import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const modules = process.env.SLUICE_NODE_MODULES || path.join(here, 'node_modules');
const require = createRequire(path.join(modules, 'noop.js'));
const { fetch, EnvHttpProxyAgent } = require('undici');

const [base, countText, sizeText] = process.argv.slice(2);
const count = Number(countText);
const body = Buffer.alloc(Number(sizeText));
for (let k = 0; k < body.length; k++) body[k] = (k * 31 + 7) & 0xff;

const dispatcher = new EnvHttpProxyAgent();

async function one(method, url, payload) {
  const res = await fetch(url, {
    method,
    body: payload,
    headers: payload ? { 'content-type': 'application/octet-stream' } : {},
    dispatcher,
    signal: AbortSignal.timeout(120000),
  });
  const text = Buffer.from(await res.arrayBuffer());
  process.stdout.write(Buffer.concat([text, Buffer.from(`\n@@ ${method} ${res.status}\n`)]));
}

try {
  for (let i = 0; i < count; i++) {
    await one('GET', `${base}/get/${i}`);
    await one('POST', `${base}/post/${i}`, body);
  }
} finally {
  await dispatcher.close();
}
