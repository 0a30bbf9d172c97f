"""The live migration records a compute finds at start: which it keeps
(a record is what Nova's post step needs on the source; losing it leaves
the source's volume attachments and VIFs behind)."""

from unittest import mock

from nova import exception
from nova import objects
import testtools

from nova_migration_guard.migration_outcome import recovery

UUID = '5a3f0c1e-9d6b-4a8e-8f21-3c7d2b1e0a94'


class RecordsAtStartTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        objects.register_all()

    def sweep(self, lookup_error):
        manager = mock.Mock(host='src')
        with mock.patch.object(recovery.flight_record, 'recorded',
                               return_value=[UUID]), \
                mock.patch.object(recovery.flight_record,
                                  'remove') as remove, \
                mock.patch.object(recovery.objects.Migration, 'get_by_uuid',
                                  side_effect=lookup_error):
            recovery._source_half_of_moves_completed_elsewhere(
                manager, mock.sentinel.context)
        return remove

    def test_record_of_a_migration_that_is_gone_is_removed(self):
        remove = self.sweep(exception.MigrationNotFound(migration_id=UUID))
        remove.assert_called_once_with(UUID)

    def test_record_kept_when_the_database_cannot_be_asked(self):
        remove = self.sweep(RuntimeError('database unavailable'))
        remove.assert_not_called()
