"""Nova's in-process API fixture looks for site-packages/etc/nova/
api-paste.ini; the wheel installs etc/ under the virtualenv's prefix.
Link it where the tests look (idempotent)."""

import os
import sys
import sysconfig

site = sysconfig.get_paths()['purelib']
link = os.path.join(site, 'etc')
target = os.path.join(sys.prefix, 'etc')
if not os.path.exists(os.path.join(link, 'nova', 'api-paste.ini')):
    if os.path.islink(link):
        os.unlink(link)
    os.symlink(os.path.relpath(target, site), link)
print('nova etc: %s -> %s' % (link, os.path.realpath(link)))
