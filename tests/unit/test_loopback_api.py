"""The loopback compute API's authentication (lab/embedded/http.py), in front
of a plain WSGI application standing in for Nova's (what is stubbed, and
why: the identity check under test runs before Nova's application, which
the functional tests serve; tests/functional/test_audit.py)."""

import json
import os
import urllib.error
import urllib.request

import fixtures
import testtools
import yaml

from nova_migration_guard.lab.embedded import http


def _echo_identity(environ, start_response):
    body = json.dumps({'user': environ.get('HTTP_X_USER_ID'),
                       'roles': environ.get('HTTP_X_ROLES')}).encode()
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [body]


class AdminTokenTestCase(testtools.TestCase):

    def _get(self, api, token):
        request = urllib.request.Request(api.endpoint + '/servers',
                                         headers={'X-Auth-Token': token})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, None

    def test_admin_token_is_random_per_run(self):
        first = self.useFixture(http.LoopbackComputeAPI(app=_echo_identity))
        # The fixed token of earlier releases opens nothing.
        self.assertEqual(401, self._get(first, 'embedded-cloud-admin')[0])
        second = self.useFixture(http.LoopbackComputeAPI(app=_echo_identity))
        self.assertNotEqual(first.admin_token, second.admin_token)
        self.assertGreaterEqual(len(first.admin_token), 32)
        self.assertEqual((200, {'user': 'admin',
                                'roles': 'reader,member,admin'}),
                         self._get(first, first.admin_token))
        # Nor does another run's token.
        self.assertEqual(401, self._get(first, second.admin_token)[0])

    def test_clouds_yaml_carries_this_runs_token(self):
        api = self.useFixture(http.LoopbackComputeAPI(app=_echo_identity))
        path = api.clouds_yaml(os.path.join(
            self.useFixture(fixtures.TempDir()).path, 'clouds.yaml'))
        with open(path) as f:
            cloud = yaml.safe_load(f)['clouds']['embedded']
        self.assertEqual(api.admin_token, cloud['auth']['token'])
        self.assertEqual(0o600, os.stat(path).st_mode & 0o777)
        self.assertTrue(api.endpoint.startswith('http://127.0.0.1:'))
