"""A stub of Neutron's API for the real cloud: the one service not real.

Neutron needs its own agents and a dataplane that these machines cannot run
as plain processes, and the guards never depend on networking.  Nova calls
Neutron even for servers booted with ``"networks": "none"`` (ports by
device_id, extensions, networks); with nothing listening, showing a server
fails with HTTP 500.  This answers Nova's reads with empty lists and refuses
every write with 404, so any code path that really needs a port fails
loudly instead of silently.  It checks no token.

    python -m nova_migration_guard.lab.realcloud.neutron_stub --port PORT
"""

import argparse
import http.server
import json
import re
import socketserver

# /v2.0/<collection>[.json]  ->  {"<collection with _ for ->": []}
_COLLECTION = re.compile(r'^/v2\.0/([a-z-]+?)(?:\.json)?/?$')


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = 'neutron-stub'
    protocol_version = 'HTTP/1.1'

    def _reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split('?', 1)[0]
        if path in ('/', ''):
            base = 'http://%s:%d' % self.server.server_address[:2]
            return self._reply(200, {'versions': [{
                'id': 'v2.0', 'status': 'CURRENT',
                'links': [{'rel': 'self', 'href': base + '/v2.0/'}]}]})
        match = _COLLECTION.match(path)
        if match:
            return self._reply(200, {match.group(1).replace('-', '_'): []})
        return self._reply(404, {'NeutronError': {
            'type': 'NotFound', 'message': 'neutron stub: %s' % path,
            'detail': ''}})

    def _refuse(self):
        length = int(self.headers.get('Content-Length') or 0)
        self.rfile.read(length)
        self._reply(404, {'NeutronError': {
            'type': 'NotFound', 'detail': '',
            'message': 'neutron stub: %s %s is not supported'
            % (self.command, self.path)}})

    do_POST = do_PUT = do_DELETE = _refuse

    def log_message(self, fmt, *args):
        print('%s %s' % (self.address_string(), fmt % args), flush=True)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--port', type=int, required=True)
    args = parser.parse_args(argv)
    Server(('127.0.0.1', args.port), Handler).serve_forever()


if __name__ == '__main__':
    main()
