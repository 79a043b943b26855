// Fast fake OpenAI-compatible upstream for benchmarks (node http, keep-alive, loopback only).
// Answers POST .../chat/completions with one fixed chat.completion JSON body and GET .../models with a model list.
// Usage: node bench/fake-upstream.mjs [--port N] [--host 127.0.0.1] [--delay-ms N]
// Prints one line `READY <port>` on stdout once listening; SIGTERM/SIGINT stop it.
import http from 'node:http';
import net from 'node:net';

function parseArgs(argv) {
    const opts = { port: 0, host: '127.0.0.1', delayMs: 0 };
    for (let i = 0; i < argv.length; i++) {
        let [key, val] = argv[i].split(/=(.*)/s, 2);
        if (val === undefined && ['--port', '--host', '--delay-ms'].includes(key)) val = argv[++i];
        if (key === '--port') opts.port = Number(val);
        else if (key === '--host') opts.host = String(val);
        else if (key === '--delay-ms') opts.delayMs = Number(val);
        else if (key === '--help' || key === '-h') {
            process.stderr.write('usage: fake-upstream.mjs [--port N] [--host 127.0.0.1] [--delay-ms N]\n');
            process.exit(0);
        } else {
            process.stderr.write(`unknown argument ${argv[i]}\n`);
            process.exit(2);
        }
    }
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
        process.stderr.write('bad --port\n');
        process.exit(2);
    }
    return opts;
}

// Refuse anything that is not a loopback address.
function loopbackHost(host) {
    let h = host.trim();
    if (h.toLowerCase() === 'localhost') return '127.0.0.1';
    if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
    const v = net.isIP(h);
    const ok = (v === 4 && h.split('.')[0] === '127') ||
        (v === 6 && /^(0{0,4}:){2,7}0{0,3}1$|^::1$/i.test(h));
    if (!ok) {
        process.stderr.write(`refusing non-loopback host ${JSON.stringify(host)}\n`);
        process.exit(2);
    }
    return h;
}

const opts = parseArgs(process.argv.slice(2));
const host = loopbackHost(opts.host);

const CHAT = Buffer.from(JSON.stringify({
    id: 'chatcmpl-fake-bench',
    object: 'chat.completion',
    created: 1700000000,
    model: 'gpt-4o-mini',
    system_fingerprint: 'fp_fake',
    choices: [{
        index: 0,
        message: { role: 'assistant', content: 'fake-upstream bench reply: a fixed answer of moderate length.' },
        logprobs: null,
        finish_reason: 'stop',
    }],
    usage: { prompt_tokens: 12, completion_tokens: 14, total_tokens: 26 },
}));
const MODELS = Buffer.from(JSON.stringify({
    object: 'list',
    data: ['gpt-4o-mini', 'gpt-4o', 'o3-mini', 'gpt-5'].map((id) => (
        { id, object: 'model', created: 1700000000, owned_by: 'fake' })),
}));
const NOT_FOUND = Buffer.from(JSON.stringify({
    error: { message: 'Unknown path', type: 'invalid_request_error', param: null, code: null },
}));

function send(res, status, body) {
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': body.length });
    res.end(body);
}

const server = http.createServer({ keepAlive: true, keepAliveTimeout: 65000, headersTimeout: 66000 }, (req, res) => {
    const path = (req.url || '/').split('?', 1)[0].replace(/\/+$/, '');
    req.on('data', () => {});
    req.on('end', () => {
        let status = 404;
        let body = NOT_FOUND;
        if (req.method === 'POST' && path.endsWith('/chat/completions')) {
            status = 200;
            body = CHAT;
        } else if (req.method === 'GET' && path.endsWith('/models')) {
            status = 200;
            body = MODELS;
        }
        if (opts.delayMs > 0) setTimeout(() => send(res, status, body), opts.delayMs);
        else send(res, status, body);
    });
});
server.keepAliveTimeout = 65000;
server.headersTimeout = 66000;
server.requestTimeout = 0;

server.on('error', (err) => {
    process.stderr.write(`fake-upstream: ${err.message}\n`);
    process.exit(1);
});

server.listen({ host, port: opts.port, backlog: 1024 }, () => {
    process.stdout.write(`READY ${server.address().port}\n`);
});

function stop() {
    server.close(() => process.exit(0));
    if (server.closeAllConnections) server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
