"""The embedded cloud's compute API on a real loopback port.

``EmbeddedCloudTestCase`` reaches Nova's API through wsgi-intercept, which
only the ``requests`` calls of this process can use.  ``LoopbackComputeAPI``
serves the same WSGI application (``osapi_compute`` of Nova's
api-paste.ini, loaded the way OSAPIFixture loads it) on
``127.0.0.1:<free port>`` with a real HTTP server in a background thread, so
that clients that only speak HTTP (openstacksdk, another process) can use
the cloud.  Use it inside an embedded cloud's test, after its setUp: the
OSAPIFixture stubs Nova's keystonemiddleware and builds the request context
from identity headers.

Authentication without Keystone: ``TokenAuth`` plays keystonemiddleware's
part in front of the application.  It maps an X-Auth-Token to an
identity (user, project, roles), strips whatever identity headers the client
sent, and adds those of the token, both the ones keystonemiddleware sets
(X-User-Id, X-Project-Id, X-Roles, ...) and the ones OSAPIFixture's stub
reads (X-Auth-User, X-Auth-Project-Id).  A client authenticates as with an
admin token: openstacksdk's ``auth_type: admin_token`` (keystoneauth's
token_endpoint plugin) with ``token`` and ``endpoint``; ``clouds_yaml()``
writes such an entry.  The admin token is random, new for each
``LoopbackComputeAPI``: any local user can reach a loopback port, and a
token written in this file would make them admin of the cloud.
"""

import json
import os
import secrets
import socketserver
import threading
from wsgiref import simple_server

import fixtures
import yaml

#: The admin's identity, as OSAPIFixture's admin_api.
ADMIN_IDENTITY = ('admin', '6f70656e737461636b20342065766572',
                  ('reader', 'member', 'admin'))

# The version documents need no identity (outside keystonemiddleware's
# pipelines in api-paste.ini).
_PUBLIC_PATHS = frozenset(('', '/', '/v2', '/v2.1'))


class TokenAuth:
    """WSGI middleware: X-Auth-Token -> identity headers, else 401."""

    _IDENTITY_HEADERS = (
        'HTTP_X_USER_ID', 'HTTP_X_USER', 'HTTP_X_USER_NAME',
        'HTTP_X_PROJECT_ID', 'HTTP_X_TENANT_ID', 'HTTP_X_TENANT',
        'HTTP_X_PROJECT_NAME', 'HTTP_X_ROLES', 'HTTP_X_ROLE',
        'HTTP_X_IDENTITY_STATUS', 'HTTP_X_AUTH_USER',
        'HTTP_X_AUTH_PROJECT_ID', 'HTTP_X_SERVICE_CATALOG')

    def __init__(self, app, tokens):
        self.app = app
        self.tokens = dict(tokens)
        #: requests seen, authenticated or not
        self.requests = 0

    def __call__(self, environ, start_response):
        self.requests += 1
        for key in self._IDENTITY_HEADERS:
            environ.pop(key, None)
        identity = self.tokens.get(environ.get('HTTP_X_AUTH_TOKEN'))
        if identity is None:
            if environ.get('PATH_INFO', '') in _PUBLIC_PATHS:
                return self.app(environ, start_response)
            body = json.dumps({'error': {
                'code': 401, 'title': 'Unauthorized',
                'message': 'The request you have made requires '
                           'authentication.'}}).encode()
            start_response('401 Unauthorized', [
                ('Content-Type', 'application/json'),
                ('Content-Length', str(len(body))),
                ('WWW-Authenticate', 'Keystone uri="none"')])
            return [body]
        user, project, roles = identity
        environ.update({
            'HTTP_X_USER_ID': user, 'HTTP_X_USER': user,
            'HTTP_X_USER_NAME': user, 'HTTP_X_PROJECT_ID': project,
            'HTTP_X_TENANT_ID': project, 'HTTP_X_ROLES': ','.join(roles),
            'HTTP_X_IDENTITY_STATUS': 'Confirmed',
            # what OSAPIFixture's stub of NovaKeystoneContext reads
            'HTTP_X_AUTH_USER': user, 'HTTP_X_AUTH_PROJECT_ID': project})
        return self.app(environ, start_response)


class _Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True
    # Many short connections: wsgiref speaks HTTP/1.0, one request each.
    request_queue_size = 64


class _Handler(simple_server.WSGIRequestHandler):

    def log_message(self, format, *args):
        # Nova's request_log middleware already logs every request.
        pass


def load_compute_app():
    """Nova's compute API application, as OSAPIFixture loads it."""
    from nova.api import wsgi
    return wsgi.Loader().load_app('osapi_compute')


class LoopbackComputeAPI(fixtures.Fixture):
    """Serve ``app`` (default: Nova's compute API) on 127.0.0.1 at a free
    port until cleanup.  ``endpoint`` is the compute endpoint
    (``http://127.0.0.1:PORT/v2.1``); ``admin_token``, random, authenticates
    as ADMIN_IDENTITY; ``tokens`` maps more X-Auth-Token values to (user,
    project, roles)."""

    def __init__(self, app=None, tokens=None):
        super().__init__()
        self._app = app
        self.admin_token = secrets.token_urlsafe(32)
        self.tokens = {self.admin_token: ADMIN_IDENTITY}
        self.tokens.update(tokens or {})

    def _setUp(self):
        self.auth = TokenAuth(self._app or load_compute_app(), self.tokens)
        self.server = simple_server.make_server(
            '127.0.0.1', 0, self.auth, server_class=_Server,
            handler_class=_Handler)
        self.port = self.server.server_address[1]
        self.url = 'http://127.0.0.1:%d' % self.port
        self.endpoint = self.url + '/v2.1'
        thread = threading.Thread(
            target=self.server.serve_forever, kwargs={'poll_interval': 0.1},
            name='loopback-compute-api-%d' % self.port, daemon=True)
        thread.start()

        def stop():
            self.server.shutdown()
            self.server.server_close()
            thread.join(10)
        self.addCleanup(stop)

    @property
    def requests_served(self):
        return self.auth.requests

    def cloud_config(self, token=None):
        """A clouds.yaml entry for this API, without Keystone: as admin
        unless another ``token`` is given."""
        return {
            'auth_type': 'admin_token',
            'auth': {'endpoint': self.endpoint,
                     'token': token or self.admin_token},
            'compute_endpoint_override': self.endpoint,
            'region_name': 'RegionOne',
        }

    def clouds_yaml(self, path, cloud='embedded', token=None):
        """Write a clouds.yaml with one cloud named ``cloud`` to ``path``
        (for OS_CLIENT_CONFIG_FILE), readable by its owner only: it holds
        the admin token.  Returns ``path``."""
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                          0o600), 'w') as f:
            os.fchmod(f.fileno(), 0o600)
            yaml.safe_dump({'clouds': {cloud: self.cloud_config(token)}}, f,
                           default_flow_style=False)
        return path
