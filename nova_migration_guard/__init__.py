"""nova-migration-guard: guards that keep Nova's instance moves safe.

The package plugs into Nova through the hook points that its patch set
(``patches/``) adds, through Nova's scheduler filter options and through
oslo.config.  Each concern lives in one sub-package:

* ``conf``          -- the oslo.config option groups, one module per group
* ``coordination``  -- distributed locks over tooz (etcd, redis, zookeeper,
                       file:// for a single host)
* ``hooks``         -- the extension object Nova's ``nova.plugin_hooks``
                       namespace loads; it dispatches to the guards
* ``patching``      -- applies/reverts the Nova patch series
* ``cmd``           -- the ``nova-migration-guard`` command
"""
