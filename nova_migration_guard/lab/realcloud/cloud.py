"""The real cloud: its layout on disk, its configuration, start and stop.

Everything lives under one state directory (mode 0700)::

    state.json       ports, generated passwords, the processes by PID
    clouds.yaml      realcloud-admin and realcloud-member (openstacksdk)
    etc/             every service's configuration
    logs/<name>.log  one log per service and per setup step
    mysql/ rabbitmq/ etcd/ keystone/ glance/ nova/<host>/   their data

Ports are ``base_port`` + a fixed offset per service (``PORTS``), all on
127.0.0.1; a taken port refuses the start with one line.  Passwords are
generated per cloud; nothing here is a fixed credential.  The services run
from the Python environment that runs this code (its ``bin``).
"""

import json
import os
import secrets
import shutil
import sys
import time
import urllib.error
import urllib.request

from nova_migration_guard.lab.embedded import processes as embedded_processes
from nova_migration_guard.lab.realcloud import libvirt_computes
from nova_migration_guard.lab.realcloud import processes
from nova_migration_guard import report

CloudError = processes.CloudError

DEFAULT_BASE_PORT = 47100
PORTS = {
    'mariadb': 0, 'rabbitmq': 1, 'epmd': 2, 'rabbitmq-dist': 3,
    'keystone': 4, 'placement': 5, 'glance': 6, 'nova-api': 7,
    'neutron-stub': 8, 'etcd': 9, 'etcd-peer': 10,
}
DATABASES = ('keystone', 'placement', 'glance', 'nova_api', 'nova_cell0',
             'nova')
SERVICE_USERS = ('nova', 'placement', 'glance', 'neutron')
REGION = 'RegionOne'
FLAVOR = 'realcloud.small'
IMAGE = 'realcloud-image'
COMPUTE_DRIVER = 'migration_guard.realcloud.FakeDriver'
# The in-flight filter beside Nova's defaults (README, anti-affinity guard).
GUARD_FILTER = ('nova_migration_guard.scheduler.filters.'
                'InFlightAntiAffinityFilter')
NOVA_DEFAULT_FILTERS = (
    'ComputeFilter', 'ComputeCapabilitiesFilter', 'ImagePropertiesFilter',
    'ServerGroupAntiAffinityFilter', 'ServerGroupAffinityFilter')
# Lock TTL in etcd (tooz's lock_timeout): short enough that a lock left by a
# killed process frees itself within a test.
LOCK_TTL = 10


# What the cloud runs, and where it comes from.
REQUIRED_COMMANDS = (
    ('mariadbd', 'Debian package mariadb-server'),
    ('mariadb-install-db', 'Debian package mariadb-server'),
    ('mariadb', 'Debian package mariadb-client'),
    ('/usr/lib/rabbitmq/bin/rabbitmq-server',
     'Debian package rabbitmq-server'),
    ('epmd', 'Debian package erlang-base'),
    ('etcd', 'Debian package etcd-server'),
    ('gunicorn', 'PyPI gunicorn'),
    ('keystone-manage', 'PyPI keystone'),
    ('placement-manage', 'PyPI openstack-placement'),
    ('glance-manage', 'PyPI glance'),
    ('nova-manage', 'PyPI nova'),
    ('nova-conductor', 'PyPI nova'),
    ('nova-scheduler', 'PyPI nova'),
    ('nova-compute', 'PyPI nova'),
)


def _write(path, text, mode=0o600):
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode),
              'w') as f:
        f.write(text)


def _ini(sections):
    """INI text of {section: {option: value}}; a list value repeats the
    option (oslo.config's MultiStrOpt), a None value leaves it out."""
    lines = []
    for section, values in sections.items():
        lines.append('[%s]' % section)
        for option, value in values.items():
            for one in (value if isinstance(value, (list, tuple))
                        else [value]):
                if one is not None:
                    lines.append('%s = %s' % (option, one))
        lines.append('')
    return '\n'.join(lines)


def _http_ok(url, statuses=(200, 300)):
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status in statuses
    except urllib.error.HTTPError as exc:
        return exc.code in statuses
    except OSError:
        return False


class Cloud(object):
    """One real cloud, described by its state directory."""

    def __init__(self, state_dir, base_port=DEFAULT_BASE_PORT, computes=4,
                 conductors=2, schedulers=2, real_libvirt=False):
        """``computes`` fake ones; ``real_libvirt``: also the two libvirt
        computes (libvirt_computes)."""
        self.state_dir = os.path.abspath(state_dir)
        self.state = {
            'base_port': base_port,
            'computes': ['compute%d' % i for i in range(1, computes + 1)],
            'libvirt': ({'computes': sorted(libvirt_computes.COMPUTES),
                         'daemons': {}} if real_libvirt else None),
            'conductors': ['conductor%d' % i
                           for i in range(1, conductors + 1)],
            'schedulers': ['scheduler%d' % i
                           for i in range(1, schedulers + 1)],
            'passwords': {},
            'processes': {},
            'guards': [],
        }

    # ------------------------------------------------------------ state

    @classmethod
    def load(cls, state_dir):
        cloud = cls(state_dir)
        try:
            with open(cloud.path('state.json')) as f:
                cloud.state = json.load(f)
        except (OSError, ValueError) as exc:
            raise CloudError('no real cloud in %s: %s' % (state_dir, exc))
        return cloud

    def save(self):
        _write(self.path('state.json'), json.dumps(self.state, indent=1))

    def path(self, *parts):
        return os.path.join(self.state_dir, *parts)

    def log(self, name):
        return self.path('logs', '%s.log' % name)

    def port(self, name):
        return self.state['base_port'] + PORTS[name]

    def url(self, name, suffix=''):
        return 'http://127.0.0.1:%d%s' % (self.port(name), suffix)

    def password(self, name):
        passwords = self.state['passwords']
        if name not in passwords:
            passwords[name] = secrets.token_urlsafe(18)
        return passwords[name]

    @staticmethod
    def bin(name):
        """A command of the Python environment that runs this code, else
        of the system (an absolute path stays as it is)."""
        if os.path.isabs(name):
            return name
        here = os.path.join(os.path.dirname(sys.executable), name)
        return here if os.path.exists(here) else (
            shutil.which(name) or shutil.which(name, path='/usr/sbin:/sbin')
            or here)

    @classmethod
    def missing_commands(cls):
        """[(command, where it comes from)] of REQUIRED_COMMANDS that
        cannot be run here."""
        return [(command, origin) for command, origin in REQUIRED_COMMANDS
                if not os.access(cls.bin(command), os.X_OK)]

    @property
    def computes(self):
        """Every compute's host: the fake ones, then the libvirt ones."""
        return list(self.state['computes']) + self.libvirt_computes

    @property
    def libvirt_computes(self):
        """The hosts of the computes on real libvirt daemons ([] without
        them)."""
        return list((self.state.get('libvirt') or {}).get('computes', ()))

    @property
    def conductors(self):
        return list(self.state['conductors'])

    @property
    def schedulers(self):
        return list(self.state['schedulers'])

    @property
    def clouds_yaml(self):
        return self.path('clouds.yaml')

    def process(self, name):
        data = self.state['processes'].get(name)
        return processes.Started.from_dict(data) if data else None

    def _record(self, started):
        self.state['processes'][started.name] = started.__dict__
        self.save()

    def _start(self, name, argv, env=None):
        # Services run the installed packages: neither a PYTHONPATH nor a
        # source tree as cwd, whose egg-info could shadow the installed
        # entry points.
        env = dict(os.environ if env is None else env)
        env.pop('PYTHONPATH', None)
        started = processes.start(name, argv, self.log(name), env=env,
                                  cwd=self.state_dir)
        self._record(started)
        return started

    def _run(self, name, argv, env=None):
        processes.run(name, argv, self.log('setup-' + name), env=env)

    def _db_url(self, database):
        return 'mysql+pymysql://cloud:%s@127.0.0.1:%d/%s?charset=utf8' % (
            self.password('database'), self.port('mariadb'), database)

    @property
    def transport_url(self):
        return 'rabbit://cloud:%s@127.0.0.1:%d/' % (
            self.password('rabbitmq'), self.port('rabbitmq'))

    def coordination_url(self, lock_ttl=LOCK_TTL):
        return 'etcd3+http://127.0.0.1:%d?lock_timeout=%d' % (
            self.port('etcd'), lock_ttl)

    # ------------------------------------------------------------ up/down

    def up(self):
        """Start the whole cloud; CloudError (one line) when it cannot."""
        started_at = time.monotonic()
        missing = self.missing_commands()
        if missing:
            raise CloudError('cannot start the cloud, missing: %s' % '; '.join(
                '%s (%s)' % m for m in missing))
        if os.path.exists(self.path('state.json')):
            raise CloudError(
                '%s already holds a cloud: stop it (down) and remove the '
                'directory, or choose another --state-dir' % self.state_dir)
        for name in PORTS:
            if processes.port_taken(self.port(name)):
                raise CloudError(
                    'port %d (%s) on 127.0.0.1 is taken: stop what listens '
                    'there or choose another --base-port'
                    % (self.port(name), name))
        if self.libvirt_computes:
            self._check_libvirt_environment()
        for sub in ('logs', 'etc'):
            os.makedirs(self.path(sub), exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        self.save()
        steps = (
            ('MariaDB, RabbitMQ, etcd, the Neutron stub',
             self._start_infrastructure),
            ('Keystone', self._start_keystone),
            ('placement and Glance', self._start_placement_and_glance),
            ('Nova databases', self._sync_nova),
        )
        if self.libvirt_computes:
            # Before Nova: a libvirt compute's init_host needs its daemon.
            steps += (('the libvirt daemons',
                       lambda: libvirt_computes.start_daemons(self)),)
        steps += (
            ('Nova services', lambda: self.start_nova(self.state['guards'])),
            ('flavor and image', self._create_flavor_and_image),
        )
        if self.libvirt_computes:
            steps += (('the libvirt guest\'s images and flavors',
                       self._create_libvirt_images_and_flavors),)
        for i, (what, step) in enumerate(steps, 1):
            report.progress('realcloud [%d/%d] %s ...' % (i, len(steps), what))
            step()
        report.progress('realcloud up in %.0f s: %s (clouds.yaml: %s)' % (
            time.monotonic() - started_at, self.url('nova-api'),
            self.clouds_yaml))

    def down(self):
        """Stop every process the cloud started, Nova first, MariaDB
        last; returns the names that were still running."""
        # Another process (a test restarting Nova) may have started some.
        self.state = self.load(self.state_dir).state
        stopped = processes.stop(*filter(None, map(self.process, [
            n for n in self.state['processes'] if n.startswith('nova')])))
        # The libvirt daemons after their computes.
        daemons, problems = libvirt_computes.stop_daemons(self)
        stopped += daemons
        for names in (['glance', 'placement', 'keystone', 'neutron-stub',
                       'etcd'], ['rabbitmq'], ['epmd'], ['mariadb']):
            stopped += processes.stop(*filter(None, map(self.process, names)))
        left = [name for name in PORTS
                if processes.port_open(self.port(name))]
        if left:
            problems.append('still listening after stop: %s' % ', '.join(
                '%s (%d)' % (n, self.port(n)) for n in left))
        if problems:
            raise CloudError('; '.join(problems))
        return stopped

    def _check_libvirt_environment(self):
        """A machine that cannot run the libvirt computes: the cloud
        starts without them (their tests skip), except under CI=true."""
        problem = libvirt_computes.environment_problem(self)
        if not problem:
            return
        if os.environ.get('CI', '').lower() == 'true':
            raise CloudError('cannot start the libvirt computes (CI=true '
                             'requires them): %s' % problem)
        report.progress('realcloud: without the libvirt computes: %s'
                        % problem)
        self.state['libvirt'] = None

    # ------------------------------------------------------ infrastructure

    def _start_infrastructure(self):
        self._start_mariadb()
        rabbit = self._start_rabbitmq()
        etcd = self._start_etcd()
        stub = self._start(
            'neutron-stub',
            [sys.executable, '-m', 'nova_migration_guard.lab.realcloud.'
             'neutron_stub', '--port', str(self.port('neutron-stub'))])
        self._create_databases()
        processes.wait_until(
            lambda: processes.port_open(self.port('rabbitmq')), rabbit,
            'AMQP port %d' % self.port('rabbitmq'))
        processes.wait_until(
            lambda: _http_ok(self.url('etcd', '/health')), etcd, '/health')
        processes.wait_until(
            lambda: _http_ok(self.url('neutron-stub', '/')), stub, 'GET /')

    def _mariadb_sql(self, sql):
        self._run('mariadb-sql', [
            self.bin('mariadb'), '--no-defaults', '--socket',
            self.path('mysql.sock'), '--user', 'root', '--execute', sql])

    def _start_mariadb(self):
        datadir = self.path('mysql')
        if not os.path.isdir(os.path.join(datadir, 'mysql')):
            self._run('mariadb-install-db', [
                self.bin('mariadb-install-db'), '--no-defaults', '--user=root',
                '--datadir=' + datadir, '--auth-root-authentication-method='
                'socket', '--skip-test-db'])
        mariadb = self._start('mariadb', [
            self.bin('mariadbd'), '--no-defaults', '--user=root',
            '--datadir=' + datadir, '--socket=' + self.path('mysql.sock'),
            '--port=%d' % self.port('mariadb'), '--bind-address=127.0.0.1',
            '--pid-file=' + self.path('mysql.pid'), '--skip-name-resolve',
            '--max-connections=2000', '--innodb-buffer-pool-size=128M',
            '--innodb-flush-log-at-trx-commit=2'])
        processes.wait_until(
            lambda: processes.port_open(self.port('mariadb')), mariadb,
            'port %d' % self.port('mariadb'))

    def _create_databases(self):
        password = self.password('database')
        self.save()
        sql = ["CREATE USER IF NOT EXISTS 'cloud'@'127.0.0.1' "
               "IDENTIFIED BY '%s'" % password,
               "GRANT ALL PRIVILEGES ON *.* TO 'cloud'@'127.0.0.1'"]
        sql += ['CREATE DATABASE IF NOT EXISTS %s CHARACTER SET utf8mb4'
                % db for db in DATABASES]
        self._mariadb_sql('; '.join(sql))

    def _start_rabbitmq(self):
        home = self.path('rabbitmq')
        os.makedirs(home, exist_ok=True)
        epmd = self._start('epmd', [
            self.bin('epmd'), '-port', str(self.port('epmd')),
            '-address', '127.0.0.1'])
        processes.wait_until(
            lambda: processes.port_open(self.port('epmd')), epmd,
            'port %d' % self.port('epmd'))
        _write(os.path.join(home, 'rabbitmq.conf'), '\n'.join((
            'listeners.tcp.default = 127.0.0.1:%d' % self.port('rabbitmq'),
            'default_user = cloud',
            'default_pass = %s' % self.password('rabbitmq'),
            'loopback_users = none', '')))
        self.save()
        _write(os.path.join(home, 'enabled_plugins'), '[].\n')
        _write(os.path.join(home, 'rabbitmq-env.conf'), '')
        env = dict(
            os.environ, HOME=home,
            RABBITMQ_NODENAME='rabbit@localhost',
            RABBITMQ_NODE_IP_ADDRESS='127.0.0.1',
            RABBITMQ_NODE_PORT=str(self.port('rabbitmq')),
            RABBITMQ_DIST_PORT=str(self.port('rabbitmq-dist')),
            ERL_EPMD_PORT=str(self.port('epmd')),
            ERL_EPMD_ADDRESS='127.0.0.1',
            RABBITMQ_CONF_ENV_FILE=os.path.join(home, 'rabbitmq-env.conf'),
            RABBITMQ_CONFIG_FILE=os.path.join(home, 'rabbitmq.conf'),
            RABBITMQ_ADVANCED_CONFIG_FILE=os.path.join(home,
                                                       'advanced.config'),
            RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(home,
                                                       'enabled_plugins'),
            RABBITMQ_MNESIA_BASE=os.path.join(home, 'mnesia'),
            RABBITMQ_LOG_BASE=os.path.join(home, 'log'),
            RABBITMQ_LOGS='-',
            RABBITMQ_PID_FILE=os.path.join(home, 'rabbitmq.pid'),
            # Erlang distribution on loopback only.
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=(
                '-kernel inet_dist_use_interface {127,0,0,1}'))
        return self._start('rabbitmq', [
            self.bin('/usr/lib/rabbitmq/bin/rabbitmq-server')], env=env)

    def _start_etcd(self):
        return self._start('etcd', embedded_processes.etcd_command(
            self.bin('etcd'), 'realcloud', self.path('etcd'),
            self.port('etcd'), self.port('etcd-peer')))

    def _gunicorn(self, name, app, env, workers=2):
        return self._start(name, [
            self.bin('gunicorn'), '--bind',
            '127.0.0.1:%d' % self.port(name), '--workers', str(workers),
            '--timeout', '300', '--no-control-socket',
            '--access-logfile', '-',
            'nova_migration_guard.lab.realcloud.wsgi:app(%r)' % app],
            env=dict(os.environ, **env))

    def _authtoken(self, user):
        return {
            'www_authenticate_uri': self.url('keystone', '/v3'),
            'auth_url': self.url('keystone', '/v3'),
            'auth_type': 'password', 'username': user,
            'password': self.password('service'),
            'project_name': 'service', 'user_domain_name': 'Default',
            'project_domain_name': 'Default', 'region_name': REGION,
        }

    # ------------------------------------------------------------ keystone

    def _start_keystone(self):
        conf = self.path('etc', 'keystone.conf')
        keys = self.path('keystone')
        _write(conf, _ini({
            'DEFAULT': {'use_stderr': 'true'},
            'database': {'connection': self._db_url('keystone')},
            'token': {'provider': 'fernet'},
            'fernet_tokens': {'key_repository': keys + '/fernet-keys'},
            'fernet_receipts': {'key_repository': keys + '/fernet-keys'},
            'credential': {'key_repository': keys + '/credential-keys'},
        }))
        manage = [self.bin('keystone-manage'), '--config-file', conf]
        self._run('keystone-db-sync', manage + ['db_sync'])
        for keys_kind in ('fernet_setup', 'credential_setup'):
            self._run('keystone-' + keys_kind, manage + [
                keys_kind, '--keystone-user', 'root',
                '--keystone-group', 'root'])
        endpoint = self.url('keystone', '/v3')
        self._run('keystone-bootstrap', manage + [
            'bootstrap', '--bootstrap-password', self.password('admin'),
            '--bootstrap-admin-url', endpoint,
            '--bootstrap-internal-url', endpoint,
            '--bootstrap-public-url', endpoint,
            '--bootstrap-region-id', REGION])
        self.save()
        keystone = self._gunicorn('keystone', 'keystone.wsgi.api',
                                  {'OS_KEYSTONE_CONFIG_FILES': conf})
        processes.wait_until(lambda: _http_ok(endpoint), keystone, 'GET /v3')
        self._write_clouds_yaml()
        self._register_catalog()

    def _write_clouds_yaml(self):
        def entry(user, project, password):
            return {'auth': {
                'auth_url': self.url('keystone', '/v3'), 'username': user,
                'password': password, 'project_name': project,
                'user_domain_name': 'Default',
                'project_domain_name': 'Default'},
                'region_name': REGION, 'identity_api_version': 3}
        clouds = {'clouds': {
            'realcloud-admin': entry('admin', 'admin',
                                     self.password('admin')),
            'realcloud-member': entry('demo', 'demo',
                                      self.password('member')),
        }}
        self.save()
        # JSON is YAML: no YAML writer needed.
        _write(self.clouds_yaml, json.dumps(clouds, indent=2))

    def connection(self, cloud='realcloud-admin'):
        """An openstacksdk Connection to this cloud."""
        from openstack import config as os_config
        from openstack import connection
        region = os_config.OpenStackConfig(
            config_files=[self.clouds_yaml]).get_one(cloud=cloud)
        return connection.Connection(config=region)

    def _register_catalog(self):
        conn = self.connection()
        identity = conn.identity
        service_project = identity.create_project(name='service',
                                                  domain_id='default')
        demo = identity.create_project(name='demo', domain_id='default')
        roles = {r.name: r for r in identity.roles()}
        if 'service' not in roles:
            roles['service'] = identity.create_role(name='service')
        for name in SERVICE_USERS:
            user = identity.create_user(
                name=name, password=self.password('service'),
                domain_id='default', default_project_id=service_project.id)
            for role in ('admin', 'service'):
                identity.assign_project_role_to_user(
                    service_project, user, roles[role])
        member = identity.create_user(
            name='demo', password=self.password('member'),
            domain_id='default', default_project_id=demo.id)
        identity.assign_project_role_to_user(demo, member, roles['member'])
        self.save()
        for name, kind, url in (
                ('nova', 'compute', self.url('nova-api', '/v2.1')),
                ('placement', 'placement', self.url('placement')),
                ('glance', 'image', self.url('glance')),
                ('neutron', 'network', self.url('neutron-stub'))):
            service = identity.create_service(name=name, type=kind)
            for interface in ('public', 'internal'):
                identity.create_endpoint(
                    service_id=service.id, interface=interface, url=url,
                    region_id=REGION)

    # ------------------------------------------------- placement, glance

    def _start_placement_and_glance(self):
        etc = self.path('etc', 'placement')
        os.makedirs(etc, exist_ok=True)
        conf = os.path.join(etc, 'placement.conf')
        _write(conf, _ini({
            'DEFAULT': {'use_stderr': 'true'},
            'placement_database': {'connection': self._db_url('placement')},
            'api': {'auth_strategy': 'keystone'},
            'keystone_authtoken': self._authtoken('placement'),
        }))
        self._run('placement-db-sync', [
            self.bin('placement-manage'), '--config-file', conf, 'db',
            'sync'])
        placement = self._gunicorn('placement',
                                   'placement.wsgi.api',
                                   {'OS_PLACEMENT_CONFIG_DIR': etc})

        etc = self.path('etc', 'glance')
        os.makedirs(etc, exist_ok=True)
        shutil.copy(os.path.join(sys.prefix, 'etc', 'glance',
                                 'glance-api-paste.ini'), etc)
        conf = os.path.join(etc, 'glance-api.conf')
        data = self.path('glance')
        _write(conf, _ini({
            'DEFAULT': {'use_stderr': 'true', 'enabled_backends': 'fs:file'},
            'database': {'connection': self._db_url('glance')},
            'keystone_authtoken': self._authtoken('glance'),
            'paste_deploy': {'flavor': 'keystone'},
            'glance_store': {'default_backend': 'fs'},
            'fs': {'filesystem_store_datadir': data + '/images'},
            'os_glance_staging_store': {
                'filesystem_store_datadir': data + '/staging'},
            'os_glance_tasks_store': {
                'filesystem_store_datadir': data + '/tasks'},
        }))
        self._run('glance-db-sync', [
            self.bin('glance-manage'), '--config-file', conf, 'db_sync'])
        glance = self._gunicorn('glance', 'glance.wsgi.api',
                                {'OS_GLANCE_CONFIG_DIR': etc})
        processes.wait_until(lambda: _http_ok(self.url('placement')),
                             placement, 'GET /')
        processes.wait_until(lambda: _http_ok(self.url('glance')), glance,
                             'GET /')

    # ------------------------------------------------------------ nova

    def _nova_conf(self, guards):
        """nova.conf shared by every Nova service; ``guards`` as in
        ``[migration_guard] guards``."""
        filters = list(NOVA_DEFAULT_FILTERS)
        available = ['nova.scheduler.filters.all_filters']
        if 'anti_affinity' in guards:
            filters.append(GUARD_FILTER.rsplit('.', 1)[1])
            available.append(GUARD_FILTER)
        return _ini({
            'DEFAULT': {
                'transport_url': self.transport_url, 'my_ip': '127.0.0.1',
                'debug': 'true', 'use_stderr': 'true',
                'compute_driver': COMPUTE_DRIVER,
                # Nova's default of one live migration at a time per
                # compute would serialise the races.
                'max_concurrent_live_migrations': '4',
            },
            'keystone_authtoken': self._authtoken('nova'),
            'placement': dict(self._authtoken('nova'),
                              www_authenticate_uri=None),
            'neutron': dict(self._authtoken('neutron'),
                            www_authenticate_uri=None,
                            endpoint_override=self.url('neutron-stub')),
            'glance': {'region_name': REGION},
            'scheduler': {'workers': '1',
                          'discover_hosts_in_cells_interval': '2'},
            'conductor': {'workers': '1'},
            'filter_scheduler': {
                'available_filters': available,
                'enabled_filters': ','.join(filters),
                # Read the database per request: with the cached view a
                # host a member just left can still look occupied.
                'track_instance_changes': 'false'},
            'oslo_concurrency': {'lock_path': self.path('nova', 'locks')},
            'migration_guard': {'guards': ', '.join(guards)},
            'migration_guard_coordination': {
                'backend_url': self.coordination_url()},
            # The libvirt computes' flavors name it; the API validates
            # their policy against these too.
            'migration_guard_convergence': {
                'custom_policies': (libvirt_computes.CUSTOM_POLICIES
                                    if self.libvirt_computes else None)},
        })

    def _api_paste(self):
        path = self.path('etc', 'nova', 'api-paste.ini')
        if not os.path.exists(path):
            shutil.copy(os.path.join(sys.prefix, 'etc', 'nova',
                                     'api-paste.ini'), path)
        return path

    def _controller_conf(self):
        return _ini({
            'api_database': {'connection': self._db_url('nova_api')},
            'database': {'connection': self._db_url('nova')},
        })

    def _host_conf(self, host):
        state = self.path('nova', host)
        os.makedirs(os.path.join(state, 'instances'), exist_ok=True)
        sections = {'DEFAULT': {
            'host': host, 'state_path': state,
            'instances_path': os.path.join(state, 'instances')}}
        if host in self.libvirt_computes:
            for section, options in libvirt_computes.host_conf(
                    self, host, self._nova_files(host,
                                                 controller=False)).items():
                sections.setdefault(section, {}).update(options)
        return _ini(sections)

    def _nova_files(self, host=None, controller=True):
        etc = self.path('etc', 'nova')
        files = [os.path.join(etc, 'nova.conf')]
        if controller:
            files.append(os.path.join(etc, 'controller.conf'))
        if host:
            files.append(os.path.join(etc, '%s.conf' % host))
        return files

    def _write_nova_confs(self, guards):
        etc = self.path('etc', 'nova')
        os.makedirs(etc, exist_ok=True)
        _write(os.path.join(etc, 'nova.conf'), self._nova_conf(guards))
        _write(os.path.join(etc, 'controller.conf'), self._controller_conf())
        for host in (['api'] + self.conductors + self.schedulers +
                     self.computes):
            _write(os.path.join(etc, '%s.conf' % host),
                   self._host_conf(host))
        self.state['guards'] = list(guards)
        self.save()

    def _nova_manage(self, name, *args):
        argv = [self.bin('nova-manage')]
        for path in self._nova_files():
            argv += ['--config-file', path]
        self._run(name, argv + list(args))

    def _sync_nova(self):
        self._write_nova_confs(self.state['guards'])
        self._nova_manage('nova-api-db-sync', 'api_db', 'sync')
        self._nova_manage('nova-map-cell0', 'cell_v2', 'map_cell0',
                          '--database_connection',
                          self._db_url('nova_cell0'))
        self._nova_manage('nova-create-cell1', 'cell_v2', 'create_cell',
                          '--name', 'cell1', '--database_connection',
                          self._db_url('nova'), '--transport-url',
                          self.transport_url)
        self._nova_manage('nova-db-sync', 'db', 'sync')

    def nova_service_names(self):
        return (['nova-api'] +
                ['nova-conductor-%s' % h for h in self.conductors] +
                ['nova-scheduler-%s' % h for h in self.schedulers] +
                ['nova-compute-%s' % h for h in self.computes])

    def start_nova_service(self, name):
        """Start one Nova service by its process name (see
        nova_service_names)."""
        if name == 'nova-api':
            # Nova's WSGI app reads its paste pipeline from the FIRST file.
            files = [self._api_paste()] + self._nova_files('api')
            return self._gunicorn('nova-api', 'nova.wsgi.osapi_compute', {
                'OS_NOVA_CONFIG_DIR': os.path.dirname(files[0]),
                'OS_NOVA_CONFIG_FILES': ';'.join(
                    os.path.basename(f) for f in files)})
        binary, host = self._binary_and_host(name)
        return self._start_nova_binary(
            name, binary,
            self._nova_files(host, controller=binary != 'nova-compute'),
            host)

    @staticmethod
    def _binary_and_host(name):
        """('nova-compute', 'libvirt-a') of 'nova-compute-libvirt-a'."""
        for binary in ('nova-conductor', 'nova-scheduler', 'nova-compute'):
            if name.startswith(binary + '-'):
                return binary, name[len(binary) + 1:]
        raise CloudError('no Nova service is named %s' % name)

    def _start_nova_binary(self, name, binary, files, host=None):
        argv = [self.bin(binary)]
        for path in files:
            argv += ['--config-file', path]
        if host in self.libvirt_computes:
            # Its files where its daemon's QEMU finds them.
            argv = libvirt_computes.in_namespace(self, host, argv)
        return self._start(name, argv)

    def start_compute(self, host, timeout=180):
        """Start ``host``'s nova-compute (again) and return it once it has
        joined its service group: Nova's init_host, and with it the
        guards' recovery at start, is done by then.  The API's service
        state cannot tell this after a kill: the dead process's last
        heartbeat keeps the service up for service_down_time."""
        name = 'nova-compute-%s' % host
        log = self.log(name)
        offset = os.path.getsize(log) if os.path.exists(log) else 0

        def joined():
            with open(log, 'rb') as f:
                f.seek(offset)
                return b'Join ServiceGroup membership' in f.read()
        started = self.start_nova_service(name)
        processes.wait_until(joined, started,
                             '%s joined its service group' % name, timeout)
        return started

    def start_extra_compute(self, name, host, overrides=None):
        """Start one more nova-compute process, ``name`` (its log and its
        record in state.json), with ``[DEFAULT] host = host`` and, read
        last, ``overrides`` ({section: {option: value}}) in
        etc/nova/<name>.conf.  Processes started with one ``host`` share
        its configuration and state_path, as an operator's copy of that
        host's configuration or an active/passive pair does."""
        etc = self.path('etc', 'nova')
        host_conf = os.path.join(etc, '%s.conf' % host)
        if not os.path.exists(host_conf):
            _write(host_conf, self._host_conf(host))
        files = self._nova_files(host, controller=False)
        if overrides:
            files.append(os.path.join(etc, '%s.conf' % name))
            _write(files[-1], _ini(overrides))
        return self._start_nova_binary(name, 'nova-compute', files, host)

    @staticmethod
    def kill(started):
        """SIGKILL a process of the cloud, as a crash or an operator's
        kill -9 does; returns its exit status when this process started
        it."""
        return processes.kill(started)

    @staticmethod
    def exit_status(started, timeout=0):
        """The exit status of a process this process started, once it
        ended within ``timeout`` s; None while it runs."""
        return processes.exit_status(started, timeout)

    def start_nova(self, guards):
        """(Re)write nova.conf with ``guards`` and start every Nova
        service; returns when all are up and every compute is mapped."""
        self._write_nova_confs(guards)
        started = [self.start_nova_service(n)
                   for n in self.nova_service_names()]
        processes.wait_until(
            lambda: _http_ok(self.url('nova-api', '/'), (200, 300)),
            started[0], 'GET /')
        expected = ({('nova-conductor', h) for h in self.conductors} |
                    {('nova-scheduler', h) for h in self.schedulers} |
                    {('nova-compute', h) for h in self.computes})
        conn = self.connection()

        def all_up():
            for proc in started:
                if not processes.alive(proc):
                    raise CloudError('%s exited while starting; see %s'
                                     % (proc.name, proc.log))
            up = {(s.binary, s.host) for s in conn.compute.services()
                  if s.state == 'up' and s.status == 'enabled'}
            return expected <= up
        processes.wait_until(all_up, None, 'every Nova service up',
                             timeout=180)
        self._nova_manage('nova-discover-hosts', 'cell_v2',
                          'discover_hosts')
        processes.wait_until(
            lambda: len(list(conn.compute.hypervisors())) >= len(
                self.computes), None, 'every hypervisor listed')

    def stop_nova(self):
        names = self.nova_service_names()
        processes.stop(*filter(None, map(self.process, names)))

    def restart_nova(self, guards):
        """Stop Nova's services and start them with ``guards``."""
        report.progress('realcloud: restarting Nova with guards = %s'
                        % (', '.join(guards) or '(none)'))
        self.stop_nova()
        self.start_nova(guards)

    # ------------------------------------------------------ flavor/image

    def _create_flavor_and_image(self):
        conn = self.connection()
        conn.compute.create_flavor(name=FLAVOR, ram=256, vcpus=1, disk=1,
                                   is_public=True)
        # For the fake computes only (FakeDriver reports hypervisor type
        # fake; ImagePropertiesFilter): a fake server never lands on a
        # libvirt compute.
        image = conn.image.create_image(
            name=IMAGE, data=b'\0' * 1024, disk_format='raw',
            container_format='bare', visibility='public', img_hv_type='fake')
        self._wait_for_images(conn, [image])

    @staticmethod
    def _wait_for_images(conn, images):
        for image in images:
            processes.wait_until(
                lambda: conn.image.get_image(image.id).status == 'active',
                None, 'image %s active' % image.id, timeout=60)

    def _create_libvirt_images_and_flavors(self):
        conn = self.connection()
        self._wait_for_images(conn,
                              libvirt_computes.upload_guest_images(conn))
        libvirt_computes.create_flavors(conn)
