"""Read what the audit needs from a cloud's compute API, through openstacksdk.

Plain GETs on the compute endpoint at one microversion, all projects, page
by page; the JSON bodies are kept exactly as the API returns them, which is
what ``findings`` takes.  Needs an admin (listing every project's servers,
server groups and migrations, and the hypervisors).
"""

import collections
import datetime
import email.utils

#: 2.80 (Nova 21, Ussuri, and later): migrations with uuid and paging
#: (2.59), hypervisors by uuid (2.53), server groups with policy/rules
#: (2.64).
MICROVERSION = '2.80'

Inventory = collections.namedtuple(
    'Inventory', 'servers server_groups migrations hypervisors now')


class CollectError(Exception):
    """The API answered with an error; the message is one line."""


def connect(cloud):
    """An openstacksdk Connection to ``cloud`` (clouds.yaml entry; None: the
    OS_* environment).  Imported here: only this command needs the SDK."""
    import openstack
    return openstack.connect(cloud=cloud)


def _get(compute, path, params):
    response = compute.get(path, params=params, microversion=MICROVERSION,
                           raise_exc=False)
    if response.status_code >= 400:
        # Nova's errors: {"forbidden": {"code": 403, "message": "..."}}
        try:
            detail = next(iter(response.json().values()))['message']
        except Exception:   # noqa: any other error page
            detail = (response.text.strip().splitlines() or ['-'])[0]
        raise CollectError('GET %s: HTTP %s: %s' % (
            path, response.status_code, detail))
    return response


def _server_time(response):
    """The API's clock (the Date header), so that ages do not depend on
    this machine's clock; None without one."""
    date = response.headers.get('Date')
    try:
        return email.utils.parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        return None


def _paged(compute, path, key, marker_key, params):
    """Every item of a marker-paged list (``<key>_links`` rel=next)."""
    items, params, response = [], dict(params), None
    while True:
        response = _get(compute, path, params)
        body = response.json()
        page = body.get(key) or []
        items.extend(page)
        more = any(link.get('rel') == 'next'
                   for link in body.get(key + '_links') or ())
        if not (more and page):
            return items, response
        params['marker'] = page[-1][marker_key]


def _offset_paged(compute, path, key, params):
    """Every item of an offset-paged list (server groups have no links)."""
    items = []
    while True:
        page = _get(compute, path, dict(params, offset=len(items))).json().get(
            key) or []
        if not page:
            return items
        items.extend(page)


def collect(conn, progress=lambda text: None):
    """An Inventory of the cloud behind ``conn``."""
    compute = conn.compute
    progress('listing servers (all projects)')
    servers, _ = _paged(compute, '/servers/detail', 'servers', 'id',
                        {'all_tenants': 'True'})
    progress('listing server groups (all projects)')
    groups = _offset_paged(compute, '/os-server-groups', 'server_groups',
                           {'all_projects': 'True'})
    progress('listing migrations')
    migrations, last = _paged(compute, '/os-migrations', 'migrations',
                              'uuid', {})
    progress('listing hypervisors')
    hypervisors, _ = _paged(compute, '/os-hypervisors/detail',
                            'hypervisors', 'id', {})
    now = (_server_time(last) or
           datetime.datetime.now(datetime.timezone.utc))
    return Inventory(servers, groups, migrations, hypervisors, now)
