// Preloaded into a peer gateway that binds to every interface (`node --import ./bench/loopback-only.mjs ...`,
// bench/peers.py): every TCP listen of the process goes to 127.0.0.1 instead. A listen on a path or an
// existing handle is left as it is. bench/peers.py checks the result with `ss -ltnp` all the same.
import net from 'node:net';

const LOOPBACK = '127.0.0.1';
const listen = net.Server.prototype.listen;

net.Server.prototype.listen = function (...args) {
    const first = args[0];
    if (args.length === 0 || typeof first === 'function') {
        args.unshift({ port: 0, host: LOOPBACK });
    } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
        // listen(port[, host][, backlog][, callback])
        if (args.length === 1 || typeof args[1] === 'string' || args[1] === undefined || args[1] === null) {
            args[1] = LOOPBACK;
        } else {
            args.splice(1, 0, LOOPBACK);
        }
    } else if (first && typeof first === 'object' && first.path === undefined &&
               first.handle === undefined && first._handle === undefined && first.fd === undefined) {
        // listen(options[, callback])
        args[0] = { ...first, host: LOOPBACK, ipv6Only: false };
    }
    return listen.apply(this, args);
};
