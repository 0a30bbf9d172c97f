"""Tests against the real-services cloud (nova_migration_guard.lab.realcloud).

``tox -e realcloud`` starts the cloud, runs these tests with
NMG_REALCLOUD_STATE naming its state directory, and stops it.  Without it
the tests skip.  Every Nova service is a separate process; a test class
names the guards it needs (``GUARDS``) and the Nova services are restarted
with them when the running ones differ.  Everything a test asserts comes
through Nova's API (openstacksdk) or from where the guest is.
"""

import os

import testtools

from nova_migration_guard.lab.realcloud import cloud as cloud_mod
from nova_migration_guard.lab.realcloud import races

STATE = os.environ.get('NMG_REALCLOUD_STATE')


class RealCloudTestCase(testtools.TestCase, races.CloudActions):
    """A test on the real cloud; what a user does through the API comes
    from races.CloudActions (whose failures are this test's)."""

    #: [migration_guard] guards the Nova services must run with; None:
    #: whichever they run with (the test starts its own processes).
    GUARDS = ()

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not STATE:
            raise cls.skipException(
                'no real cloud: run through tox -e realcloud '
                '(NMG_REALCLOUD_STATE unset)')
        cls.cloud = cloud_mod.Cloud.load(STATE)
        if (cls.GUARDS is not None and
                list(cls.cloud.state['guards']) != list(cls.GUARDS)):
            cls.cloud.restart_nova(list(cls.GUARDS))

    def setUp(self):
        super().setUp()
        self.conn = self.cloud.connection()
        self.image = self.conn.image.find_image(cloud_mod.IMAGE)
        self.flavor = self.conn.compute.find_flavor(cloud_mod.FLAVOR)
