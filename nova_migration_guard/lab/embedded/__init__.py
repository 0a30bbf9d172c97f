"""An embedded, in-process Nova cloud built from Nova's own test fixtures.

``cloud.EmbeddedCloudTestCase`` starts placement, the compute API, conductor,
scheduler and several fake computes in one process. The functional tests and
the ``nova-migration-guard demo`` command both run on it.
"""
