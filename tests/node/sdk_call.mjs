// One call through the official OpenAI Node SDK, for tests/integration/test_sdk_node.py.
//
//   node sdk_call.mjs '<json>'   json: {"base": URL, "key": KEY, "op": OP, "args": {...}, "client": {...}}
//
// Prints one JSON line: {"ok": true, "result": ..., "http": [statuses], "ms": N} or, when the SDK
// raised, {"ok": false, "error": {"class", "status", "code", "type", "param", "body", "message"},
// "partial": [...chunks seen before a stream raised], "http": [...], "ms": N}.
// "http" lists the status of every HTTP request the SDK made (its own retries included), and
// "responses" each one's method, path, status, content type and JSON body.
import OpenAI from 'openai';

const spec = JSON.parse(process.argv[2]);
const http = [];
const responses = [];
const countingFetch = async (url, init) => {
  const res = await fetch(url, init);
  http.push(res.status);
  // what came back, for the OpenAPI check on the Python side (event streams without their body)
  const ctype = res.headers.get('content-type') || '';
  const u = new URL(url);
  responses.push({ method: (init && init.method) || 'GET', path: u.pathname, status: res.status, ctype,
                   body: ctype.startsWith('application/json') ? await res.clone().text() : '' });
  return res;
};
const client = new OpenAI({ baseURL: spec.base, apiKey: spec.key, fetch: countingFetch, ...(spec.client || {}) });
const args = spec.args || {};
const partial = [];
const t0 = Date.now();

async function run() {
  switch (spec.op) {
    case 'create':
      return await client.chat.completions.create(args);
    case 'stream': {
      const stream = await client.chat.completions.create({ ...args, stream: true });
      for await (const chunk of stream) partial.push(chunk);
      return { chunks: partial };
    }
    case 'models.list': {
      const ids = [];
      for await (const m of client.models.list()) ids.push(m.id);
      return { ids };
    }
    case 'models.retrieve':
      return await client.models.retrieve(args.id);
    default:
      throw new Error('unknown op ' + spec.op);
  }
}

function describe(err) {
  return {
    class: err && err.constructor ? err.constructor.name : typeof err,
    status: err.status ?? null,
    code: err.code ?? null,
    type: err.type ?? null,
    param: err.param ?? null,
    body: err.error ?? null,
    message: String(err.message || err),
    retry_after: err.headers && typeof err.headers.get === 'function' ? err.headers.get('retry-after') : null,
    instance_of_api_error: err instanceof OpenAI.APIError,
  };
}

try {
  const result = await run();
  process.stdout.write(JSON.stringify({ ok: true, result, http, responses, ms: Date.now() - t0 }) + '\n');
} catch (err) {
  process.stdout.write(JSON.stringify({ ok: false, error: describe(err), partial, http, responses, ms: Date.now() - t0 }) + '\n');
}
